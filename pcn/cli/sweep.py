"""``pcn sweep``: a hyperparameter sweep on the validation split: ``pcn sweep sweeps/<name>.yaml queue|table``.

A sweep file (``sweeps/*.yaml``) names a preset (the settings under test), what the sweep changes on top of
it for every point (``set``: usually one seed and the variants that represent each family), one per-variant
setting (``parameter``: ``models.<variant>.<parameter>`` of every variant in ``set.variants``) and its
``values``. ``queue`` queues one DVC experiment per value (``dvc exp run --queue``, named
``<sweep>-<i>``, through the same checks as ``pcn preset``); run them with ``dvc queue start -j 1``.
``table`` reads the finished experiments (``dvc exp show --json``) and writes ``sweeps/<name>.md`` and
``.json``: per variant, the validation error (``results/report/summary.json``: ``val_error_pct``, mean
over the sweep's seeds) at every value, and the value with the lowest one. The test split is never read.
``table`` never replaces a finished value of the committed table with ``pending`` (the experiments live in
one checkout's DVC store; a fresh clone does not have them): it prints the new table, names the lost points
and writes nothing, unless ``--overwrite``. ``--keep-committed`` finishes a sweep run in pieces: the
committed table's finished values that this checkout lacks are kept (same experiment and value), named in
the table (``kept``), and the choice is made again over them; ``queue --pending`` queues only the values
that the committed table lacks.

Choosing, per variant v: ``argmin_value val_error(v, value)`` (ties: the first value listed).
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

from pcn.cli.preset import exp_run_command, overlay
from pcn.cli.project import fail, find_root, read_yaml_file
from pcn.files import write_json, write_text

EXAMPLE = """examples:
  pcn sweep sweeps/translated-lr.yaml queue && dvc queue start -j 1
  pcn sweep sweeps/translated-lr.yaml table   # writes sweeps/translated-lr.md and .json"""

KEYS = {"preset", "set", "parameter", "values"}
SUMMARY = "results/report/summary.json"


def read_points_file(path: Path, root: Path, keys: set[str]) -> dict:
    """A sweep or study file, checked: exactly ``keys``, a preset inside the project ``root``, a list of at
    least two different values; with the preset's settings under ``preset_settings``."""
    spec = read_yaml_file(path)
    if not isinstance(spec, dict) or set(spec) != keys:
        fail(f"{path}: expected exactly the keys {', '.join(sorted(keys))}")
    preset = (root / str(spec["preset"])).resolve()
    if not preset.is_relative_to(root) or not preset.is_file():
        fail(f"{path}: preset {spec['preset']!r} is not a file of this repository")
    values = spec["values"]
    if not isinstance(values, list) or len(values) < 2 or len(set(map(json.dumps, values))) != len(values):
        fail(f"{path}: values must be a list of at least two different values")
    return {**spec, "preset_settings": read_yaml_file(preset)}


def load_sweep(path: Path, root: Path) -> dict:
    """The sweep file, checked (:func:`read_points_file`, then its variants and parameter)."""
    sweep = read_points_file(path, root, KEYS)
    if not isinstance(sweep["set"], dict) or not isinstance(sweep["set"].get("variants"), list):
        fail(f"{path}: set.variants must list the variants swept")
    if not isinstance(sweep["parameter"], str) or not sweep["parameter"].isidentifier():
        fail(f"{path}: parameter must be the name of a per-variant setting (e.g. lr)")
    return sweep


def point_settings(sweep: dict, value) -> dict:
    """The preset, the sweep's ``set`` and ``models.<variant>.<parameter> = value`` for every swept variant."""
    swept = {"models": {v: {sweep["parameter"]: value} for v in sweep["set"]["variants"]}}
    return overlay(overlay(sweep["preset_settings"], sweep["set"]), swept)


def experiment_name(path: Path, index: int) -> str:
    return f"{path.stem}-{index}"


def queue_experiments(points: list[tuple[str, dict, str]], params_path: Path, root: Path) -> int:
    """Queue one experiment per ``(name, settings, label)`` (``dvc exp run --queue -n name`` with the settings
    on top of ``params_path``); every command is checked before the first is queued."""
    base = read_yaml_file(params_path)
    commands = [
        exp_run_command(base, settings, label, params_path.name, ["--queue", "-n", name])
        for name, settings, label in points
    ]
    for cmd in commands:
        status = subprocess.call(cmd, cwd=root)  # an argument list: no shell sees the values
        if status:
            return status
    print(f"queued {len(commands)} experiments; run them with: dvc queue start -j 1")
    return 0


