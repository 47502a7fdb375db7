"""``pcn repro``: the stages ``dvc repro`` would run, run side by side on a Dask cluster.

Each stage that DVC reports to run (same targets, DVC's own graph and status) is a Dask task running
``dvc --wait-for-lock repro --single-item <stage>``, started when the stages it depends on have finished.
DVC keeps ``dvc.lock``, the run cache and the outputs. By default a local cluster has one worker per GPU (each
seeing only its GPU) or, on CPU, ``--workers N`` workers sharing the cores; ``--scheduler`` uses a running
Dask scheduler whose workers share this checkout's filesystem. With an SQLite MLflow store, one
``mlflow server`` on 127.0.0.1 writes it for the execution, and every stage run nests under one parent run.

A failed stage is named with its log; the stages that depend on it are not started, the others go on, and
the exit status is 1. Ctrl-C stops every task; the stages that finished stay recorded.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from pcn.cli.project import fail, find_root, read_yaml_file

EXAMPLE = """examples:
  pcn repro --workers 2                     # this machine's cores, 2 stages at a time
  pcn repro                                 # one worker per GPU
  pcn repro 'train@modulus-0' --dry         # the plan and a wall-time estimate, nothing run
  pcn repro --scheduler tcp://10.0.0.5:8786 # a running Dask cluster sharing this checkout"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("targets", nargs="*", help="stages or dvc.yaml files, as for dvc repro (default: all)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, help="local workers (default: one per GPU, else 1)")
    where.add_argument("--scheduler", help="address of a running Dask scheduler (tcp://host:port)")
    parser.add_argument("--downstream", action="store_true", help="the targets and the stages after them")
    parser.add_argument("--force", action="store_true", help="run every planned stage, changed or not")
    parser.add_argument("--retries", type=int, default=1, help="Dask retries of a failed stage (default 1)")
    parser.add_argument("--dry", action="store_true", help="print the plan and a wall-time estimate; run nothing")


def tracking_settings(root: Path) -> tuple[str | None, str]:
    """``(store URI or None when tracking is off, experiment)`` as the stages would resolve them."""
    from pcn.schema import ParamsError, parse_params
    from pcn.tracking.store import pipeline_tracking_uri

    try:
        params = parse_params(read_yaml_file(root / "params.yaml"), "params.yaml")
    except ParamsError as exc:
        fail(str(exc).splitlines()[0])
    if os.environ.get("PCN_TRACKING") == "off":
        return None, params.tracking.experiment
    uri = pipeline_tracking_uri(root, params.tracking.uri, os.environ.get("MLFLOW_TRACKING_URI"))
    return uri, params.tracking.experiment


def print_plan(steps, uri: str | None, experiment: str, workers: int) -> None:
    from pcn.cli.repro_plan import estimate
    from pcn.cli.repro_tracking import past_durations
    from pcn.tracking.store import sqlite_path

    for step in steps:
        after = f" (after {', '.join(step.needs)})" if step.needs else ""
        print(f"{'run' if step.run else 'up to date':>10}  {step.name}{after}")
    todo = sum(s.run for s in steps)
    print(f"{todo} of {len(steps)} stages to run")
    durations = {}
    store = sqlite_path(uri) if uri else None
    if uri and todo and (store is None or store.is_file()):  # reading must not create a store
        try:
            durations = past_durations(uri, experiment)
        except Exception as exc:  # an estimate is optional
            print(f"no estimate: MLflow store {uri} unreadable ({str(exc).splitlines()[0][:200]})")
    one, many = estimate(steps, durations, workers)
    if one is None:
        print("no estimate: some stage has never finished in MLflow")
    elif todo:
        print(f"estimate from past MLflow runs: {one:.0f} s on 1 worker, {many:.0f} s on {workers} workers")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from pcn.cli.repro_cluster import gpu_count
    from pcn.cli.repro_plan import plan

    if args.workers is not None and args.workers < 1:
        fail(f"--workers {args.workers}: give at least 1")
    root = find_root()
    uri, experiment = tracking_settings(root)
    try:
        steps = plan(root, args.targets, downstream=args.downstream, force=args.force)
    except ValueError as exc:
        fail(str(exc))
    workers = args.workers or gpu_count() or 1
    if args.dry:
        print_plan(steps, uri, experiment, workers)
        return 0
    if not any(s.run for s in steps):
        print("nothing to run: every stage is up to date")
        return 0
    from pcn.cli.repro_execute import execute

    return execute(root, steps, args, uri, experiment)
