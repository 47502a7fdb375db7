"""Where a pipeline's files live in a workspace (the repository, or a queued experiment's temporary copy).

=======================================  ==================================================================
``results/params.ok``                    stage ``validate``: params.yaml passed validation
``data/listing/<source>.json``           stage ``scan@<source>``
``data/prepared/``                       stage ``fetch`` (its ``card.json`` describes the data set)
``results/wavelets/filters.png``          stage ``draw_filters``
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

from pathlib import Path


def run_name(variant: str, seed: int) -> str:
    """The (variant, seed) folder and stage suffix: ``modulus-0``."""
    return f"{variant}-{seed}"


class Workspace:
    """The pipeline's folders under ``root`` (the table above)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        results, data = self.root / "results", self.root / "data"
        self.validated = results / "params.ok"
        self.listing_dir, self.data_dir = data / "listing", data / "prepared"
        self.filters_dir, self.report_dir = results / "wavelets", results / "report"
        self.train_dir, self.eval_dir = results / "train", results / "evaluate"
        self.models_dir, self.checkpoints_dir = self.root / "models", self.root / "checkpoints"

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    def model_file(self, run: str) -> Path:
        return self.models_dir / run / "model.pt"

    def checkpoint(self, run: str) -> Path:
        return self.checkpoints_dir / run / "last.pt"

    def run_facts(self, run: str) -> Path:
        """What a training run was, beyond its results (MLflow run id, wall time): untracked."""
        return self.checkpoints_dir / run / "run.json"
