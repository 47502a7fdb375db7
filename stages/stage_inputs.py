"""What a stage is given: its params (validated) and its name from DVC; and how it
stops on an expected failure (:func:`fail`: one line, no traceback).

No params value is credited that a result was not computed with.

DVC reads params.yaml for dvc.lock after a stage's command ends. A stage checks, at its very end, that params.yaml
still holds what it read at its start (:meth:`pcn.pipeline.provenance.Provenance.refuse_if_changed`, the last
call of the stage), and records what it read beside its outputs (:data:`RECORD`, in ``results/train/<run>`` and
``results/evaluate/<run>``). What is left, an edit between the command's end and DVC's read, is caught by the
next stage any ``dvc repro`` runs: :func:`lock_problems` compares every value dvc.lock credits to a stage with the
value recorded in its outputs, and the stage stops, naming the stage, the key and both values, and the command
that recomputes it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

from workspace import PARAMS_PATH, ROOT

#: params.yaml as this stage read it (set by :func:`load_params`), recorded beside its outputs.
PARAMS_READ: dict = {}


def fail(message: str) -> NoReturn:
    """Stop the stage with ``error: message`` on stderr and exit status 1 (no traceback)."""
    raise SystemExit(f"error: {message}")


def load_params(path=None):
    """Read and strictly validate params.yaml; exit with the full list of problems on error. Under DVC, first
    check that dvc.lock credits no other stage with a value its outputs were not computed with
    (:func:`lock_problems`)."""
    from pcn.schema import ParamsError, parse_params, read_params_file

    if os.environ.get("DVC_STAGE"):
        problems = lock_problems(ROOT, skip=os.environ["DVC_STAGE"].rsplit(":", 1)[-1])
        if problems:
            fail("; ".join(problems))
    path = path or PARAMS_PATH
    try:
        data = read_params_file(path)
        params = parse_params(data, str(path))
    except ParamsError as exc:
        fail(str(exc))
    PARAMS_READ.clear()
    PARAMS_READ.update(data)
    return params


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


#: The params a stage read (the whole params.yaml as it read it), beside its outputs.
RECORD = "params_read.json"
_MISSING = object()


def record_params(out_dir: Path) -> None:
    """Write params.yaml as this stage read it (:data:`PARAMS_READ`), beside its outputs in ``out_dir``."""
    from pcn.files import write_json

    write_json(Path(out_dir) / RECORD, PARAMS_READ)


def lookup(data, dotted: str):
    """The value at dotted key ``dotted`` of a nested mapping (``_MISSING`` if absent)."""
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return _MISSING
        data = data[part]
    return data


def lock_problems(root: Path, skip: str | None = None) -> list[str]:
    """Each value that ``root``'s dvc.lock credits to a stage (other than ``skip``) but that the stage's outputs
    record another value for; ``[]`` when all agree or nothing is recorded."""
    import json

    from pcn.mappings import changed_keys, flatten
    from pcn.schema import ParamsError, read_params_file

    try:  # YAML 1.2, as DVC writes it (``1e-07`` is a number)
        lock = read_params_file(Path(root) / "dvc.lock") if (Path(root) / "dvc.lock").is_file() else {}
    except ParamsError:
        return []
    problems = []
    for stage, entry in ((lock or {}).get("stages") or {}).items():
        credited = ((entry or {}).get("params") or {}).get("params.yaml") or {}
        if stage == skip or not credited:
            continue
        for out in entry.get("outs") or []:
            recorded_file = Path(root) / str(out.get("path", "")) / RECORD
            try:
                recorded = json.loads(recorded_file.read_bytes().decode())
            except (OSError, ValueError):
                continue
            for key, value in sorted(credited.items()):
                read = lookup(recorded, key)
                if read is _MISSING or read == value:
                    continue
                credited_flat, read_flat = flatten({key: value}), flatten({key: read})
                for name in changed_keys({key: value}, {key: read})[:3]:
                    problems.append(
                        f"{stage}: dvc.lock credits {name} = {json.dumps(credited_flat.get(name))[:80]} but "
                        f"{out['path']} was computed with {json.dumps(read_flat.get(name))[:80]} (params.yaml changed "
                        f"before DVC recorded it); recompute it: dvc repro -f -s {stage}"
                    )
    return problems
