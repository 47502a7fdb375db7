"""What every stage script does first, before it imports torch or pcn: :func:`set_process_defaults`.

1. It puts this project first on ``sys.path`` (a queued ``dvc exp run`` runs a copy under ``.dvc/tmp/exps/``,
   whose ``pcn`` must win over the installed one).
2. It sets environment defaults that must precede the libraries' import (:data:`STAGE_ENVIRONMENT`); a value
   the user (or ``pcn repro``) set is kept.
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
#: ``MPLBACKEND=Agg``: figures are written to files, never shown.
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


def set_process_defaults() -> None:
    """Prepare this process to run a stage (see the module docstring)."""
    if str(ROOT) not in sys.path[:2]:
        sys.path.insert(0, str(ROOT))
    stage_environment()
