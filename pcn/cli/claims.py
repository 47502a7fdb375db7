"""``pcn claims REPORT_DIR``: decide a written report's claims again from its own rows, without training.

A report's ``table.json`` keeps every variant's per-seed results (``rows``: test errors, separation curves).
When the rules of :mod:`pcn.analysis.claims` change, or a researcher asks what another confidence level or
margin would decide, this command recomputes the claims from those rows with the current rules and prints
each claim's verdict beside the stored one. With ``--write`` it replaces the report's claims and paired
comparisons in ``table.json`` (recording how they were decided under ``claims_decided_by``) and rewrites
``table.md`` and ``summary.json`` (whose intervals follow the same rule); the rows and figures stay as the
report stage wrote them. ``--studies NAME ...`` sets the committed studies the report shows
(:mod:`pcn.analysis.report_studies`), as ``report.studies`` does for the report stage.

The margin and the premise threshold default to the project's params.yaml (``report.equivalence_margin``,
``report.vanishing_share``), the confidence level and Nadeau and Bengio's resampling ratio
(:mod:`pcn.analysis.statistics`) to the report's own. A report written before the evaluate stage recorded each
seed's split sizes has no ratio: ``--resampling`` gives it (``n_test / n_train`` of one seed's split).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

EXAMPLE = """examples:
  pcn claims results/translated                    # the committed run's claims under the current rules
  pcn claims results/translated --confidence 0.9   # what a 90% level would decide
  pcn claims results/translated --resampling 0.2778 --write   # Nadeau-Bengio: 1000 test / 3600 training
  pcn claims results/translated --studies translation-range --write   # show a committed study in the report"""

#: What each row of table.json must hold for the claims to be decided.
ROW_KEYS = ("variant", "arch", "nonlinearity", "test_error_by_seed", "views")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("report_dir", type=Path, help="a report folder inside the project, holding table.json")
    parser.add_argument("--confidence", type=float, default=None, help="level of the intervals (default: the report's)")
    parser.add_argument("--margin", type=float, default=None, help="default: params.yaml report.equivalence_margin")
    parser.add_argument(
        "--vanishing-share", type=float, default=None, help="default: params.yaml report.vanishing_share"
    )
    parser.add_argument(
        "--resampling",
        type=float,
        default=None,
        help="Nadeau-Bengio ratio n_test / n_train of each seed's own split (default: the report's, else 0)",
    )
    parser.add_argument(
        "--test-size",
        type=float,
        default=None,
        help="images in each seed's test split, for the binomial noise of the equivalence margins (default: the "
        "report's, else none)",
    )
    parser.add_argument(
        "--studies",
        nargs="*",
        metavar="NAME",
        default=None,
        help="committed studies (studies/NAME.json) the report shows, replacing its own (default: the report's; "
        "none: --studies with no name)",
    )
    parser.add_argument("--write", action="store_true", help="rewrite the report's table.json and table.md")


def read_report(root: Path, folder: Path) -> tuple[Path, dict]:
    """The resolved report folder (inside ``root``) and its ``table.json``, checked to hold decidable rows."""
    from pcn.cli.project import fail

    folder = (root / folder).resolve() if not folder.is_absolute() else folder.resolve()
    if not folder.is_relative_to(root):
        fail(f"{folder} is outside the project {root}: give a report folder inside it")
    path = folder / "table.json"
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        fail(f"{path}: no table.json (a report folder is what the report stage writes, e.g. results/report)")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        fail(f"{path}: not a readable JSON report ({exc})")
    rows = report.get("rows") if isinstance(report, dict) else None
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        fail(f"{path}: 'rows' must be a non-empty list of the variants' results")
    for r in rows:
        missing = [k for k in ROW_KEYS if k not in r]
        if missing:
            fail(f"{path}: row {r.get('variant', '?')!r} lacks {', '.join(missing)} (needed: {', '.join(ROW_KEYS)})")
    if not isinstance(report.get("claims", []), list):
        fail(f"{path}: 'claims' must be a list")
    report["rows"] = [seeds_as_numbers(r) for r in rows]
    return folder, report


def _numbered(mapping):
    """``mapping`` with its seed keys as numbers again (JSON writes ``0`` as ``"0"``); other values unchanged."""
    if not isinstance(mapping, dict):
        return mapping
    return {int(k) if isinstance(k, str) and k.isdigit() else k: v for k, v in mapping.items()}


def seeds_as_numbers(row: dict) -> dict:
    """A row of table.json with its per-seed mappings keyed by seed numbers, as the report stage built it, so
    that seeds sort as numbers (2 before 10) and the rewritten seed lists match the rows' ``seeds``."""
    row = dict(row, test_error_by_seed=_numbered(row["test_error_by_seed"]))
    if "resampled_split_by_seed" in row:
        row["resampled_split_by_seed"] = _numbered(row["resampled_split_by_seed"])
    if isinstance(row["views"], dict):
        row["views"] = {
            name: {
                k: dict(m, by_seed=_numbered(m["by_seed"])) if isinstance(m, dict) and "by_seed" in m else m
                for k, m in curves.items()
            }
            if isinstance(curves, dict)
            else curves
            for name, curves in row["views"].items()
        }
    return row


