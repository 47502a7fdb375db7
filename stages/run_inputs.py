"""Stage helpers shared by train and evaluate: the process's rank (torchrun's environment), the run's data
splits, plain-data files."""

from __future__ import annotations

import os
from pathlib import Path

from pcn.data.datasets import load_split
from pcn.data.splits import ArraySplit, seed_splits
from pcn.train.checkpoint import CheckpointError, load
from pcn.train.distributed import DistInfo

from common import fail


def dist_info() -> DistInfo:
    """This process's place in a torchrun launch (rank 0 of 1 without one)."""
    return DistInfo(
        int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))
    )


def run_splits(params, data_dir: Path, card: dict, seed: int) -> dict[str, ArraySplit]:
    """The train / validation / test splits of the run with training seed ``seed`` (in-memory data sets):
    :func:`pcn.data.splits.seed_splits` of the prepared splits, per ``data.resplit`` and
    ``data.validation_fraction``."""
    train, test = load_split(data_dir, card, "train"), load_split(data_dir, card, "test")
    d = params.data
    return seed_splits(train, test, card["name"], d.split_seed, seed, d.resplit, d.validation_fraction)


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
