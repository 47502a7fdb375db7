"""``pcn resync``: send the MLflow entries that a stage journaled while its tracking store did not answer.

Only entries for the store given (``--uri``; default: the project's ``mlflow.db``; the environment is not
read) and artifacts inside the project (``--root``, default: the project folder) are sent; every other
entry is moved to the quarantine file next to its journal (:mod:`pcn.tracking.journal`). Each journal is
reported; the exit status is 1 if entries had to be kept because the store did not answer.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pcn.cli.project import find_root

EXAMPLE = """examples:
  pcn resync checkpoints/mlflow_pending/*.jsonl
  pcn resync --uri http://127.0.0.1:5000 checkpoints/mlflow_pending/train@modulus-0.jsonl"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("journals", nargs="+", type=Path, help="journal files (checkpoints/mlflow_pending/*.jsonl)")
    parser.add_argument("--uri", default=None, help="the store to send to (default: the project's mlflow.db)")
    parser.add_argument("--root", type=Path, action="append", help="a folder artifacts may come from (repeatable)")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from mlflow.tracking import MlflowClient

    from pcn.tracking.journal import replay
    from pcn.tracking.runs import answers
    from pcn.tracking.store import default_tracking_uri

    root = None if args.uri and args.root else find_root()
    uri = args.uri or default_tracking_uri(root)
    roots = tuple(args.root or [root])
    client, status = MlflowClient(uri), 0
    for path in args.journals:
        if not path.is_file():
            print(f"{path}: no such journal", file=sys.stderr)
            status = 1
            continue
        report = replay(path, client, roots, answers=answers)
        line = f"{path}: {report.sent} entries sent, {len(report.quarantined)} quarantined"
        print(f"{line}, {report.kept} kept (store unreachable)" if report.kept else line)
        status = status or (1 if report.kept else 0)
    return status
