"""A stage's MLflow run: the store, the pipeline execution's parent run, the stage's run and its tags.

Reads the environment that DVC and the user set (MLFLOW_TRACKING_URI, DVC_EXP_NAME,
DVC_EXP_BASELINE_REV, PCN_PIPELINE_ID, PCN_TRACKING=off: no tracking at all) and passes typed values to
:mod:`pcn.tracking.runs`.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path

from pcn.files import file_digest
from pcn.layout import run_name

from stage_inputs import fail
from workspace import ORIGIN_ROOT, ROOT, WORKSPACE

logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)  # its start/stop notes are noise here


def tracking_uri(params) -> str:
    from pcn.tracking.store import pipeline_tracking_uri

    return pipeline_tracking_uri(ORIGIN_ROOT, params.tracking.uri, os.environ.get("MLFLOW_TRACKING_URI"))


def open_tracking(params):
    """Check the store (fail fast, naming it), create the experiment once; returns ``(client, experiment_id)``."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from pcn.tracking.store import TrackingError, check_tracking_uri, ensure_experiment

    uri = tracking_uri(params)
    try:
        check_tracking_uri(uri)
        experiment_id = ensure_experiment(uri, params.tracking.experiment, ORIGIN_ROOT / "mlartifacts")
    except TrackingError as exc:
        fail(str(exc))
    mlflow.set_tracking_uri(uri)  # for mlflow.pytorch.log_model, which reads it
    return MlflowClient(uri), experiment_id


def pipeline_identity() -> tuple[str, str] | None:
    """``(id, label)`` of the DVC command this stage runs under, or None when run by hand.

    The id is the nearest ``dvc`` ancestor process (pid and start time) plus the DVC
    experiment name, so every stage of one ``dvc repro`` or ``dvc exp run`` shares it and two
    executions never do. ``PCN_PIPELINE_ID`` overrides it.
    """
    if os.environ.get("PCN_PIPELINE_ID"):  # pcn repro sets both; PCN_PIPELINE_LABEL names the parent run
        return os.environ["PCN_PIPELINE_ID"], os.environ.get("PCN_PIPELINE_LABEL") or os.environ["PCN_PIPELINE_ID"]
    import datetime

    import psutil

    for process in psutil.Process().parents():
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


def pipeline_alive(ident: str) -> bool:
    """Whether the DVC process of pipeline id ``ident`` (``<exp>:<pid>:<start time>``, :func:`pipeline_identity`)
    still runs: the same pid with the same start time. Ids of another form (``PCN_PIPELINE_ID``) count as alive."""
    import psutil

    try:
        _, pid, started = ident.rsplit(":", 2)
        pid, started = int(pid), float(started)
    except ValueError:
        return True
    try:
        return abs(psutil.Process(pid).create_time() - started) < 0.01
    except psutil.Error:
        return False


def run_tags(params, stage: str, variant: str | None = None, seed: int | None = None) -> dict[str, str]:
    import getpass

    from pcn.tracking.runs import git_commit, host_tags

    commit = git_commit(ROOT)
    tags = {
        **host_tags(),
        "dvc.stage": stage,
        "git.commit": commit,
        "data.name": params.data.name,
        # what the MLflow UI shows in its Source, User and Version columns
        "mlflow.source.name": f"stages/{stage}.py",
        "mlflow.source.type": "LOCAL",
        "mlflow.source.git.commit": commit,
        "mlflow.user": getpass.getuser(),
    }
    what = f"{stage}@{run_name(variant, seed)}" if variant is not None else stage
    tags["mlflow.note.content"] = (
        f"DVC stage {what} on {params.data.name} (python stages/{stage}.py; "
        f"params.yaml at commit {commit[:12] or 'unknown'} plus any uncommitted change)"
    )
    if variant is not None:
        tags["dvc.variant"] = variant
    if seed is not None:
        tags["seed"] = str(seed)
    for env, tag in (("DVC_EXP_NAME", "dvc.exp_name"), ("DVC_EXP_BASELINE_REV", "dvc.baseline_rev")):
        if os.environ.get(env):
            tags[tag] = os.environ[env]
    if os.environ.get("PCN_DASK_WORKER"):  # the Dask worker of `pcn repro` that ran this stage
        tags["dask.worker"] = os.environ["PCN_DASK_WORKER"]
    card = WORKSPACE.data_dir / "card.json"
    if card.is_file():
        tags["data.card_sha256"] = file_digest(card)
    return tags


