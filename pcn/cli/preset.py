"""``pcn preset``: apply a preset: ``pcn preset presets/cifar10.yaml [-- DVC EXP RUN OPTIONS]``.

A preset (``presets/*.yaml``) holds only what differs from params.yaml, as a nested mapping
(a mapping is merged key by key; a list or a scalar replaces the value). This command turns
it into DVC's own parameter overrides and runs ``dvc exp run --set-param key=value ...``, so
DVC applies the values to params.yaml and records them as the experiment's parameters
(``dvc exp show``). Options after ``--`` go to ``dvc exp run`` (``-- --queue``,
``-- -n cifar10``); ``--print`` shows the command instead of running it.

Why not a home-made merge into params.yaml, or DVC's Hydra composition: ``-S`` is DVC's
mechanism for changed parameters, so a preset run is an ordinary experiment (listed,
compared, applied or discarded with ``dvc exp``); Hydra composition would make params.yaml
a generated file that ``dvc exp run`` overwrites from ``conf/``, losing hand edits.

Before anything runs, the preset is checked: every key must exist in params.yaml (DVC's
``-S`` silently adds misspelled keys), except under ``models`` (the schema checks those), and the merged
params must pass the full validation (pcn/schema.py). The values are checked **as DVC will read them**
(:func:`as_dvc_reads`): the overrides go through DVC's own ``-S`` function into a private copy of params.yaml,
which is read back as a stage reads it, so a string that ``-S`` would turn into a number or a boolean
(``"1e3"``, ``"NaN"``, ``"True"``) is refused by key before any experiment starts, and params.yaml is never
touched.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

from pcn.cli.project import fail, find_root, read_yaml_file
from pcn.schema import ParamsError, parse_params

EXAMPLE = """examples:
  pcn preset presets/translated.yaml                 # runs dvc exp run --set-param data.name=translated_mnist ...
  pcn preset presets/cifar10.yaml -- --queue -n c10  # options after -- go to dvc exp run
  pcn preset presets/cifar10.yaml --print            # show the command, run nothing"""


def overlay(base, preset):
    """``base`` with ``preset`` merged in: mappings key by key, anything else replaced."""
    if isinstance(base, dict) and isinstance(preset, dict):
        merged = dict(base)
        for key, value in preset.items():
            merged[key] = overlay(base[key], value) if key in base else value
        return merged
    return preset


def unknown_keys(base: dict, preset: dict, prefix: str = "") -> list[str]:
    """Dotted keys of ``preset`` that ``base`` does not have. Under ``models`` new names and optional
    settings are allowed: the schema checks them (``parse_params`` names an unknown one)."""
    found = []
    for key, value in preset.items():
        dotted = f"{prefix}{key}"
        if key not in base:
            if not dotted.startswith("models."):
                found.append(dotted)
        elif isinstance(value, dict) and isinstance(base[key], dict):
            found += unknown_keys(base[key], value, f"{dotted}.")
    return found


def _flow(value) -> str:
    """A value as DVC's ``-S`` parses it (YAML): lists in flow style, strings as they are."""
    if isinstance(value, str):
        if not value or any(c.isspace() or c in "'\"{}[],#:" for c in value) or value in ("true", "false", "null"):
            raise ValueError(f"the string {value!r} cannot be passed to dvc exp run -S unambiguously")
        return value
    if isinstance(value, list):
        return "[" + ",".join(_flow(v) for v in value) + "]"
    if isinstance(value, dict):
        raise ValueError("nested mappings are flattened to dotted keys")
    return json.dumps(value)  # numbers, true/false, null


def set_params(base: dict, preset: dict, prefix: str = "") -> list[str]:
    """DVC ``--set-param`` overrides (Hydra's grammar), one per leaf of ``preset`` (mappings flattened to
    dotted keys): ``key=value`` for a key of ``base``, ``+key=value`` to add one (new model settings)."""
    out = []
    for key, value in preset.items():
        inner = base.get(key) if isinstance(base, dict) else None
        if isinstance(value, dict):
            out += set_params(inner if isinstance(inner, dict) else {}, value, f"{prefix}{key}.")
        else:
            add = "" if isinstance(base, dict) and key in base else "+"
            out.append(f"{add}{prefix}{key}={_flow(value)}")
    return out


def as_dvc_reads(base: dict, overrides: list[str]) -> dict:
    """params.yaml (``base``) after DVC's ``--set-param overrides``, as a stage reads it: applied by DVC's own
    function to a copy in a private temporary folder, then read back (YAML 1.2); params.yaml is not touched."""
    import tempfile

    import yaml
    from dvc.utils.hydra import apply_overrides

    from pcn.schema import read_params_file

    with tempfile.TemporaryDirectory(prefix="pcn-preset-") as folder:
        copy = Path(folder) / "params.yaml"
        copy.write_text(yaml.safe_dump(base, sort_keys=False))
        apply_overrides(str(copy), overrides)
        return read_params_file(copy)


def misread_keys(preset: dict, read: dict) -> list[str]:
    """``key: value as given -> value as DVC reads it`` for each leaf of ``preset`` that ``read`` holds otherwise
    (another type, or another value)."""
    from pcn.mappings import flatten

    got = flatten(read)
    return [
        f"{key}: {value!r} would be read as {got.get(key)!r}"
        for key, value in flatten(preset).items()
        if type(got.get(key)) is not type(value) or got.get(key) != value
    ]


def exp_run_command(base: dict, preset, label: str, base_name: str, extra: list[str]) -> list[str]:
    """The ``dvc exp run`` command that applies ``preset`` (a mapping) to ``base``; fails, naming ``label``
    and the key, when a key is unknown or the merged params do not validate."""
    if not isinstance(preset, dict):
        fail(f"{label}: expected a mapping of the params that differ from {base_name}")
    bad = unknown_keys(base, preset)
    if bad:
        fail(f"{label}: unknown keys {', '.join(bad)} (not in {base_name})")
    try:
        parse_params(overlay(base, preset), f"{base_name} with {label}")
        overrides = set_params(base, preset)
        read = as_dvc_reads(base, overrides)
    except (ParamsError, ValueError) as exc:
        fail(f"{label}: {exc}")
    except Exception as exc:  # DVC's own refusal of an override (InvalidArgumentError)
        fail(f"{label}: dvc exp run -S refuses it: {exc}")
    misread = misread_keys(preset, read)
    if misread:
        fail(f"{label}: dvc exp run -S would change these values (quote nothing; pick another): {'; '.join(misread)}")
    try:
        parse_params(read, f"{base_name} with {label}, as dvc exp run -S writes it")
    except (ParamsError, ValueError) as exc:
        fail(f"{label}: {exc}")
    return ["dvc", "exp", "run", *[arg for o in overrides for arg in ("--set-param", o)], *extra]


def command(preset_path: Path, params_path: Path, extra: list[str]) -> list[str]:
    """The ``dvc exp run`` command that applies the preset file; fails (naming the key) on a bad preset."""
    base, preset = read_yaml_file(params_path), read_yaml_file(preset_path)
    return exp_run_command(base, preset, str(preset_path), params_path.name, extra)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("preset", type=Path, help="a presets/*.yaml file")
    parser.add_argument("--params", type=Path, help="the params file to start from (default: the project's)")
    parser.add_argument("--print", action="store_true", help="print the dvc command instead of running it")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    root = find_root()
    cmd = command(args.preset, args.params or root / "params.yaml", extra)
    if args.print:
        print(" ".join(cmd))
        return 0
    return subprocess.call(cmd, cwd=root)  # an argument list: no shell sees the values