def queue(path: Path, sweep: dict, params_path: Path, root: Path, pending: bool = False) -> int:
    """Queue one experiment per value of the sweep (``pending``: per value that the committed table lacks)."""
    committed, todo = path.with_suffix(".json"), None
    if pending and committed.is_file():
        try:
            todo = pending_indices(path, sweep, json.loads(committed.read_text()))
        except (json.JSONDecodeError, AttributeError, TypeError) as exc:
            fail(f"{committed}: not a sweep table ({exc}); move it away or queue without --pending")
    points = [
        (experiment_name(path, i), point_settings(sweep, value), f"{path} (value {value!r})")
        for i, value in enumerate(sweep["values"])
        if todo is None or i in todo
    ]
    if not points:
        print(f"{committed}: every value is finished; nothing queued")
        return 0
    return queue_experiments(points, params_path, root)


def pending_indices(path: Path, sweep: dict, committed: dict) -> set[int]:
    """The values (indices) whose point in the ``committed`` table is missing, of another value, or pending for
    one of the sweep's variants."""
    points = {p.get("experiment"): p for p in committed.get("points") or [] if isinstance(p, dict)}
    todo = set()
    for i, value in enumerate(sweep["values"]):
        point = points.get(experiment_name(path, i)) or {}
        errors = point.get("val_error_pct") or {}
        if point.get("value") != value or any(errors.get(v) is None for v in sweep["set"]["variants"]):
            todo.add(i)
    return todo


def show_experiments(root: Path, show_json: Path | None = None) -> dict[str, dict]:
    """:func:`experiments` of ``dvc exp show --json --all-commits`` (or of a saved output, ``show_json``)."""
    if show_json:
        return experiments(json.loads(show_json.read_text()))
    out = subprocess.run(["dvc", "exp", "show", "--json", "--all-commits"], cwd=root, capture_output=True, text=True)
    if out.returncode:
        fail(f"dvc exp show failed: {out.stderr.strip()}")
    return experiments(json.loads(out.stdout))


#: Queue states of an experiment whose results are final (no executor entry: run outside the queue).
FINISHED = (None, "success")


def experiments(show: list) -> dict[str, dict]:
    """``{experiment name: its data}`` from ``dvc exp show --json`` (experiments nest under their baseline).

    An experiment that is queued, running or failed maps to ``{}`` (pending): DVC shows a running one with the
    metrics of its workspace, which are the baseline's until its ``report`` stage writes its own.
    """
    found = {}

    def walk(node, state=None):
        if isinstance(node, dict):
            if isinstance(node.get("executor"), dict):
                state = node["executor"].get("state")
            if isinstance(node.get("name"), str) and isinstance(node.get("data"), dict):
                found.setdefault(node["name"], node["data"] if state in FINISHED else {})
            for value in node.values():
                walk(value, state)
        elif isinstance(node, list):
            for value in node:
                walk(value, state)

    walk(show)
    return found


def sweep_table(path: Path, sweep: dict, found: dict[str, dict]) -> dict:
    """Per variant and value, the validation error of the finished experiments, and the chosen value."""
    parameter, variants = sweep["parameter"], sweep["set"]["variants"]
    points = []
    for i, value in enumerate(sweep["values"]):
        data = found.get(experiment_name(path, i)) or {}
        params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
        metrics = ((data.get("metrics") or {}).get(SUMMARY) or {}).get("data") or {}
        val = metrics.get("val_error_pct") or {}
        models = params.get("models") or {}
        for v in variants:
            if (models.get(v) or {}).get(parameter) not in (None, value):
                fail(
                    f"experiment {experiment_name(path, i)} ran {v} with {parameter}="
                    f"{models[v][parameter]!r}, not {value!r}: queue the sweep again"
                )
        points.append(
            {"value": value, "experiment": experiment_name(path, i), "val_error_pct": {v: val.get(v) for v in variants}}
        )
    return {"sweep": str(path), "parameter": parameter, "set": sweep["set"], "points": points, "chosen": choose(points)}


def choose(points: list[dict]) -> dict:
    """Per variant, the value of the lowest validation error (ties: the first listed); None while one is pending."""
    chosen = {}
    for v in points[0]["val_error_pct"]:
        done = [(p["val_error_pct"][v], i) for i, p in enumerate(points) if p["val_error_pct"][v] is not None]
        chosen[v] = points[min(done)[1]]["value"] if len(done) == len(points) else None
    return chosen


