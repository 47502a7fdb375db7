"""Where a stage reads and writes: the workspace it runs in, and the repository DVC was started from.

Outputs go to the workspace the stage runs in (:data:`WORKSPACE`; a temporary copy under ``.dvc/tmp/exps`` for
queued experiments). The MLflow store, the journals of unsent MLflow entries and relative data roots (raw
CIFAR-10 downloads and ImageNet folders, which git ignores and DVC does not copy) live in the repository DVC was
started from (:data:`ORIGIN_ROOT`, which DVC passes as ``DVC_ROOT``), so that queued and temporary runs land in
the same, persistent places.
"""

from __future__ import annotations

import os
from pathlib import Path

from pcn.layout import Workspace

ROOT = Path(__file__).resolve().parents[1]
ORIGIN_ROOT = Path(os.environ.get("DVC_ROOT", ROOT)).resolve()
WORKSPACE = Workspace(ROOT)
PARAMS_PATH = ROOT / "params.yaml"


def resolve_data_root(root: str) -> Path:
    """A configured data folder: absolute as given, relative to the origin repository otherwise."""
    return Path(root) if Path(root).is_absolute() else ORIGIN_ROOT / root
