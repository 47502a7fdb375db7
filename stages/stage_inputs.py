"""What a stage is given: its params (validated) and its name from DVC; and how it
stops on an expected failure (:func:`fail`: one line, no traceback)."""

from __future__ import annotations

import os
from typing import NoReturn

from workspace import PARAMS_PATH


def fail(message: str) -> NoReturn:
    """Stop the stage with ``error: message`` on stderr and exit status 1 (no traceback)."""
    raise SystemExit(f"error: {message}")


def load_params(path=None):
    """Read and strictly validate params.yaml; exit with the full list of problems on error."""
    from pcn.schema import ParamsError, load_params_file

    try:
        return load_params_file(path or PARAMS_PATH)
    except ParamsError as exc:
        fail(str(exc))


def dvc_stage_key(stage: str) -> str | None:
    """The key of the running DVC stage ``<stage>@<key>`` (``train@modulus-0`` -> ``modulus-0``), or None.

    DVC passes the stage's name in the environment (``DVC_STAGE``) of every command it runs, so the stage
    commands in dvc.yaml hold no name at all: no shell ever sees a variant name.
    """
    name = os.environ.get("DVC_STAGE", "").rsplit(":", 1)[-1]  # "sub/dvc.yaml:train@x-0" in a subfolder
    base, at, key = name.partition("@")
    return key if at and base == stage else None


def stage_variant_and_seed(stage: str, variant: str | None, seed: int | None, params) -> tuple[str, int]:
    """``--variant`` and ``--seed`` as given, or read from the DVC stage's name; either way checked: the variant
    must be a valid name defined under ``models`` (a stage may run without ``validate``: ``dvc repro -s``)."""
    from pcn.schema import NAME_PATTERN

    if variant is None or seed is None:
        key = dvc_stage_key(stage)
        if key is None:
            fail(f"{stage}: give --variant and --seed (dvc repro passes them in DVC_STAGE, e.g. {stage}@modulus-0)")
        variant, _, seed_text = key.rpartition("-")
        if not seed_text.isdigit():
            fail(f"{stage}: the DVC stage {key!r} is not <variant>-<seed>")
        seed = int(seed_text)
    if not NAME_PATTERN.fullmatch(variant) or variant not in params.models:
        fail(
            f"{stage}: variant {variant!r} is not defined under 'models' in params.yaml "
            f"(defined: {', '.join(params.models)})"
        )
    return variant, seed


def run_arguments(stage: str, params, description: str):
    """``--variant`` and ``--seed`` of a per-run stage (``train``, ``evaluate``), read from DVC's stage name
    when not given, and checked (:func:`stage_variant_and_seed`)."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--variant", help="a key of `models` in params.yaml (default: from DVC's stage name)")
    parser.add_argument("--seed", type=int, help="one of `seeds` in params.yaml (default: from DVC's stage name)")
    args = parser.parse_args()
    args.variant, args.seed = stage_variant_and_seed(stage, args.variant, args.seed, params)
    return args
