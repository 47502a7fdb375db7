"""``pcn aliases``: do the registry's aliases follow the workspace? ``pcn aliases [--repair]``.

The report stage moves ``current`` and ``seed-<s>`` of each registered model ``pcn-<variant>`` to the versions
of the workspace's models when a pipeline execution completes. Whatever else puts models in place does not run
it: ``dvc checkout`` back to a baseline after an experiment, or a restore from DVC's run cache. Then the aliases
still point at the models of another workspace state (``models:/pcn-modulus@current`` serves a discarded
experiment's model).

This command compares each alias with the version whose resume key (tag ``pcn.resume_key``) matches the
workspace's ``models/<variant>-<seed>/model.pt``, for the variants and seeds of params.yaml: it prints each
mismatch and exits with status 1 (0 when they all agree); ``--repair`` moves the aliases that differ. The store
is the pipeline's: ``MLFLOW_TRACKING_URI``, else ``tracking.uri`` of params.yaml, else the project's
``mlflow.db`` (``--uri`` overrides them).
"""

from __future__ import annotations

import argparse
import os
import sys

EXAMPLE = """examples:
  pcn aliases           # after dvc checkout: do current and seed-<s> point at the workspace's models?
  pcn aliases --repair  # move those that do not"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repair", action="store_true", help="move the aliases that do not match the workspace")
    parser.add_argument("--uri", default=None, help="the MLflow store (default: the pipeline's)")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from mlflow.tracking import MlflowClient

    from pcn.cli.project import fail, find_root
    from pcn.layout import Workspace
    from pcn.schema import ParamsError, load_params_file
    from pcn.tracking.registry import move_aliases, stale_aliases
    from pcn.tracking.store import TrackingError, check_tracking_uri, pipeline_tracking_uri

    root = find_root()
    try:
        params = load_params_file(root / "params.yaml")
    except ParamsError as exc:
        fail(str(exc))
    uri = args.uri or pipeline_tracking_uri(root, params.tracking.uri, os.environ.get("MLFLOW_TRACKING_URI"))
    try:
        check_tracking_uri(uri)
    except TrackingError as exc:
        fail(str(exc))
    client, workspace = MlflowClient(uri), Workspace(root)
    stale = stale_aliases(client, workspace, params.variants, params.seeds)
    for name, alias, version, wanted in stale:
        pointed = f"version {version}" if version else "nothing"
        print(
            f"warning: {name}@{alias} points at {pointed}, the workspace's model is version {wanted}", file=sys.stderr
        )
    if not stale:
        print(f"the aliases follow the workspace ({', '.join(params.variants)}; seeds {params.seeds})")
        return 0
    if not args.repair:
        print("run `pcn aliases --repair` to move them", file=sys.stderr)
        return 1
    move_aliases(client, workspace, params.variants, params.seeds)
    print(f"moved {len(stale)} alias(es) to the workspace's models")
    return 0
