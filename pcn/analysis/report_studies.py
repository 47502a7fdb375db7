"""Committed studies shown in a report (``report.studies``).

A study (``pcn study``, :mod:`pcn.analysis.study`) runs the pipeline at several values of one quantity (the
translation range) and commits its table as ``studies/<name>.json`` with its figure ``studies/<name>.png``. A
report that names it in ``report.studies`` carries that table in ``table.json`` (``studies``: name -> table,
with the study file it came from) and shows it in ``table.md`` with its figure, so that the mechanism curve
(the modulus-to-phase-preserving gap and the premise share against the translation range) is read beside the
claims it bears on. The study is not recomputed: its runs are separate experiments, each with its own report.

The figure is linked, not copied (the report stage's outputs are fixed in dvc.yaml): the link is relative to a
report folder two levels below the repository root (``results/report``, ``results/translated``).
"""

from __future__ import annotations

import json
from pathlib import Path

from pcn.analysis.study_markdown import study_markdown

#: Where committed studies live, relative to the repository root.
STUDIES_DIR = "studies"
#: What a study table must hold to be shown (:func:`pcn.analysis.study_markdown.study_markdown` reads them).
STUDY_KEYS = ("key", "values", "points", "reference", "compare", "confidence", "growth")


class StudyNotFound(ValueError):
    """A study named in ``report.studies`` is not committed or not readable (the message names it)."""


def committed_studies(root: Path) -> list[str]:
    """The names of the committed study tables (``studies/<name>.json``), sorted."""
    return sorted(p.stem for p in (root / STUDIES_DIR).glob("*.json"))


def read_study(root: Path, name: str) -> dict:
    """The committed table of study ``name`` (its name already checked by the schema: a file stem, no folder)."""
    path = root / STUDIES_DIR / f"{name}.json"
    where = f"report.studies: {name!r} ({path.relative_to(root)})"
    if not path.is_file():
        choices = ", ".join(committed_studies(root)) or "none"
        raise StudyNotFound(f"{where}: no such committed study; committed: {choices} (`pcn study FILE table`)")
    try:
        table = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StudyNotFound(f"{where}: not a readable JSON study table ({exc})") from exc
    missing = [k for k in STUDY_KEYS if not isinstance(table, dict) or k not in table]
    if missing:
        raise StudyNotFound(f"{where}: not a study table, it lacks {', '.join(missing)} (written by `pcn study`)")
    if not path.with_suffix(".png").is_file():
        raise StudyNotFound(f"{where}: its figure {path.with_suffix('.png').relative_to(root)} is missing")
    return table


def read_studies(root: Path, names: list[str]) -> dict[str, dict]:
    """``{name: table}`` for every name of ``report.studies``, in its order."""
    return {name: read_study(root, name) for name in names}


def figure_link(name: str) -> str:
    """The study's figure, relative to a report folder two levels below the root (module docstring)."""
    return f"../../{STUDIES_DIR}/{name}.png"


def studies_markdown(studies: dict[str, dict]) -> list[str]:
    """The report's section on its studies: per study its figure and its table with the growth verdicts."""
    if not studies:
        return []
    lines = [
        "## Studies",
        "",
        "Committed studies (`report.studies`), each run as its own experiments at every value of one quantity "
        "(`pcn study`); shown here from their committed tables, not recomputed.",
        "",
    ]
    for name, table in studies.items():
        source = table.get("study", f"{STUDIES_DIR}/{name}.yaml")
        figure = f"![{name}]({figure_link(name)})"
        lines.append(study_markdown(table, f"Study `{name}` (`{source}`)", level=3, figure=figure))
    return lines
