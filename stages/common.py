"""Shared plumbing of the stage scripts: paths, params, errors, code identity.

With ``stages/tracked.py`` (MLflow runs) and ``stages/run_inputs.py``, this is the only place
that reads params.yaml and the environment (DVC_ROOT; torchrun's RANK/WORLD_SIZE/LOCAL_RANK);
the library gets typed values. Importing it changes nothing in the process
(``stages/process.py`` does that, when a stage script asks).
"""

from __future__ import annotations

import ast
import csv
import json
import math
import os
from pathlib import Path
from typing import NoReturn

from pcn.files import file_digest

# Outputs go to the workspace the stage runs in (a temporary copy under .dvc/tmp/exps for queued
# experiments); the MLflow store lives in the repository DVC was started from (DVC_ROOT), so that
# queued and temporary runs land in the same, persistent database. Relative data roots (raw
# CIFAR-10 downloads, which git ignores and DVC does not copy) are resolved there too.
ROOT = Path(__file__).resolve().parents[1]
ORIGIN_ROOT = Path(os.environ.get("DVC_ROOT", ROOT)).resolve()

DATA_DIR = ROOT / "data" / "prepared"
LISTING_DIR = ROOT / "data" / "listing"
FILTERS_DIR = ROOT / "results" / "filters"
MODELS_DIR = ROOT / "models"
CHECKPOINTS_DIR = ROOT / "checkpoints"
TRAIN_DIR = ROOT / "results" / "train"
EVAL_DIR = ROOT / "results" / "evaluate"
REPORT_DIR = ROOT / "results" / "report"
VALIDATED = ROOT / "results" / "params.ok"


def fail(message: str) -> NoReturn:
    """Stop the stage with ``error: message`` on stderr and exit status 1 (no traceback)."""
    raise SystemExit(f"error: {message}")