class NullRun:
    """Stands for the MLflow run on ranks other than 0 and with tracking off: every call does nothing."""

    run_id, pending, journal = None, 0, None

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def describe_parent(client, parent_id: str, params, label: str) -> None:
    """Once per execution: the parent run gets the params it ran with (flattened params.yaml) and a description
    (the DVC command, the experiment's name and what it changed from its baseline, when DVC says so)."""
    from dataclasses import asdict

    from mlflow.entities import Param

    from pcn.mappings import flatten

    if client.get_run(parent_id).data.params:
        return
    flat = {
        k: str(v)[:6000] for k, v in flatten(asdict(params), lists_as_json=True).items() if not k.startswith("runtime.")
    }
    items = [Param(k, v) for k, v in sorted(flat.items())]
    for start in range(0, len(items), 100):  # MLflow takes at most 100 params per call
        client.log_batch(parent_id, params=items[start : start + 100])
    exp = os.environ.get("DVC_EXP_NAME")
    note = f"`dvc exp run` of experiment {exp}" if exp else "`dvc repro`"
    if os.environ.get("PCN_PIPELINE_LABEL", "").startswith("pcn repro"):
        note = "`pcn repro` (dvc repro --single-item of each stage, on a Dask cluster)"
    if os.environ.get("DVC_EXP_BASELINE_REV"):
        note += f" on baseline commit {os.environ['DVC_EXP_BASELINE_REV'][:12]}"
    client.set_tag(
        parent_id,
        "mlflow.note.content",
        f"{label}: {note}; variants {', '.join(params.variants)}, "
        f"seeds {params.seeds}, data {params.data.name}. Its params are those of params.yaml then.",
    )


def _raise_terminated(signum, frame):
    from pcn.tracking.runs import Terminated

    raise Terminated(f"signal {signum}")


@contextmanager
def stage_run(params, stage: str, variant: str | None = None, seed: int | None = None, enabled: bool = True):
    """The stage's MLflow run (a :class:`pcn.tracking.runs.StageRun`), nested under the pipeline's parent run.

    Opened before the stage's work and closed FINISHED, FAILED or KILLED (Ctrl-C, SIGTERM).
    ``enabled=False`` (ranks other than 0) yields a :class:`NullRun`, and so does ``PCN_TRACKING=off`` in the
    environment (a machine without MLflow: bench/device_check.py on a lent GPU).
    """
    if not enabled or os.environ.get("PCN_TRACKING") == "off":
        yield NullRun()
        return
    import hashlib as _hashlib

    from pcn.tracking.runs import StageRun, pipeline_parent
    from pcn.tracking.store import store_lock

    client, experiment_id = open_tracking(params)
    identity = pipeline_identity()
    parent_id, suffix = None, ""
    common_tags = run_tags(params, stage)
    if identity is not None:
        ident, label = identity
        short = _hashlib.sha1(ident.encode()).hexdigest()[:4]
        suffix = f" #{short}"
        try:
            parent_id = pipeline_parent(
                client,
                experiment_id,
                ident,
                f"{label}{suffix}",
                {k: v for k, v in common_tags.items() if k not in ("dvc.stage", "dask.worker")},
                store_lock(tracking_uri(params), ORIGIN_ROOT / "mlartifacts"),
                alive=pipeline_alive,
            )
            describe_parent(client, parent_id, params, label)
        except Exception as exc:  # the stage's own run still opens (or fails) below
            print(f"warning: no parent run ({exc})", file=sys.stderr)
    name = stage if variant is None else f"{stage}@{run_name(variant, seed)}"
    # outside DVC's outputs, and under the repository DVC was started from: a queued experiment's temporary
    # copy is deleted when it ends, its journal must not be
    journal = ORIGIN_ROOT / "checkpoints" / "mlflow_pending" / f"{name}.jsonl"
    interval = 2.0 if params.runtime.system_metrics else 0.0
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        with StageRun(
            client,
            experiment_id,
            f"{name}{suffix}",
            run_tags(params, stage, variant, seed),
            journal,
            parent_id,
            interval,
            roots=(ROOT, ORIGIN_ROOT),
        ) as run:
            yield run
    finally:
        signal.signal(signal.SIGTERM, previous)
