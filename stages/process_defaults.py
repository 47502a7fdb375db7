"""What every stage script does first, before it imports torch or pcn: :func:`set_process_defaults`.

1. It puts this project first on ``sys.path`` (a queued ``dvc exp run`` runs a copy under ``.dvc/tmp/exps/``,
   whose ``pcn`` must win over the installed one).
2. It sets environment defaults that must precede the libraries' import (:data:`STAGE_ENVIRONMENT`); a value
   the user (or ``pcn repro``) set is kept.
3. It prints an expected failure (an exception class with ``expected = True``: a refused link, a full disk, a
   tampered model...) as one line, ``error: ...``, with no traceback (:func:`one_line_failures`).
4. Under ``pcn repro``, it dies with the ``dvc`` process that started it (:func:`die_with_parent`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Set (unless already set) before torch is imported. ``OMP_WAIT_POLICY=PASSIVE``: with OpenMP's default (active)
#: waiting, a thread that has finished its share of a parallel region spins for a while before sleeping. pcn's
#: steps run many small parallel regions, each ending in a barrier: on a machine where another process holds a
#: core, a region waits for its descheduled thread while the other threads spin, taking the CPU time that thread
#: (or the other process) needs. ``PASSIVE`` makes waiting threads sleep at once: slower when the machine is idle,
#: much faster when it is shared (measured in bench/RESULTS.md, "contention"). It must be set before the OpenMP
#: runtime loads. The MLflow values make a dead tracking server cost seconds, not minutes of retries.
#: ``MPLBACKEND=Agg``: figures are written to files, never shown. MKL's thread count is left to torch (it follows
#: ``OMP_NUM_THREADS``): MKL's sgemm gives other bytes at 1 and 2 threads, but pinning it to one thread costs 15-40%
#: of a default training on 2 cores (measured 2026-12-04, docs/scale.md), so it is not a default.
STAGE_ENVIRONMENT: dict[str, str] = {
    "OMP_WAIT_POLICY": "PASSIVE",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MPLBACKEND": "Agg",
}


def stage_environment(environ: dict | None = None) -> dict:
    """Set :data:`STAGE_ENVIRONMENT` in ``environ`` (default ``os.environ``) where not set; returns it."""
    environ = os.environ if environ is None else environ
    for key, value in STAGE_ENVIRONMENT.items():
        environ.setdefault(key, value)
    return environ


def one_line_failures(exc_type, exc, tb, fallback=sys.__excepthook__) -> None:
    """``sys.excepthook`` of a stage: an expected failure (``exc_type.expected``) is one line on stderr naming the
    file or input and what to do; anything else gets Python's full traceback."""
    if not getattr(exc_type, "expected", False):
        fallback(exc_type, exc, tb)
        return
    message = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    print(f"error: {message}", file=sys.stderr)


def die_with_parent() -> None:
    """Under ``pcn repro`` (``PCN_DASK_WORKER`` set): receive SIGTERM when the ``dvc`` process that started this
    stage dies, as ``dvc`` does when its Dask worker dies; the task then reruns elsewhere, and this copy must not
    go on writing the same outputs and checkpoints. SIGTERM closes the stage's MLflow run KILLED."""
    if not os.environ.get("PCN_DASK_WORKER") or not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def set_process_defaults() -> None:
    """Prepare this process to run a stage (see the module docstring)."""
    if str(ROOT) not in sys.path[:2]:
        sys.path.insert(0, str(ROOT))
    stage_environment()
    sys.excepthook = one_line_failures
    die_with_parent()
