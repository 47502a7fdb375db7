"""``pcn``: one command for everything that is not a DVC stage.

Each subcommand is a module of :mod:`pcn.cli` with ``SUMMARY`` (one line), ``EXAMPLE`` (shown by its
``--help``), ``add_arguments(parser)`` and ``run(args, extra) -> exit status``; ``extra`` holds the words
after ``--`` (options for the DVC command a subcommand runs). A module is imported only when its
subcommand runs, so ``pcn --help`` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: subcommand -> (module, one-line summary); the summaries are repeated here so that ``pcn --help`` imports nothing
SUBCOMMANDS = {
    "preset": ("pcn.cli.preset", "apply a presets/*.yaml file as a DVC experiment (dvc exp run --set-param ...)"),
    "sweep": ("pcn.cli.sweep", "queue a hyperparameter sweep (dvc exp run --queue), or tabulate its validation errors"),
    "study": ("pcn.cli.study", "queue a study (one data key over several values), or tabulate and plot it"),
    "repro": ("pcn.cli.repro", "run the stages dvc repro would run, side by side on a Dask cluster (GPUs, cores)"),
    "resync": ("pcn.cli.resync", "replay the MLflow journals left by an unreachable tracking store"),
    "aliases": ("pcn.cli.aliases", "check that the registry's aliases point at the workspace's models (--repair)"),
    "test-split": ("pcn.cli.test_split", "write a seed's held-out test split (images, labels) to an .npz file"),
    "model": ("pcn.cli.model", "load a registered model after verifying its files against their digests"),
    "baseline": ("pcn.cli.baseline", "commit dvc.lock and the report computed on this machine as the baseline"),
    "claims": ("pcn.cli.claims", "decide a written report's claims again from its rows, under the current rules"),
}

EPILOG = """examples:
  pcn preset presets/translated.yaml       # the translated-digits experiment
  pcn sweep sweeps/translated-lr.yaml table
  pcn study studies/translation-range.yaml table
  pcn repro --workers 2                    # dvc repro, two stages at a time
  pcn resync checkpoints/mlflow_pending/*.jsonl
  pcn aliases --repair                     # after dvc checkout: current and seed-<s> follow the workspace
  pcn test-split --seed 0                  # seed 0's test split, for a registered model
  pcn model load pcn-modulus@current       # verified against the digests recorded at registration
  pcn baseline                             # after dvc repro: this CPU's results become the clone's baseline
  pcn claims results/translated            # a written report's claims under the current rules

Run `pcn <command> --help` for a command's options and examples."""


class _TopFormatter(argparse.RawDescriptionHelpFormatter):
    """argparse measures the subcommands' names one indent short: a name over 8 letters would wrap its summary."""

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        self._action_max_length = max(self._action_max_length, 4 + max(map(len, SUBCOMMANDS)))


def parser_for(name: str) -> tuple[argparse.ArgumentParser, object]:
    """The parser of subcommand ``name`` and its module."""
    module = importlib.import_module(SUBCOMMANDS[name][0])
    parser = argparse.ArgumentParser(
        prog=f"pcn {name}",
        description=module.__doc__,
        epilog=module.EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    module.add_arguments(parser)
    return parser, module


def main(argv: list[str] | None = None) -> int:
    from pcn.cli.project import CommandError

    argv = sys.argv[1:] if argv is None else list(argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    top = argparse.ArgumentParser(
        prog="pcn",
        description="Phase collapse networks as a tracked pipeline: the drivers that are not DVC stages.",
        epilog=EPILOG,
        formatter_class=_TopFormatter,
    )
    commands = top.add_subparsers(dest="command", metavar="command", required=True)
    for name, (_, summary) in SUBCOMMANDS.items():
        commands.add_parser(name, help=summary, add_help=False)
    known, _ = top.parse_known_args(argv[:1])
    parser, module = parser_for(known.command)
    args = parser.parse_args(argv[1:])
    try:
        return module.run(args, extra)
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
