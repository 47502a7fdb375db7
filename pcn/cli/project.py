"""What every ``pcn`` subcommand needs: the project it runs in, its params file, and one way to stop."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn


class CommandError(Exception):
    """An expected failure of a subcommand: ``pcn`` prints ``error: <message>`` and exits with status 1."""


def fail(message: str) -> NoReturn:
    raise CommandError(message)


def find_root(start: Path | None = None) -> Path:
    """The pcn project that holds ``start`` (default: the current folder): the nearest folder up with a
    ``dvc.yaml`` and a ``.dvc`` folder."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "dvc.yaml").is_file() and (folder / ".dvc").is_dir():
            return folder
    fail(f"{here} is not inside a pcn project (no dvc.yaml with a .dvc folder above it); cd into your checkout")


def read_yaml_file(path: Path):
    """A params, preset or sweep file as YAML 1.2 (as DVC reads it: ``1e-3`` is a number, ``yes`` a string)."""
    from pcn.schema import ParamsError, read_params_file

    try:
        return read_params_file(Path(path))
    except ParamsError as exc:
        fail(str(exc))