def read_params_file(path: Path):
    """params.yaml as YAML 1.2 (ruamel, like DVC): ``1e-3`` is a number, ``yes`` a string."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        return YAML(typ="safe", pure=True).load(Path(path).read_text())
    except FileNotFoundError:
        fail(f"{path} not found")
    except YAMLError as exc:
        fail(f"{path} is not valid YAML: {exc}")


def load_params(path: Path | None = None):
    """Read and strictly validate params.yaml; exit with the full list of problems on error."""
    from pcn.schema import ParamsError, parse_params

    path = Path(path or ROOT / "params.yaml")
    try:
        return parse_params(read_params_file(path), str(path))
    except ParamsError as exc:
        fail(str(exc))


def _leaves(d: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in d.items():
        out.update(_leaves(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


class Provenance:
    """What a stage's results follow from, taken when it starts: the params it reads (``view(params)``)
    and the code it runs. :meth:`refuse_if_changed`, called before the results are written, stops the
    stage if either changed meanwhile, so that dvc.lock never credits values the results were not
    computed with."""

    def __init__(self, stage: str, script: str, view, params, params_path: Path | None = None):
        self.stage, self.script, self.view, self.params_path = stage, script, view, params_path
        self.taken = {"params": view(params), "code": code_digest(script)}

    def refuse_if_changed(self) -> None:
        now = {"params": self.view(load_params(self.params_path)), "code": code_digest(self.script)}
        before, after = _leaves(self.taken), _leaves(now)
        changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
        if changed:
            fail(
                f"{self.stage}: changed while it ran: {', '.join(changed[:6])}{' ...' if len(changed) > 6 else ''}."
                " Its results are not written (dvc.lock would credit values they were not computed with); "
                "run dvc repro again"
            )


def run_name(variant: str, seed: int) -> str:
    """The (variant, seed) folder and stage suffix: ``modulus-0``."""
    return f"{variant}-{seed}"


def dvc_stage_key(stage: str) -> str | None:
    """The key of the running DVC stage ``<stage>@<key>`` (``train@modulus-0`` -> ``modulus-0``), or None.

    DVC passes the stage's name in the environment (``DVC_STAGE``) of every command it runs, so the
    stage commands in dvc.yaml hold no name at all: no shell ever sees a variant name.
    """
    name = os.environ.get("DVC_STAGE", "").rsplit(":", 1)[-1]  # "sub/dvc.yaml:train@x-0" in a subfolder
    base, at, key = name.partition("@")
    return key if at and base == stage else None


def stage_variant_and_seed(stage: str, variant: str | None, seed: int | None, params) -> tuple[str, int]:
    """``--variant`` and ``--seed`` as given, or read from the DVC stage's name; either way checked: the variant
    must be a valid name defined under ``models`` (a stage may run without ``validate``: ``dvc repro -s``)."""
    from pcn.schema import NAME_PATTERN

    if variant is None or seed is None:
        key = dvc_stage_key(stage)
        if key is None:
            fail(f"{stage}: give --variant and --seed (dvc repro passes them in DVC_STAGE, e.g. {stage}@modulus-0)")
        variant, _, seed_text = key.rpartition("-")
        if not seed_text.isdigit():
            fail(f"{stage}: the DVC stage {key!r} is not <variant>-<seed>")
        seed = int(seed_text)
    if not NAME_PATTERN.fullmatch(variant) or variant not in params.models:
        fail(
            f"{stage}: variant {variant!r} is not defined under 'models' in params.yaml "
            f"(defined: {', '.join(params.models)})"
        )
    return variant, seed


def resolve_data_root(root: str) -> Path:
    """A configured data folder: absolute as given, relative to the origin repository otherwise."""
    return Path(root) if Path(root).is_absolute() else ORIGIN_ROOT / root


def fail_on_data_error(stage: str, exc: Exception) -> NoReturn:
    """Stop ``stage`` (e.g. ``train@modulus-0``) on a :class:`pcn.data.datasets.DataError`, naming the file.

    Raised in a DataLoader worker, the error reaches us wrapped in the worker's traceback; its
    last line is the message (with the image's path).
    """
    fail(f"{stage}: {str(exc).strip().splitlines()[-1]}")


# ----------------------------------------------------------------------------- results files

#: Columns of the results CSVs that hold names (pcn/analysis/views.py places, separation.py features).
TEXT_COLUMNS = ("place", "feature")


def read_csv(path: Path) -> list[dict]:
    """A results CSV as numbers; a truncated or damaged file stops the stage, naming it."""
    try:
        with open(path) as f:
            rows = [
                {
                    k: (v if k in TEXT_COLUMNS else int(v) if k in ("layer", "epoch", "dim") else float(v))
                    for k, v in row.items()
                }
                for row in csv.DictReader(f)
            ]
    except (ValueError, TypeError) as exc:
        fail(f"{path} is damaged or truncated ({exc}); rerun the stage that writes it (dvc repro -f)")
    if not rows:
        fail(f"{path} has no rows; rerun the stage that writes it (dvc repro -f)")
    return rows


def read_metrics(path: Path) -> dict:
    """A metrics.json whose test errors are finite; a damaged file or a NaN error stops the stage, naming it."""
    try:
        metrics = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        fail(f"{path} is damaged or truncated ({exc}); rerun the stage that writes it (dvc repro -f)")
    for key in ("test_error", "final_test_error", "best_test_error"):
        if key in metrics and not (isinstance(metrics[key], (int, float)) and math.isfinite(metrics[key])):
            fail(f"{path}: {key} is {metrics[key]!r}; a non-finite error cannot be averaged over seeds")
    return metrics


# ----------------------------------------------------------------------------- code identity


def _local_imports(path: Path) -> set[Path]:
    """The repository's own files that ``path`` imports: ``pcn`` modules (with the ``__init__.py`` of
    every package on the way) and the helpers in ``stages/``."""
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    found = set()
    for name in names:
        parts = name.split(".")
        if parts[0] == "pcn":
            for i in range(1, len(parts) + 1):
                package, module = ROOT.joinpath(*parts[:i]), ROOT.joinpath(*parts[:i]).with_suffix(".py")
                if (package / "__init__.py").is_file():
                    found.add(package / "__init__.py")
                elif module.is_file():
                    found.add(module)
        elif len(parts) == 1 and (ROOT / "stages" / f"{name}.py").is_file():
            found.add(ROOT / "stages" / f"{name}.py")
    return found


def source_files(script: str | Path) -> list[str]:
    """Repository-relative paths of ``script`` and every repository file it imports, transitively (not through
    the helpers of :data:`PROCESS_ONLY`, whose imports are not the stage's)."""
    todo, seen = [ROOT / script if not Path(script).is_absolute() else Path(script)], set()
    while todo:
        path = todo.pop().resolve()
        if path in seen:
            continue
        seen.add(path)
        if path.relative_to(ROOT).as_posix() not in PROCESS_ONLY:
            todo.extend(_local_imports(path) - seen)
    return sorted(p.relative_to(ROOT).as_posix() for p in seen)


#: Stage helpers that change how a stage process runs or what it sends to MLflow, not what it writes (like
#: params.yaml's ``runtime:`` section): a dependency of no stage, and neither are their imports.
PROCESS_ONLY = {"stages/process.py", "stages/warm.py", "stages/warm_server.py", "stages/registry.py"}


def code_dependencies(script: str | Path) -> list[str]:
    """The stage's code dependencies as dvc.yaml lists them: its script and stage helpers (files), and
    each part of the library its imports reach: a subpackage of ``pcn`` as a folder (``pcn/nn``), a
    top-level module as a file (``pcn/schema.py``, ``pcn/__init__.py``).

    A test checks that dvc.yaml matches; the train stage hashes them into its resume key.
    """
    deps = set()
    for name in set(source_files(script)) - PROCESS_ONLY:
        parts = name.split("/")
        deps.add("/".join(parts[:2]) if parts[0] == "pcn" and len(parts) > 2 else name)
    return sorted(deps)


def code_digest(script: str | Path) -> dict[str, str]:
    """``{file: sha256}`` of every Python file of :func:`code_dependencies` (all files of a folder, as DVC
    hashes them), so that a changed resume key names the file that changed."""
    digests = {}
    for dep in code_dependencies(script):
        path = ROOT / dep
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digests[file.relative_to(ROOT).as_posix()] = file_digest(file)
    return digests
