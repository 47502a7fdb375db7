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

A study runs in pieces (a checkout may not outlive a session): ``queue --pending`` queues only the values that
the committed table lacks, ``queue --only 28 40`` only those values (as written in the study file), and
``table --keep-committed`` keeps the committed table's finished values that this checkout lacks (when the
committed table was made with the same ``set``, reference, compared variants and confidence), naming them
(``kept``). Every experiment read is checked to have run its value with the study's settings (its key, then each leaf
of the preset and ``set``), so a value run before ``set`` changed is named, not mixed in.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pcn.cli.preset import overlay
from pcn.cli.project import fail, find_root
from pcn.cli.sweep import add_piece_arguments, experiment_name, queue_experiments, read_points_file, show_experiments
from pcn.files import write_json, write_text

EXAMPLE = """examples:
  pcn study studies/translation-range.yaml queue && dvc queue start -j 1
  pcn study studies/translation-range.yaml queue --pending --only 28 40   # a piece: values not yet committed
  pcn study studies/translation-range.yaml table --keep-committed         # keeps committed values run elsewhere
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


def leaves(settings: dict, prefix: str = ""):
    """``(dotted key, value)`` of every leaf of the nested ``settings`` (a list is a leaf)."""
    for key, value in settings.items():
        if isinstance(value, dict) and value:
            yield from leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def finished_reports(path: Path, study: dict, found: dict[str, dict], read) -> dict[int, dict]:
    """``{value index: report}`` of the finished experiments, each checked to have run its value with the
    study's settings (its key first, then every leaf of :func:`point_settings`)."""
    reports = {}
    for i, value in enumerate(study["values"]):
        name = experiment_name(path, i)
        data = found.get(name) or {}
        if not data:
            continue
        params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
        for key, wanted in [(study["key"], value), *leaves(point_settings(study, value))]:
            if value_at(params, key) != wanted:
                fail(
                    f"experiment {name} ran {key}={value_at(params, key)!r}, not {wanted!r}: queue it again "
                    f"(`queue --only {json.dumps(value)}`)"
                )
        reports[i] = read(data.get("rev") or name)
    return reports


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The study file, the action, and the options of ``table``."""
    parser.add_argument("study", type=Path, help="a studies/*.yaml file")
    parser.add_argument("action", choices=("queue", "table"))
    parser.add_argument("--params", type=Path, help="the params file to start from (default: the project's)")
    parser.add_argument("--show-json", type=Path, help="read this `dvc exp show --json` output instead of running it")
    parser.add_argument("--confidence", type=float, default=0.95, help="level of the intervals (default 0.95)")
    parser.add_argument("--only", nargs="+", metavar="VALUE", help="queue: only these values of the study file")
    add_piece_arguments(parser, "study")


def read_committed(committed: Path) -> dict:
    """The committed study table (``{}`` when there is none); anything else than a table is named."""
    try:
        old = json.loads(committed.read_text()) if committed.is_file() else {}
        if not isinstance(old, dict) or not all(isinstance(p, dict) and "value" in p for p in old.get("points") or []):
            raise TypeError("its points are not a list of values")
    except (json.JSONDecodeError, TypeError, UnicodeDecodeError) as exc:
        fail(f"{committed}: not a study table ({exc}); move it away or pass --overwrite")
    return old


def finished_values(table: dict) -> dict[str, dict]:
    """``{value as JSON: point}`` of the finished points of a study ``table``."""
    return {json.dumps(p["value"]): p for p in table.get("points") or [] if not p.get("pending")}


def queued_indices(path: Path, study: dict, pending: bool, only: list[str] | None) -> list[int]:
    """The indices of the values to queue: all, or those the committed table lacks (``pending``), or those
    named in ``only`` (written as in the study file: ``28``; each read as YAML and matched to a value)."""
    import yaml

    todo = list(range(len(study["values"])))
    if only:
        written = [json.dumps(v) for v in study["values"]]
        wanted = [json.dumps(yaml.safe_load(v)) for v in only]
        unknown = [v for v, w in zip(only, wanted) if w not in written]
        if unknown:
            fail(f"--only {' '.join(unknown)}: not values of {path} (valid: {', '.join(written)})")
        todo = [i for i in todo if written[i] in wanted]
    if pending:
        done = finished_values(read_committed(path.with_suffix(".json")))
        todo = [i for i in todo if json.dumps(study["values"][i]) not in done]
    return todo


def kept_points(committed: Path, old: dict, study: dict, confidence: float) -> dict[int, dict]:
    """``{value index: point}`` of the committed table ``old``'s finished values, when it was made with the
    same settings, reference, compared variants and confidence as the study now (else they cannot be mixed)."""
    same = {"set": study["set"], "reference": study["reference"], "compare": study["compare"], "confidence": confidence}
    differ = [key for key, value in same.items() if old.get(key) != value]
    if differ and old:
        fail(
            f"{committed}: the committed table differs from the study in {', '.join(differ)}: its values cannot be kept"
        )
    done = finished_values(old)
    return {i: done[json.dumps(v)] for i, v in enumerate(study["values"]) if json.dumps(v) in done}


def lost_values(old: dict, table: dict) -> list:
    """The values finished in the committed table ``old`` that the new one has as pending."""
    finished = finished_values(old)
    return [p["value"] for p in table["points"] if p.get("pending") and json.dumps(p["value"]) in finished]


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from pcn.analysis.plots import plot_study
    from pcn.analysis.study import StudyError, study_table
    from pcn.analysis.study_markdown import study_markdown

    root = find_root()
    study = load_study(args.study, root)
    if args.action == "queue":
        values = study["values"]
        points = [
            (
                experiment_name(args.study, i),
                point_settings(study, values[i]),
                f"{args.study} ({study['key']}={values[i]!r})",
            )
            for i in queued_indices(args.study, study, args.pending, args.only)
        ]
        if not points:
            print(f"{args.study.with_suffix('.json')}: every value asked for is finished; nothing queued")
            return 0
        return queue_experiments(points, args.params or root / "params.yaml", root)
    if not 0 < args.confidence < 1:
        fail(f"--confidence must lie strictly between 0 and 1, not {args.confidence}")
    found = show_experiments(root, args.show_json)
    reports = finished_reports(args.study, study, found, lambda rev: read_report(root, rev))
    stem, committed = args.study.with_suffix(""), args.study.with_suffix(".json")
    old = read_committed(committed)
    kept = kept_points(committed, old, study, args.confidence) if args.keep_committed else {}
    try:
        table = study_table(study, reports, args.confidence, kept)
    except (StudyError, KeyError, TypeError, ValueError) as exc:
        fail(f"{args.study}: {exc}")
    text = study_markdown(table, f"Study `{args.study}`")
    print(text)
    lost = lost_values(old, table)
    if lost and not args.overwrite:
        fail(
            f"{committed}: not written: this checkout's DVC does not have the finished experiments of "
            f"{study['key']} = {', '.join(map(repr, lost))} (pending above); run `table` where they ran, or "
            "pass --keep-committed or --overwrite"
        )
    write_json(committed, {"study": str(args.study), "set": study["set"], **table})
    write_text(Path(f"{stem}.md"), text)
    if any(not p.get("pending") for p in table["points"]):
        plot_study(table, Path(f"{stem}.png"))
    return 0
