"""Where a pipeline's files live in a workspace (the repository, or a queued experiment's temporary copy).

=======================================  ==================================================================
``results/params.ok``                    stage ``validate``: params.yaml passed validation
``data/listing/<source>.json``           stage ``scan@<source>``
``data/prepared/``                       stage ``fetch`` (its ``card.json`` describes the data set)
``results/filters/filters.png``          stage ``draw_filters``
``models/<run>/model.pt``                stage ``train@<run>``: the trained weights with their configuration
``results/train/<run>/``                 stage ``train@<run>``: metrics.json, history.csv, curves.png
``results/evaluate/<run>/``              stage ``evaluate@<run>``: metrics.json, separation.csv
``results/report/``                      stage ``report``
``checkpoints/<run>/``                   the resume state (``last.pt``) and the run's facts (``run.json``), untracked
=======================================  ==================================================================

A run is one variant trained with one seed; its name ``<variant>-<seed>`` (:func:`run_name`) is the suffix of
its DVC stages and the name of its folders.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


def run_name(variant: str, seed: int) -> str:
    """The (variant, seed) folder and stage suffix: ``modulus-0``."""
    return f"{variant}-{seed}"


@dataclass(frozen=True)
class Workspace:
    """The pipeline's folders under ``root``."""

    root: Path

    @property
    def validated(self) -> Path:
        return self.root / "results" / "params.ok"

    @property
    def listing_dir(self) -> Path:
        return self.root / "data" / "listing"

    @property
    def data_dir(self) -> Path:
        return self.root / "data" / "prepared"

    @property
    def filters_dir(self) -> Path:
        return self.root / "results" / "filters"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def train_dir(self) -> Path:
        return self.root / "results" / "train"

    @property
    def eval_dir(self) -> Path:
        return self.root / "results" / "evaluate"

    @property
    def report_dir(self) -> Path:
        return self.root / "results" / "report"

    @property
    def checkpoints_dir(self) -> Path:
        return self.root / "checkpoints"

    def model_file(self, run: str) -> Path:
        return self.models_dir / run / "model.pt"

    def checkpoint(self, run: str) -> Path:
        return self.checkpoints_dir / run / "last.pt"

    def run_facts(self, run: str) -> Path:
        """What a training run was, beyond its results (MLflow run id, wall time): untracked."""
        return self.checkpoints_dir / run / "run.json"
