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
    "resync": ("pcn.cli.resync", "replay the MLflow journals left by an unreachable tracking store"),
}

EPILOG = """examples:
  pcn preset presets/translated.yaml       # the translated-digits experiment
  pcn sweep sweeps/translated-lr.yaml table
  pcn resync checkpoints/mlflow_pending/*.jsonl

Run `pcn <command> --help` for a command's options and examples."""


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
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
