"""Stage helpers shared by train and evaluate: the process's rank (torchrun's environment), plain-data files."""
from __future__ import annotations

import os
from pathlib import Path

from pcn.train.checkpoint import CheckpointError, load
from pcn.train.distributed import DistInfo

from common import fail


def dist_info() -> DistInfo:
    """This process's place in a torchrun launch (rank 0 of 1 without one)."""
    return DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                    int(os.environ.get("LOCAL_RANK", 0)))


def load_required(path: Path, what: str, missing: str) -> dict:
    """A plain-data torch file (:func:`pcn.train.checkpoint.load`); stop with a message naming it if it is
    missing (``missing`` says what to run), unreadable or unsafe."""
    try:
        obj = load(path, what)
    except CheckpointError as exc:
        fail(str(exc))
    if obj is None:
        fail(f"{path} is missing; {missing}")
    return obj
