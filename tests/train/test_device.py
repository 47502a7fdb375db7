"""The training device and the CPU allocator setting: chosen and applied only when asked."""

import platform
import subprocess
import sys

import pytest

from conftest import ROOT

#: In a fresh process (the setting lasts for the process): the resident memory, in MiB above the start, once a
#: 64 MiB block is allocated and written (glibc's malloc), and once it is freed; with or without the setting first.
FREED_BLOCK = """
import ctypes, os, sys
from pcn.train.device import retain_freed_memory

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]


def resident():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


applied = retain_freed_memory() if sys.argv[1] == "retain" else None
start = resident()
block = libc.malloc(64 << 20)
ctypes.memset(block, 1, 64 << 20)
written = resident() - start
libc.free(block)
print(applied, written, resident() - start)
"""


def freed_block(setting: str) -> tuple[str, float, float]:
    out = subprocess.run(
        [sys.executable, "-c", FREED_BLOCK, setting], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0], float(out[1]), float(out[2])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting is glibc's (mallopt)")
def test_retain_freed_memory_keeps_freed_blocks_in_the_process():
    """By default glibc serves a 64 MiB block with its own mmap and gives it back to the system when freed; after
    retain_freed_memory() it comes from the heap and stays there, ready for the next allocation (its resident
    pages are not released)."""
    applied, written, freed = freed_block("default")
    assert written > 60 and freed < 4, (written, freed)  # returned to the system
    applied, written, freed = freed_block("retain")
    assert applied == "True"
    assert written > 60 and freed > 60, (written, freed)  # kept


def test_choosing_a_device_changes_nothing_in_the_process():
    """select_device is pure: the allocator setting is the stages' explicit call (stages/train.py)."""
    probe = (
        "import pcn.train.device as d; called = []; d.retain_freed_memory = lambda: called.append(1); "
        "print(d.select_device('cpu'), called)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "cpu []"
