"""Shared plumbing of the stage scripts: params, paths, device, MLflow, process environment.

This is the only place that reads params.yaml and the environment (DVC_ROOT,
MLFLOW_TRACKING_URI, torchrun's RANK/WORLD_SIZE/LOCAL_RANK); the library gets typed values.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import yaml

# Outputs go to the workspace the stage runs in (a temporary copy under .dvc/tmp/exps for queued
# experiments); the MLflow store lives in the repository DVC was started from (DVC_ROOT), so that
# queued and temporary runs land in the same, persistent database. Relative data.root paths
# (raw CIFAR-10 downloads, which git ignores and DVC does not copy) are resolved there too.
ROOT = Path(__file__).resolve().parents[1]
ORIGIN_ROOT = Path(os.environ.get("DVC_ROOT", ROOT)).resolve()
sys.path.insert(0, str(ROOT))

from pcn.config import Params, ParamsError, parse_params  # noqa: E402
from pcn.distributed import DistInfo  # noqa: E402

DATA_DIR = ROOT / "data" / "prepared"
FILTERS_DIR = ROOT / "results" / "filters"
MODELS_DIR = ROOT / "models"
CHECKPOINTS_DIR = ROOT / "checkpoints"
TRAIN_DIR = ROOT / "results" / "train"
EVAL_DIR = ROOT / "results" / "evaluate"
REPORT_DIR = ROOT / "results" / "report"


def load_params(path: Path | None = None) -> Params:
    """Read and strictly validate params.yaml; exit with the full list of problems on error."""
    path = Path(path or ROOT / "params.yaml")
    try:
        with open(path) as f:
            raw = yaml.safe_load(f)
        return parse_params(raw, str(path))
    except FileNotFoundError:
        sys.exit(f"error: {path} not found")
    except yaml.YAMLError as exc:
        sys.exit(f"error: {path} is not valid YAML: {exc}")
    except ParamsError as exc:
        sys.exit(f"error: {exc}")


def dist_info() -> DistInfo:
    return DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                    int(os.environ.get("LOCAL_RANK", 0)))


def select_device(name: str, info: DistInfo):
    import torch
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            sys.exit("error: train.device is 'cuda' but no CUDA device is available; valid: auto, cpu, cuda")
        return torch.device("cuda", info.local_rank)
    from pcn.runtime import retain_freed_memory
    retain_freed_memory()          # large CPU temporaries reuse memory instead of page-faulting
    return torch.device("cpu")


def tracking_uri(params: Params) -> str:
    from pcn.tracking import default_tracking_uri
    return os.environ.get("MLFLOW_TRACKING_URI") or params.tracking.uri or default_tracking_uri(ORIGIN_ROOT)


def start_tracking(params: Params) -> str:
    """Check the store (fail fast), create the experiment once, point MLflow at it; returns the experiment id."""
    import mlflow

    from pcn.tracking import TrackingError, check_tracking_uri, ensure_experiment
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = tracking_uri(params)
    try:
        check_tracking_uri(uri)
        experiment_id = ensure_experiment(uri, params.tracking.experiment, ORIGIN_ROOT / "mlartifacts")
    except TrackingError as exc:
        sys.exit(f"error: {exc}")
    mlflow.set_tracking_uri(uri)
    return experiment_id


def run_tags(params: Params, stage: str, variant: str | None) -> dict[str, str]:
    from pcn.tracking import git_commit
    tags = {"dvc.stage": stage, "git.commit": git_commit(ROOT), "params.sha256": params.stage_hash(variant),
            "data.name": params.data.name}
    if variant:
        tags["dvc.variant"] = variant
    for env, tag in (("DVC_EXP_NAME", "dvc.exp_name"), ("DVC_EXP_BASELINE_REV", "dvc.baseline_rev")):
        if os.environ.get(env):
            tags[tag] = os.environ[env]
    card = DATA_DIR / "card.json"
    if card.is_file():
        tags["data.card_sha256"] = json.loads(card.read_text()).get("checksums", {}).get("train_images.npy", "")
    return tags


def write_json(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True))
    os.replace(tmp, path)


def write_csv(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = list(rows[0])
    lines = [",".join(keys)] + [",".join(_fmt(r[k]) for k in keys) for r in rows]
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, path)


def _fmt(v) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


def input_spec(card: dict):
    from pcn.factory import InputSpec
    return InputSpec(card["channels"], card["image_size"], card["num_classes"])
