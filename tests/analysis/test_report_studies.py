"""A report shows the committed studies of ``report.studies``: their tables in table.json, their numbers, growth
verdicts and figure in table.md; a study that is not committed is named with the committed choices."""

import json
import shutil

import pytest

from pcn.analysis.report_markdown import markdown
from pcn.analysis.report_studies import StudyNotFound, figure_link, read_studies, studies_markdown
from pcn.schema import ParamsError, parse_params

from conftest import ROOT, read_yaml

STUDY = "translation-range"


@pytest.fixture
def studies_root(tmp_path):
    shutil.copytree(ROOT / "studies", tmp_path / "studies")
    return tmp_path


def test_the_committed_study_is_shown_with_its_numbers_verdict_and_figure():
    table = json.loads((ROOT / f"studies/{STUDY}.json").read_text())
    assert read_studies(ROOT, [STUDY]) == {STUDY: table}
    text = "\n".join(studies_markdown({STUDY: table}))
    assert text.startswith("## Studies") and f"### Study `{STUDY}` (`studies/{STUDY}.yaml`)" in text
    assert f"![{STUDY}](../../studies/{STUDY}.png)" in text
    for p in table["points"]:  # every value's premise share and gap interval, from the JSON
        gap = p["gap"]["soft_threshold"]["interval"]
        row = next(line for line in text.splitlines() if line.startswith(f"| {p['value']} |"))
        assert f"{p['premise_share']['mean']:.3g}" in row and f"[{gap['low']:+.2f}, {gap['high']:+.2f}]" in row
    growth = table["growth"]["soft_threshold"]
    assert f"**{growth['verdict']}** (the observed spread would need about {growth['seeds_to_decide']} seeds" in text
    for folder in ("results/report", "results/translated"):  # the link resolves from both report folders
        assert (ROOT / folder / figure_link(STUDY)).resolve() == (ROOT / f"studies/{STUDY}.png").resolve()


def test_the_report_places_the_studies_after_the_claims():
    committed = json.loads((ROOT / "results/translated/table.json").read_text())
    report = dict(committed, studies=read_studies(ROOT, [STUDY]))
    text = markdown(report)
    assert text.index("## Studies") < text.index(f"## {report['dataset']}: test error")
    assert "## Studies" not in markdown(dict(committed, studies={}))


def test_a_study_not_committed_is_named_with_the_choices(studies_root):
    with pytest.raises(StudyNotFound, match=rf"report.studies: 'nope' \(studies/nope.json\): .* committed: {STUDY}"):
        read_studies(studies_root, ["nope"])
    (studies_root / "studies/broken.json").write_text("{not json")
    with pytest.raises(StudyNotFound, match="'broken'.*not a readable JSON study table"):
        read_studies(studies_root, ["broken"])
    (studies_root / "studies/other.json").write_text(json.dumps({"key": "x", "values": [1]}))
    with pytest.raises(StudyNotFound, match="'other'.*lacks points, reference, compare, confidence, growth"):
        read_studies(studies_root, ["other"])
    (studies_root / f"studies/{STUDY}.png").unlink()
    with pytest.raises(StudyNotFound, match=f"its figure studies/{STUDY}.png is missing"):
        read_studies(studies_root, [STUDY])


@pytest.mark.parametrize(
    "studies, message",
    [
        (["../results/x"], r"report.studies\[0\]: '../results/x' is not a study name"),
        (["a/b"], r"report.studies\[0\]: 'a/b' is not a study name"),
        ([STUDY, STUDY], "report.studies: names must be unique"),
        ("x", "report.studies: expected a list"),
    ],
)
def test_report_studies_are_checked_by_the_schema(studies, message):
    params = read_yaml(ROOT / "params.yaml")
    params["report"]["studies"] = studies
    with pytest.raises(ParamsError, match=message):
        parse_params(params, "params.yaml")
    params["report"]["studies"] = [STUDY]
    assert parse_params(params, "params.yaml").report.studies == [STUDY]
