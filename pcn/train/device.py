"""The training device, and the CPU allocator setting that changes speed, not results.

Nothing here reads or writes the environment; the OpenMP setting that must precede
``import torch`` belongs to the stage processes (``stages/process_defaults.py``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

from pcn.names import DEVICES

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
RETAIN_BYTES = 1 << 30


def select_device(name: str, local_rank: int = 0):
    """The ``torch.device`` for ``train.device`` ``name`` (one of :data:`DEVICES`).

    Raises ``ValueError`` if CUDA is asked for and absent. Changes nothing in the process (the
    stages apply :func:`retain_freed_memory` themselves on CPU).
    """
    import torch

    if name not in DEVICES:
        raise ValueError(f"unknown device {name!r}; valid: {', '.join(DEVICES)}")
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ValueError("train.device is 'cuda' but no CUDA device is available; valid: auto, cpu, cuda")
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def retain_freed_memory(limit_bytes: int = RETAIN_BYTES) -> bool:
    """Let glibc's allocator keep and reuse freed blocks (of up to ``limit_bytes`` each).

    By default glibc serves every allocation above 32 MiB with a fresh ``mmap`` and returns it
    to the system when freed, and gives the top of the heap back once enough of it is free, so
    each large temporary of a training step (FFT products, activations of the first blocks)
    pays a page fault per 4 KiB page when first written. This call raises the ``mmap``
    threshold to ``limit_bytes`` and disables trimming (the effect is measured in
    bench/RESULTS.md). The cost is that freed memory stays in the process (its resident size
    stays at its peak). Same effect as the environment variables ``MALLOC_MMAP_THRESHOLD_``
    and ``MALLOC_TRIM_THRESHOLD_=-1``.

    Returns True if applied (Linux with glibc), False elsewhere (nothing is changed).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another libc without mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, limit_bytes)) and bool(mallopt(M_TRIM_THRESHOLD, -1))
