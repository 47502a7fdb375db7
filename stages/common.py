"""Shared plumbing of the stage scripts: params, paths, process environment, code identity, MLflow runs.

This is the only place that reads params.yaml and the environment (DVC_ROOT, DVC_EXP_NAME,
MLFLOW_TRACKING_URI, torchrun's RANK/WORLD_SIZE/LOCAL_RANK); the library gets typed values.
Import it before torch: it sets the OpenMP environment (:func:`pcn.runtime.thread_environment`).
"""
from __future__ import annotations

import ast
import hashlib
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

# Outputs go to the workspace the stage runs in (a temporary copy under .dvc/tmp/exps for queued
# experiments); the MLflow store lives in the repository DVC was started from (DVC_ROOT), so that
# queued and temporary runs land in the same, persistent database. Relative data roots (raw
# CIFAR-10 downloads, which git ignores and DVC does not copy) are resolved there too.
ROOT = Path(__file__).resolve().parents[1]
ORIGIN_ROOT = Path(os.environ.get("DVC_ROOT", ROOT)).resolve()
sys.path.insert(0, str(ROOT))

from pcn.preload import delegate  # noqa: E402  (standard library only)
from pcn.runtime import thread_environment  # noqa: E402  (torch-free: must precede torch)

thread_environment()
_SCRIPT = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
if _SCRIPT is not None and _SCRIPT.parent == ROOT / "stages" and _SCRIPT.name != "common.py":
    delegate(str(_SCRIPT))         # run this stage in the warm interpreter if there is one (pcn/preload.py)
# A dead tracking server must cost seconds, not MLflow's default minutes of retries.
for _key, _value in (("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2"), ("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1"),
                     ("MLFLOW_HTTP_REQUEST_TIMEOUT", "10"), ("MLFLOW_DISABLE_TELEMETRY", "true")):
    os.environ.setdefault(_key, _value)

import logging  # noqa: E402

logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)   # its start/stop notes are noise here

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
    from pcn.config import ParamsError, parse_params
    path = Path(path or ROOT / "params.yaml")
    try:
        return parse_params(read_params_file(path), str(path))
    except ParamsError as exc:
        fail(str(exc))


def run_name(variant: str, seed: int) -> str:
    """The (variant, seed) folder and stage suffix: ``modulus-0``."""
    return f"{variant}-{seed}"


def resolve_data_root(root: str) -> Path:
    """A configured data folder: absolute as given, relative to the origin repository otherwise."""
    return Path(root) if Path(root).is_absolute() else ORIGIN_ROOT / root


def dist_info():
    from pcn.distributed import DistInfo
    return DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                    int(os.environ.get("LOCAL_RANK", 0)))


def input_spec(card: dict):
    from pcn.factory import InputSpec
    return InputSpec(card["channels"], card["image_size"], card["num_classes"])


def fail_on_data_error(stage: str, exc: Exception) -> NoReturn:
    """Stop ``stage`` (e.g. ``train@modulus-0``) on a :class:`pcn.data.DataError`, naming the file.

    Raised in a DataLoader worker, the error reaches us wrapped in the worker's traceback; its
    last line is the message (with the image's path).
    """
    fail(f"{stage}: {str(exc).strip().splitlines()[-1]}")


def load_required(path: Path, what: str, missing: str) -> dict:
    """A plain-data torch file (:func:`pcn.checkpoint.load`); stop with a message naming it if it is
    missing (``missing`` says what to run), unreadable or unsafe."""
    from pcn.checkpoint import CheckpointError, load
    try:
        obj = load(path, what)
    except CheckpointError as exc:
        fail(str(exc))
    if obj is None:
        fail(f"{path} is missing; {missing}")
    return obj


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------- code identity

def _local_imports(path: Path) -> set[Path]:
    """The repository's own modules that ``path`` imports (``pcn.*`` and the stage helpers)."""
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
            for candidate in (ROOT.joinpath(*parts).with_suffix(".py"), ROOT.joinpath(*parts[:-1]).with_suffix(".py")):
                if candidate.is_file():
                    found.add(candidate)
        elif len(parts) == 1 and (ROOT / "stages" / f"{name}.py").is_file():
            found.add(ROOT / "stages" / f"{name}.py")
    return found


def source_files(script: str | Path) -> list[str]:
    """Repository-relative paths of ``script`` and every repository module it imports, transitively.

    These are the stage's code dependencies: listed in dvc.yaml (a test checks that they
    match) and hashed into the training resume key.
    """
    todo, seen = [ROOT / script if not Path(script).is_absolute() else Path(script)], set()
    while todo:
        path = todo.pop().resolve()
        if path in seen:
            continue
        seen.add(path)
        todo.extend(_local_imports(path) - seen)
    return sorted(p.relative_to(ROOT).as_posix() for p in seen)


def code_digest(script: str | Path) -> dict[str, str]:
    """``{file: sha256}`` of :func:`source_files`."""
    return {name: file_sha256(ROOT / name) for name in source_files(script)}


# ----------------------------------------------------------------------------- MLflow

