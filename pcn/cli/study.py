"""``pcn study``: one quantity of the data over several values, as DVC experiments:
``pcn study studies/<name>.yaml queue|table``.

A study file (``studies/*.yaml``) names a preset, what the study sets on top of it (``set``: the seeds, the
variants, their recipe), the one params key that changes (``key``, dotted: ``data.translated_mnist.canvas``)
and its ``values``, the ``reference`` variant and the variants ``compare``-d with it. ``queue`` queues one
experiment per value (``dvc exp run --queue``, named ``<study>-<i>``, through the same checks as ``pcn
preset``); run them with ``dvc queue start -j 1``. ``table`` reads each finished experiment's report
(``results/report/table.json``, from DVC's cache at the experiment's commit: ``dvc.api.read``) and writes
``studies/<name>.json``, ``.md`` and ``.png``: per value the premise share and each compared variant's gap to
the reference with its interval, and whether the gap grows from the first value to the last
(:mod:`pcn.analysis.study`). Unlike a sweep, a study measures on the test split: it chooses nothing. As with
a sweep, ``table`` never turns a finished value of the committed table into ``pending`` (the experiments live
in one checkout's DVC store): it names the lost values and writes nothing, unless ``--overwrite``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pcn.cli.preset import overlay
from pcn.cli.project import fail, find_root
from pcn.cli.sweep import experiment_name, queue_experiments, read_points_file, show_experiments
from pcn.files import write_json, write_text

EXAMPLE = """examples:
  pcn study studies/translation-range.yaml queue && dvc queue start -j 1
  pcn study studies/translation-range.yaml table   # writes studies/translation-range.json, .md and .png"""

KEYS = {"preset", "set", "key", "values", "reference", "compare"}
REPORT = "results/report/table.json"


def load_study(path: Path, root: Path) -> dict:
    """The study file, checked: its keys, a preset inside the project ``root``, a dotted key, two or more
    different values, and a reference and compared variants among ``set.variants``."""
    study = read_points_file(path, root, KEYS)
    key = study["key"]
    if not isinstance(key, str) or not all(part.isidentifier() for part in key.split(".")):
        fail(f"{path}: key must be a dotted params key (e.g. data.translated_mnist.canvas), not {key!r}")
    variants = study["set"].get("variants") if isinstance(study["set"], dict) else None
    if not isinstance(variants, list):
        fail(f"{path}: set.variants must list the variants of the study")
    compare = study["compare"]
    if not isinstance(compare, list) or not compare or not all(isinstance(v, str) for v in compare):
        fail(f"{path}: compare must list the variants compared with the reference")
    if not isinstance(study["reference"], str) or study["reference"] in compare or len(set(compare)) != len(compare):
        fail(f"{path}: reference must be one variant name, and compare other variants, each once")
    missing = [v for v in [study["reference"], *compare] if v not in variants]
    if missing:
        fail(f"{path}: {', '.join(map(repr, missing))} not in set.variants ({', '.join(map(str, variants))})")
    return study


def nested(key: str, value) -> dict:
    """``{"a": {"b": value}}`` for the key ``"a.b"``."""
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def point_settings(study: dict, value) -> dict:
    """The preset, the study's ``set`` and ``key = value``."""
    return overlay(overlay(study["preset_settings"], study["set"]), nested(study["key"], value))


def value_at(params: dict, key: str):
    """The value of the dotted ``key`` in the nested ``params`` (None where a level is missing)."""
    for part in key.split("."):
        params = params.get(part) if isinstance(params, dict) else None
    return params


def read_report(root: Path, rev: str) -> dict:
    """The report (table.json) of the experiment at ``rev``, from DVC's cache (the file is a cached output)."""
    import dvc.api

    try:
        return json.loads(dvc.api.read(REPORT, repo=str(root), rev=rev))
    except Exception as exc:  # DVC's own errors: a missing output, an unknown revision
        fail(f"{REPORT} of experiment {rev}: cannot be read ({type(exc).__name__}: {exc})")


def finished_reports(path: Path, study: dict, found: dict[str, dict], read) -> dict[int, dict]:
    """``{value index: report}`` of the finished experiments, each checked to have run its value."""
    reports = {}
    for i, value in enumerate(study["values"]):
        name = experiment_name(path, i)
        data = found.get(name) or {}
        if not data:
            continue
        params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
        if value_at(params, study["key"]) != value:
            fail(f"experiment {name} ran {study['key']}={value_at(params, study['key'])!r}, not {value!r}")
        reports[i] = read(data.get("rev") or name)
    return reports


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The study file, the action, and the options of ``table``."""
    parser.add_argument("study", type=Path, help="a studies/*.yaml file")
    parser.add_argument("action", choices=("queue", "table"))
    parser.add_argument("--params", type=Path, help="the params file to start from (default: the project's)")
    parser.add_argument("--show-json", type=Path, help="read this `dvc exp show --json` output instead of running it")
    parser.add_argument("--confidence", type=float, default=0.95, help="level of the intervals (default 0.95)")
    parser.add_argument("--overwrite", action="store_true", help="replace finished values of the table by pending")


def lost_values(committed: Path, table: dict) -> list:
    """The values finished in the ``committed`` table that the new one has as pending."""
    try:
        old = json.loads(committed.read_text()) if committed.is_file() else {}
        finished = {json.dumps(p["value"]) for p in old.get("points") or [] if not p.get("pending")}
    except (json.JSONDecodeError, AttributeError, TypeError, KeyError) as exc:
        fail(f"{committed}: not a study table ({exc}); move it away or pass --overwrite")
    return [p["value"] for p in table["points"] if p.get("pending") and json.dumps(p["value"]) in finished]


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from pcn.analysis.plots import plot_study
    from pcn.analysis.study import StudyError, study_table
    from pcn.analysis.study_markdown import study_markdown

    root = find_root()
    study = load_study(args.study, root)
    if args.action == "queue":
        points = [
            (experiment_name(args.study, i), point_settings(study, v), f"{args.study} ({study['key']}={v!r})")
            for i, v in enumerate(study["values"])
        ]
        return queue_experiments(points, args.params or root / "params.yaml", root)
    if not 0 < args.confidence < 1:
        fail(f"--confidence must lie strictly between 0 and 1, not {args.confidence}")
    found = show_experiments(root, args.show_json)
    reports = finished_reports(args.study, study, found, lambda rev: read_report(root, rev))
    try:
        table = study_table(study, reports, args.confidence)
    except (StudyError, KeyError, TypeError, ValueError) as exc:
        fail(f"{args.study}: {exc}")
    stem = args.study.with_suffix("")
    text = study_markdown(table, f"Study `{args.study}`")
    print(text)
    lost = lost_values(Path(f"{stem}.json"), table)
    if lost and not args.overwrite:
        fail(
            f"{stem}.json: not written: this checkout's DVC does not have the finished experiments of "
            f"{study['key']} = {', '.join(map(repr, lost))} (pending above); run `table` where they ran, or "
            "pass --overwrite"
        )
    write_json(Path(f"{stem}.json"), {"study": str(args.study), **table})
    write_text(Path(f"{stem}.md"), text)
    if any(not p.get("pending") for p in table["points"]):
        plot_study(table, Path(f"{stem}.png"))
    return 0