def keep_committed(old: dict, new: dict) -> list[str]:
    """Fill ``new``'s pending points with the finished ones of the committed table ``old`` (same experiment and
    value: the sweep was run in pieces, in checkouts that do not share a DVC store); choose again. Returns the
    ``experiment/variant`` points kept, also recorded in ``new["kept"]``."""
    kept = []
    for before, after in zip(old.get("points") or [], new["points"]):
        if (before.get("experiment"), before.get("value")) != (after["experiment"], after["value"]):
            continue
        for v, error in (before.get("val_error_pct") or {}).items():
            if error is not None and v in after["val_error_pct"] and after["val_error_pct"][v] is None:
                after["val_error_pct"][v] = error
                kept.append(f"{after['experiment']}/{v}")
    new["chosen"], new["kept"] = choose(new["points"]), kept
    return kept


def lost_points(old: dict, new: dict) -> list[str]:
    """The ``experiment/variant`` points with a value in the ``old`` table that the ``new`` one has as pending."""
    lost = []
    for before, after in zip(old.get("points") or [], new["points"]):
        for v, error in (before.get("val_error_pct") or {}).items():
            if error is not None and after["val_error_pct"].get(v) is None:
                lost.append(f"{before.get('experiment')}/{v}")
    return lost


def markdown(table: dict) -> str:
    """The table as Markdown, its columns in increasing value when every value is a number (a value added to a
    sweep later goes last in its file, so that the experiments already run keep their names)."""
    points = table["points"]
    if all(isinstance(p["value"], (int, float)) and not isinstance(p["value"], bool) for p in points):
        points = sorted(points, key=lambda p: p["value"])
    values = [p["value"] for p in points]
    lines = [
        f"# Sweep `{table['sweep']}`: {table['parameter']} chosen on the validation split",
        "",
        f"Settings on top of the preset: `{json.dumps(table['set'])}`. Validation error % (mean over the "
        "seeds above; the model kept by train.select, on each seed's validation split). Chosen: the lowest; "
        "`pending`: the experiment has not finished.",
        "",
        "| variant | " + " | ".join(f"{table['parameter']} = {v}" for v in values) + " | chosen |",
        "|---|" + "---|" * (len(values) + 1),
    ]
    for v, chosen in table["chosen"].items():
        cells = [p["val_error_pct"][v] for p in points]
        cells = [
            "pending" if c is None else f"**{c:.2f}**" if p["value"] == chosen else f"{c:.2f}"
            for c, p in zip(cells, points)
        ]
        lines.append(f"| {v} | " + " | ".join(cells) + f" | {'pending' if chosen is None else chosen} |")
    if table.get("kept"):
        lines += ["", f"Kept from the committed table (run in another checkout): {', '.join(table['kept'])}."]
    return "\n".join(lines) + "\n"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep", type=Path, help="a sweeps/*.yaml file")
    parser.add_argument("action", choices=("queue", "table"))
    parser.add_argument("--params", type=Path, help="the params file to start from (default: the project's)")
    parser.add_argument("--show-json", type=Path, help="read this `dvc exp show --json` output instead of running it")
    add_piece_arguments(parser, "sweep")


def add_piece_arguments(parser: argparse.ArgumentParser, kind: str) -> None:
    """The options of a sweep or study (``kind``) run in pieces: ``--pending``, ``--overwrite`` or
    ``--keep-committed``."""
    parser.add_argument("--pending", action="store_true", help="queue: only the values the committed table lacks")
    keep = parser.add_mutually_exclusive_group()
    keep.add_argument("--overwrite", action="store_true", help="replace finished values of the table by pending")
    keep.add_argument(
        "--keep-committed",
        action="store_true",
        help=f"keep the committed table's finished values that this checkout lacks (a {kind} run in pieces)",
    )


def run(args: argparse.Namespace, extra: list[str]) -> int:
    root = find_root()
    sweep = load_sweep(args.sweep, root)
    if args.action == "queue":
        return queue(args.sweep, sweep, args.params or root / "params.yaml", root, args.pending)
    table = sweep_table(args.sweep, sweep, show_experiments(root, args.show_json))
    stem = args.sweep.with_suffix("")
    committed = Path(f"{stem}.json")
    try:
        old = json.loads(committed.read_text()) if committed.is_file() else {}
        if args.keep_committed:
            keep_committed(old, table)
        lost = lost_points(old, table)
    except (json.JSONDecodeError, AttributeError, TypeError) as exc:
        fail(f"{committed}: not a sweep table ({exc}); move it away or pass --overwrite")
    print(markdown(table))
    if lost and not args.overwrite:
        fail(
            f"{committed}: not written: this checkout's DVC does not have the finished experiments of "
            f"{', '.join(lost)} (pending above); run `table` where they ran, or pass --keep-committed or --overwrite"
        )
    write_json(committed, table)
    write_text(Path(f"{stem}.md"), markdown(table))
    return 0