def tracking_uri(params) -> str:
    from pcn.tracking import default_tracking_uri
    return os.environ.get("MLFLOW_TRACKING_URI") or params.tracking.uri or default_tracking_uri(ORIGIN_ROOT)


def open_tracking(params):
    """Check the store (fail fast, naming it), create the experiment once; returns ``(client, experiment_id)``."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from pcn.tracking import TrackingError, check_tracking_uri, ensure_experiment
    uri = tracking_uri(params)
    try:
        check_tracking_uri(uri)
        experiment_id = ensure_experiment(uri, params.tracking.experiment, ORIGIN_ROOT / "mlartifacts")
    except TrackingError as exc:
        fail(str(exc))
    mlflow.set_tracking_uri(uri)            # for mlflow.pytorch.log_model, which reads it
    return MlflowClient(uri), experiment_id


def pipeline_identity() -> tuple[str, str] | None:
    """``(id, label)`` of the DVC command this stage runs under, or None when run by hand.

    The id is the nearest ``dvc`` ancestor process (pid and start time) plus the DVC
    experiment name, so every stage of one ``dvc repro`` or ``dvc exp run`` shares it and two
    executions never do. ``PCN_PIPELINE_ID`` overrides it.
    """
    if os.environ.get("PCN_PIPELINE_ID"):
        return os.environ["PCN_PIPELINE_ID"], os.environ["PCN_PIPELINE_ID"]
    import datetime

    import psutil
    # under the warm interpreter (pcn/preload.py) the stage's own ancestry is the client's
    start = psutil.Process(int(os.environ.get("PCN_CLIENT_PID") or os.getpid()))
    for process in start.parents():
        try:
            cmdline = process.cmdline()
        except psutil.Error:
            continue
        words = [Path(w).name for w in cmdline[:3]]
        if "dvc" in words or ("-m" in words and "dvc" in cmdline[:4]):
            started = datetime.datetime.fromtimestamp(process.create_time())
            exp = os.environ.get("DVC_EXP_NAME", "")
            ident = f"{exp}:{process.pid}:{process.create_time():.3f}"
            label = f"exp {exp}" if exp else f"repro {started:%Y-%m-%d %H:%M:%S}"
            return ident, label
    return None


def run_tags(params, stage: str, variant: str | None = None, seed: int | None = None) -> dict[str, str]:
    from pcn.tracking import git_commit
    tags = {"dvc.stage": stage, "git.commit": git_commit(ROOT), "data.name": params.data.name}
    if variant is not None:
        tags["dvc.variant"] = variant
    if seed is not None:
        tags["seed"] = str(seed)
    for env, tag in (("DVC_EXP_NAME", "dvc.exp_name"), ("DVC_EXP_BASELINE_REV", "dvc.baseline_rev")):
        if os.environ.get(env):
            tags[tag] = os.environ[env]
    card = DATA_DIR / "card.json"
    if card.is_file():
        tags["data.card_sha256"] = file_sha256(card)
    return tags


class NullRun:
    """Stands for the MLflow run on ranks other than 0: every call does nothing."""

    run_id = None

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def _raise_terminated(signum, frame):
    from pcn.tracking import Terminated
    raise Terminated(f"signal {signum}")


@contextmanager
def stage_run(params, stage: str, variant: str | None = None, seed: int | None = None, enabled: bool = True):
    """The stage's MLflow run (a :class:`pcn.tracking.StageRun`), nested under the pipeline's parent run.

    Opened before the stage's work and closed FINISHED, FAILED or KILLED (Ctrl-C, SIGTERM).
    ``enabled=False`` (ranks other than 0) yields a :class:`NullRun`.
    """
    if not enabled:
        yield NullRun()
        return
    import hashlib as _hashlib

    from pcn.tracking import StageRun, pipeline_parent, store_lock
    client, experiment_id = open_tracking(params)
    identity = pipeline_identity()
    parent_id, suffix = None, ""
    common_tags = run_tags(params, stage)
    if identity is not None:
        ident, label = identity
        short = _hashlib.sha1(ident.encode()).hexdigest()[:4]
        suffix = f" #{short}"
        try:
            parent_id = pipeline_parent(client, experiment_id, ident, f"{label}{suffix}",
                                        {k: v for k, v in common_tags.items() if k != "dvc.stage"},
                                        store_lock(tracking_uri(params), ORIGIN_ROOT / "mlartifacts"))
        except Exception as exc:          # the stage's own run still opens (or fails) below
            print(f"warning: no parent run ({exc})", file=sys.stderr)
    name = stage if variant is None else f"{stage}@{run_name(variant, seed)}"
    journal = CHECKPOINTS_DIR / "mlflow_pending" / f"{name}.jsonl"     # outside DVC's outputs: kept
    interval = 2.0 if params.runtime.system_metrics else 0.0
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        with StageRun(client, experiment_id, f"{name}{suffix}", run_tags(params, stage, variant, seed),
                      journal, parent_id, interval) as run:
            yield run
    finally:
        signal.signal(signal.SIGTERM, previous)
