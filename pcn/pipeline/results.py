"""The runs' results read back (by the report): every file checked, and a damaged one named.

A results CSV (``history.csv``, ``separation.csv``) is read as numbers, but for its name columns
(:data:`TEXT_COLUMNS`); a ``metrics.json`` must parse and hold finite errors. Results computed with other
training params than the current ones are refused (their ``params_hash`` differs).
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from pcn.layout import Workspace, run_name
from pcn.schema import Params


class ResultsError(RuntimeError):
    """A results file is missing, damaged, or from other params (the message names it and what to run)."""


#: Columns of the results CSVs that hold names (pcn/analysis/views.py places, separation.py features).
TEXT_COLUMNS = ("place", "feature")
#: Columns of the results CSVs that hold integers.
INTEGER_COLUMNS = ("layer", "epoch", "dim")
#: The errors of a metrics.json (percent), which must be finite to be averaged over seeds.
ERROR_KEYS = ("test_error", "final_test_error", "best_test_error")


def error_percent(accuracy: float) -> float:
    """The error in percent of an accuracy in [0, 1]: ``100 (1 - accuracy)``, the unit of every reported error."""
    return 100 * (1 - accuracy)


def read_csv(path: Path) -> list[dict]:
    """A results CSV as numbers; a truncated or damaged file raises :class:`ResultsError` naming it."""

    def cell(key, value):
        return value if key in TEXT_COLUMNS else int(value) if key in INTEGER_COLUMNS else float(value)

    try:
        with open(path, encoding="utf-8") as f:
            rows = [{k: cell(k, v) for k, v in row.items()} for row in csv.DictReader(f)]
    except (ValueError, TypeError) as exc:  # UnicodeDecodeError is a ValueError
        raise ResultsError(
            f"{path} is damaged or truncated ({exc}); rerun the stage that writes it (dvc repro -f)"
        ) from None
    if not rows:
        raise ResultsError(f"{path} has no rows; rerun the stage that writes it (dvc repro -f)")
    return rows


def read_metrics(path: Path) -> dict:
    """A metrics.json whose test errors are finite; a damaged file or a NaN error raises :class:`ResultsError`."""
    try:
        metrics = json.loads(Path(path).read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResultsError(
            f"{path} is damaged or truncated ({exc}); rerun the stage that writes it (dvc repro -f)"
        ) from None
    for key in ERROR_KEYS:
        if key in metrics and not (isinstance(metrics[key], (int, float)) and math.isfinite(metrics[key])):
            raise ResultsError(f"{path}: {key} is {metrics[key]!r}; a non-finite error cannot be averaged over seeds")
    return metrics


def read_run(workspace: Workspace, params: Params, variant: str, seed: int) -> dict:
    """One run's train and evaluate metrics, separation rows and history, refused unless computed with the
    training params that ``params`` gives this run."""
    run = run_name(variant, seed)
    try:
        record = {
            "train": read_metrics(workspace.train_dir / run / "metrics.json"),
            "evaluate": read_metrics(workspace.eval_dir / run / "metrics.json"),
            "separation": read_csv(workspace.eval_dir / run / "separation.csv"),
            "history": read_csv(workspace.train_dir / run / "history.csv"),
        }
    except FileNotFoundError as exc:
        raise ResultsError(
            f"results of {run} are missing ({exc.filename}); run train@{run} and evaluate@{run}"
        ) from None
    expected = params.training_hash(variant, seed)
    for stage in ("train", "evaluate"):
        if record[stage].get("params_hash") != expected:
            raise ResultsError(
                f"results/{stage}/{run} come from a model trained with other params than params.yaml now holds; "
                "run dvc repro"
            )
    return record


def collect(workspace: Workspace, params: Params) -> dict[str, dict]:
    """Per selected variant: its arch, non-linearity, whether its parameters are learned and, per seed, its run
    (:func:`read_run`): the input of :func:`pcn.analysis.report.build_report`."""
    variants = {}
    for name in params.variants:
        v = params.models[name]
        seeds = {seed: read_run(workspace, params, name, seed) for seed in params.seeds}
        variants[name] = {
            "arch": v.arch,
            "nonlinearity": v.nonlinearity,
            "learned": v.learned,
            # what the trainings ran with (their params_hash says so): lr x lr_gamma every lr_step epochs
            "recipe": {**v.recipe(params.train), "lr_gamma": params.train.lr_gamma},
            "seeds": seeds,
        }
    return variants
