"""``pcn claims``: a written report's claims decided again from its rows, and the committed report's claims are
what the current rules decide."""

import json
import shutil
import subprocess
import sys

import pytest

from pcn.analysis.claims import check_claims
from pcn.analysis.report import comparisons, interval_description, summary_metrics
from pcn.cli.claims import seeds_as_numbers

from conftest import ROOT, read_yaml

COMMITTED = ROOT / "results/translated"


def test_the_committed_report_holds_what_the_current_rules_decide():
    report = json.loads((COMMITTED / "table.json").read_text())
    r = read_yaml(ROOT / "params.yaml")["report"]
    resampling = report["resampling"]  # Nadeau-Bengio: 1000 test / 3600 training digits per seed (RUN.md)
    assert resampling == pytest.approx(1000 / 3600)
    rows = [seeds_as_numbers(row) for row in report["rows"]]
    assert report["test_size"] == 1000  # each seed's test split (RUN.md): the equivalences' binomial noise
    margins = (r["equivalence_margin"], r["vanishing_share"])
    decided = check_claims(rows, report["confidence"], *margins, resampling, report["test_size"])
    assert json.loads(json.dumps(decided)) == report["claims"]
    assert json.loads(json.dumps(comparisons(rows, report["confidence"], resampling)[0])) == report["comparisons"]
    assert report["interval"] == interval_description(resampling)
    assert report["claims"][0]["comparisons"][0]["seeds"] == [0, 1, 2]  # seeds as numbers, as in rows


@pytest.fixture
def project(tmp_path):
    (tmp_path / ".dvc").mkdir()
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(COMMITTED, tmp_path / "results/run", ignore=shutil.ignore_patterns("*.png"))
    return tmp_path


def pcn_claims(project, *args):
    cmd = [sys.executable, "-m", "pcn.cli.main", "claims", *args]
    return subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=120)


def test_write_replaces_the_claims_and_keeps_the_rows(project):
    before = json.loads((project / "results/run/table.json").read_text())
    before["claims"][6]["verdict"] = "supported"  # as the rule of "progressively" before it tested every block
    (project / "results/run/table.json").write_text(json.dumps(before))
    shown = pcn_claims(project, "results/run")
    assert shown.returncode == 0, shown.stderr
    assert "claim 7: not distinguishable at these seeds (was: supported)" in shown.stdout
    assert "claim 2: supported (unchanged)" in shown.stdout
    assert json.loads((project / "results/run/table.json").read_text()) == before  # nothing written without --write
    written = pcn_claims(project, "results/run", "--confidence", "0.8", "--write")
    assert written.returncode == 0, written.stderr
    after = json.loads((project / "results/run/table.json").read_text())
    assert after["rows"] == before["rows"]
    assert after["claims_decided_by"] == {
        "command": "pcn claims",
        "confidence": 0.8,
        "margin": 0.2,
        "vanishing_share": 0.01,
        "resampling": before["resampling"],
        "test_size": before["test_size"],
    }
    rows = [seeds_as_numbers(row) for row in before["rows"]]
    expected = check_claims(rows, 0.8, 0.2, 0.01, before["resampling"], before["test_size"])
    assert after["claims"] == json.loads(json.dumps(expected))
    assert after["comparisons"] == json.loads(json.dumps(comparisons(rows, 0.8, before["resampling"])[0]))
    summary = json.loads((project / "results/run/summary.json").read_text())
    assert summary == json.loads(json.dumps(summary_metrics(after)))
    table = (project / "results/run/table.md").read_text()
    assert "two-sided 80% Student-t intervals" in table
    assert all(f"**{c['verdict']}**: {c['reason']}" in table for c in expected)


@pytest.mark.parametrize(
    "args, change, message",
    [
        (("../elsewhere",), None, "is outside the project"),
        (("results/none",), None, "no table.json"),
        (("results/run",), lambda t: "{not json", "not a readable JSON report"),
        (("results/run",), lambda t: json.dumps({**t, "rows": []}), "'rows' must be a non-empty list"),
        (
            ("results/run",),
            lambda t: json.dumps({**t, "rows": [{k: v for k, v in r.items() if k != "views"} for r in t["rows"]]}),
            "lacks views",
        ),
        (("results/run", "--confidence", "1.5"), None, "confidence 1.5: a level strictly between 0 and 1"),
        (("results/run", "--margin", "-1"), None, "margin -1.0 (--margin or table.json): must be a finite"),
        (("results/run", "--resampling", "inf"), None, "resampling inf (--resampling or table.json): must be a"),
        (("results/run",), lambda t: json.dumps({**t, "claims": {"1": "x"}}), "'claims' must be a list"),
        (
            ("results/run",),
            lambda t: json.dumps({**t, "rows": [{k: v for k, v in r.items() if k != "test_error"} for r in t["rows"]]}),
            "rows cannot be decided: KeyError",
        ),
        (
            ("results/run",),
            lambda t: json.dumps({**t, "rows": [{**r, "views": []} for r in t["rows"]]}),
            "rows cannot be decided: AttributeError",
        ),
        (("results/run",), lambda t: json.dumps({**t, "resampling": "x"}), "resampling 'x' (--resampling or table"),
        (("results/run", "--test-size", "0"), None, "test_size 0.0 (--test-size or table.json): must be a number"),
        (("results/run",), lambda t: json.dumps({**t, "test_size": True}), "test_size True (--test-size or table"),
        (("results/run", "--studies", "../x"), None, "--studies[0]: '../x' is not a study name"),
        (("results/run", "--studies", "a", "b", "a"), None, "--studies: names must be unique; given more than once: a"),
        (("results/run", "--studies", "nope"), None, "--studies: 'nope' (studies/nope.json): no such committed study"),
    ],
)
def test_bad_input_is_named_and_nothing_is_written(project, args, change, message):
    path = project / "results/run/table.json"
    if change:
        path.write_text(change(json.loads(path.read_text())))
    before = path.read_bytes()
    failed = pcn_claims(project, *args, "--write")
    assert failed.returncode == 1 and message in failed.stderr, failed.stderr
    assert path.read_bytes() == before


def test_studies_are_set_kept_and_removed(project):
    """``--studies NAME`` puts the committed study into table.json and table.md; a later run without the option
    keeps it; ``--studies`` alone removes it."""
    shutil.copytree(ROOT / "studies", project / "studies")
    study = json.loads((ROOT / "studies/translation-range.json").read_text())
    path = project / "results/run"
    assert pcn_claims(project, "results/run", "--studies", "translation-range", "--write").returncode == 0
    assert json.loads((path / "table.json").read_text())["studies"] == {"translation-range": study}
    assert "![translation-range](../../studies/translation-range.png)" in (path / "table.md").read_text()
    assert pcn_claims(project, "results/run", "--write").returncode == 0
    assert json.loads((path / "table.json").read_text())["studies"] == {"translation-range": study}
    assert pcn_claims(project, "results/run", "--studies", "--write").returncode == 0
    assert json.loads((path / "table.json").read_text())["studies"] == {}
    assert "## Studies" not in (path / "table.md").read_text()