def decision_values(root: Path, args: argparse.Namespace, report: dict) -> dict:
    """The confidence, margin and premise threshold to decide with (module docstring), each checked."""
    from pcn.cli.project import fail
    from pcn.schema import ParamsError, load_params_file

    try:
        r = load_params_file(root / "params.yaml").report
    except ParamsError as exc:
        fail(str(exc))
    values = {
        "confidence": report.get("confidence") if args.confidence is None else args.confidence,
        "margin": r.equivalence_margin if args.margin is None else args.margin,
        "vanishing_share": r.vanishing_share if args.vanishing_share is None else args.vanishing_share,
        "resampling": report.get("resampling", 0.0) if args.resampling is None else args.resampling,
        "test_size": report.get("test_size") if args.test_size is None else args.test_size,
    }
    c = values["confidence"]
    if isinstance(c, bool) or not isinstance(c, (int, float)) or not 0 < c < 1:
        fail(f"confidence {c!r}: a level strictly between 0 and 1 (--confidence, or table.json's 'confidence')")
    for key in ("margin", "vanishing_share", "resampling"):
        v = values[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < math.inf:
            fail(f"{key} {v!r} (--{key.replace('_', '-')} or table.json): must be a finite number, zero or positive")
    n = values["test_size"]
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, float)) or not 1 <= n < math.inf):
        fail(f"test_size {n!r} (--test-size or table.json): must be a number of images, at least 1")
    return values


def shown_studies(root: Path, names: list[str]) -> dict[str, dict]:
    """The committed study tables of ``--studies``, each name checked as ``report.studies`` checks it."""
    from pcn.analysis.report_studies import StudyNotFound, read_studies
    from pcn.cli.project import fail
    from pcn.schema import study_name_errors

    errors = study_name_errors(names, "--studies")
    if errors:
        fail("; ".join(errors))
    try:
        return read_studies(root, names)
    except StudyNotFound as exc:
        fail(str(exc).replace("report.studies", "--studies", 1))


def decide_again(report: dict, values: dict) -> dict:
    """The report with its claims and paired comparisons decided under the current rules and ``values``
    (:func:`pcn.analysis.claims.check_claims`, :func:`pcn.analysis.report.comparisons`), and the texts to
    write: ``{"report", "table.json", "table.md", "summary.json"}``. Everything is computed before anything is
    written, so a report that cannot be decided or rendered costs no file."""
    from pcn.analysis.claims import check_claims
    from pcn.analysis.report import comparisons, interval_description, summary_metrics
    from pcn.analysis.report_markdown import markdown
    from pcn.cli.project import fail

    confidence, resampling = values["confidence"], values["resampling"]
    try:
        claims = check_claims(
            report["rows"], *(values[k] for k in ("confidence", "margin", "vanishing_share", "resampling", "test_size"))
        )
        decided = dict(report, claims=claims, confidence=confidence, resampling=resampling)
        decided["test_size"] = values["test_size"]
        decided["comparisons"], decided["notes"] = comparisons(report["rows"], confidence, resampling)
        decided["interval"] = interval_description(resampling)
        decided["claims_decided_by"] = {"command": "pcn claims", **values}
        texts = {"table.md": markdown(decided), "summary.json": summary_metrics(decided)}
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        fail(f"table.json's rows cannot be decided: {type(exc).__name__}: {exc}")
    return {"report": decided, "table.json": decided, **texts}


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from pcn.cli.project import find_root
    from pcn.files import write_json, write_text

    root = find_root()
    folder, report = read_report(root, args.report_dir)
    values = decision_values(root, args, report)
    if args.studies is not None:
        report["studies"] = shown_studies(root, args.studies)
    out = decide_again(report, values)
    listed = [c for c in report.get("claims", []) if isinstance(c, dict) and isinstance(c.get("claim"), int)]
    stored = {c["claim"]: c.get("verdict") for c in listed}
    for c in out["report"]["claims"]:
        before = stored.get(c["claim"], "(none)")
        change = "unchanged" if before == c["verdict"] else f"was: {before}"
        print(f"claim {c['claim']}: {c['verdict']} ({change})\n  {c['reason']}")
    if args.write:
        write_json(folder / "table.json", out["table.json"])
        write_text(folder / "table.md", out["table.md"])
        write_json(folder / "summary.json", out["summary.json"])
        print(f"wrote {', '.join(str(folder / f) for f in ('table.json', 'table.md', 'summary.json'))}")
    return 0
