"""pcn study: every value is the preset with the study's settings and one value of its key, checked before
anything is queued; the table reads each finished experiment's report and writes the study's table and figure."""

import json
import subprocess

import pytest

from pcn.cli import study as study_module
from pcn.cli.main import parser_for
from pcn.cli.preset import overlay
from pcn.cli.project import CommandError
from pcn.schema import parse_params

from conftest import ROOT, tiny_params
from project import commit, dvc, make_project, run

STUDIES = sorted((ROOT / "studies").glob("*.yaml"))


def study_command(argv: list[str]) -> int:
    """``pcn study ARGV`` in this process (its errors raised, not printed)."""
    parser, module = parser_for("study")
    return module.run(parser.parse_args(argv), [])


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.name)
def test_every_value_of_the_committed_studies_is_valid_and_differs_only_by_the_key(path, default_params):
    study = study_module.load_study(path, ROOT)
    points = [overlay(default_params, study_module.point_settings(study, v)) for v in study["values"]]
    for value, point in zip(study["values"], points):
        parse_params(point, path.name)
        assert study_module.value_at(point, study["key"]) == value
        assert study_module.value_at(overlay(point, study_module.nested(study["key"], None)), study["key"]) is None
    without_key = [overlay(p, study_module.nested(study["key"], 0)) for p in points]
    assert all(p == without_key[0] for p in without_key)  # only the key differs


def toy_study(tmp_path, values="[28, 40]"):
    path = tmp_path / "range.yaml"
    path.write_text(
        "preset: presets/translated.yaml\nset:\n  seeds: [0, 1, 2]\n  variants: [modulus, soft_threshold]\n"
        f"key: data.translated_mnist.canvas\nvalues: {values}\nreference: modulus\ncompare: [soft_threshold]\n"
    )
    return path, study_module.load_study(path, ROOT)


def test_bad_study_files_are_refused_naming_the_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    good = {
        "preset": "presets/translated.yaml",
        "set": {"variants": ["modulus", "soft_threshold"]},
        "key": "data.translated_mnist.canvas",
        "values": [28, 40],
        "reference": "modulus",
        "compare": ["soft_threshold"],
    }
    for change, message in [
        ({"key": None}, "expected exactly the keys"),
        ({"preset": "../params.yaml"}, "not a file of this repository"),
        ({"key": "data.$(rm -rf x)"}, "dotted params key"),
        ({"values": [28]}, "at least two"),
        ({"values": [28, 28]}, "at least two"),
        ({"set": {"seeds": [0]}}, "set.variants"),
        ({"compare": []}, "compare must list"),
        ({"reference": "tanh"}, r"'tanh' not in set.variants \(modulus, soft_threshold\)"),
        ({"compare": ["modulus"]}, "compare other variants, each once"),
        ({"compare": ["soft_threshold", "soft_threshold"]}, "compare other variants, each once"),
        ({"reference": ["modulus"]}, "reference must be one variant name"),
    ]:
        study = {k: v for k, v in {**good, **change}.items() if v is not None}
        bad.write_text(json.dumps(study))
        with pytest.raises(CommandError, match=message):
            study_module.load_study(bad, ROOT)
    bad.write_text(json.dumps(good))
    assert study_module.load_study(bad, ROOT)["values"] == [28, 40]


def test_queue_checks_every_value_before_queueing_any(tmp_path, monkeypatch):
    path, _ = toy_study(tmp_path)
    calls = []
    monkeypatch.setattr(subprocess, "call", lambda cmd, **_: calls.append(cmd) or 0)
    monkeypatch.chdir(ROOT)
    assert study_command([str(path), "queue"]) == 0
    assert [c[-3:] for c in calls] == [["--queue", "-n", f"range-{i}"] for i in range(2)]
    assert "data.translated_mnist.canvas=40" in calls[1] and "seeds=[0,1,2]" in calls[0]
    calls.clear()
    path, _ = toy_study(tmp_path, values="[28, 20]")  # digits of 28 pixels do not fit a canvas of 20
    with pytest.raises(CommandError, match=r"canvas=20"):
        study_command([str(path), "queue"])
    assert calls == []


def report(gaps: dict, premise: float) -> dict:
    views = {"before_rho/flatten": {"layers": [1], "class_mean_share": {"by_seed": {s: [premise] for s in gaps}}}}
    return {
        "resampling": 0.25,
        "rows": [
            {"variant": "modulus", "arch": "lscat", "test_error_by_seed": dict.fromkeys(gaps, 3.0), "views": views},
            {"variant": "soft_threshold", "arch": "lscat", "test_error_by_seed": {s: 3.0 + g for s, g in gaps.items()}},
        ],
    }


def exp_show(study: dict, canvases: dict[str, int], **changed) -> list:
    """A `dvc exp show --json` answer (DVC 3's nesting) with finished experiments ``name: canvas``, each run
    with the study's settings at that canvas (``changed``: dotted keys set otherwise)."""
    revs = []
    for i, (name, c) in enumerate(canvases.items()):
        params = study_module.point_settings(study, c)
        for key, value in changed.items():
            params = overlay(params, study_module.nested(key, value))
        rev = f"{i + 1:040x}"
        revs.append({"rev": rev, "name": name, "data": {"rev": rev, "params": {"params.yaml": {"data": params}}}})
    return [
        {"rev": "a" * 40, "name": "main", "data": {}, "experiments": [{"revs": [r], "name": r["name"]} for r in revs]}
    ]


def two_reports(monkeypatch) -> None:
    """The reports of experiments 1 (canvas 28: a small gap, a large premise share) and 2 (canvas 40)."""
    reports = {
        f"{1:040x}": report({"0": 5.0, "1": 7.0, "2": 6.0}, 0.1),
        f"{2:040x}": report({"0": 25.0, "1": 31.0, "2": 27.0}, 0.004),
    }
    monkeypatch.setattr(study_module, "read_report", lambda root, rev: reports[rev])
    monkeypatch.chdir(ROOT)


def table_of_both_values(tmp_path, monkeypatch):
    """The toy study's table written from both finished experiments: its file, the study, the `dvc exp show`
    file (to rewrite) and the table."""
    path, study = toy_study(tmp_path)
    two_reports(monkeypatch)
    show = tmp_path / "show.json"
    show.write_text(json.dumps(exp_show(study, {"range-0": 28, "range-1": 40})))
    assert study_command([str(path), "table", "--show-json", str(show)]) == 0
    return path, study, show, json.loads(path.with_suffix(".json").read_text())


def test_table_writes_the_study_and_never_loses_finished_values(tmp_path, monkeypatch):
    path, study, show, table = table_of_both_values(tmp_path, monkeypatch)
    assert [p["premise_share"]["mean"] for p in table["points"]] == pytest.approx([0.1, 0.004])
    assert table["growth"]["soft_threshold"]["verdict"] == "supported" and table["set"] == study["set"]
    assert path.with_suffix(".png").stat().st_size > 0 and "| 40 | 0.004 ± 0 |" in path.with_suffix(".md").read_text()
    written = path.with_suffix(".json").read_text()
    show.write_text(json.dumps(exp_show(study, {"range-0": 28})))  # a fresh clone: range-1 unknown
    with pytest.raises(CommandError, match=r"range\.json: not written.*canvas = 40"):
        study_command([str(path), "table", "--show-json", str(show)])
    assert path.with_suffix(".json").read_text() == written
    assert study_command([str(path), "table", "--show-json", str(show), "--overwrite"]) == 0
    assert json.loads(path.with_suffix(".json").read_text())["points"][1]["pending"] is True
    show.write_text(json.dumps(exp_show(study, {"range-0": 32})))  # the experiment ran another value
    with pytest.raises(CommandError, match="range-0 ran data.translated_mnist.canvas=32, not 28"):
        study_command([str(path), "table", "--show-json", str(show), "--overwrite"])
    show.write_text(json.dumps(exp_show(study, {"range-0": 28}, seeds=[0, 1])))  # run before `set` changed
    with pytest.raises(CommandError, match=r"range-0 ran seeds=\[0, 1\], not \[0, 1, 2\].*--only 28"):
        study_command([str(path), "table", "--show-json", str(show), "--overwrite"])


def test_a_study_run_in_pieces_keeps_the_committed_values_and_decides_as_in_one_piece(tmp_path, monkeypatch):
    path, study, show, whole = table_of_both_values(tmp_path, monkeypatch)
    show.write_text(json.dumps(exp_show(study, {"range-0": 28})))  # the next checkout ran 28 only
    assert study_command([str(path), "table", "--show-json", str(show), "--keep-committed"]) == 0
    pieces = json.loads(path.with_suffix(".json").read_text())
    assert pieces.pop("kept") == [40] and whole.pop("kept") == []
    assert pieces == whole
    assert "Kept from the committed table" in path.with_suffix(".md").read_text()
    with pytest.raises(CommandError, match=r"range\.json: the committed table differs from the study in confidence"):
        study_command([str(path), "table", "--show-json", str(show), "--keep-committed", "--confidence", "0.9"])
    path.write_text(path.read_text().replace("seeds: [0, 1, 2]", "seeds: [0, 1]"))
    show.write_text(json.dumps(exp_show(study, {})))
    with pytest.raises(CommandError, match="differs from the study in set: its values cannot be kept"):
        study_command([str(path), "table", "--show-json", str(show), "--keep-committed"])


def test_queue_pending_and_only_choose_the_values_of_a_piece(tmp_path, monkeypatch):
    path, study = toy_study(tmp_path, values="[28, 32, 36, 40]")
    calls = []
    monkeypatch.setattr(subprocess, "call", lambda cmd, **_: calls.append(cmd[-1]) or 0)
    monkeypatch.chdir(ROOT)
    assert study_command([str(path), "queue", "--only", "28", "40"]) == 0
    assert calls == ["range-0", "range-3"]
    with pytest.raises(CommandError, match=r"--only 30: not values of .*range\.yaml \(valid: 28, 32, 36, 40\)"):
        study_command([str(path), "queue", "--only", "28", "30"])
    path.with_suffix(".json").write_text(
        json.dumps({"points": [{"value": 28}, {"value": 32, "pending": True}, {"value": 36}, {"value": 40}]})
    )
    calls.clear()
    assert study_command([str(path), "queue", "--pending"]) == 0 and calls == ["range-1"]
    calls.clear()
    assert study_command([str(path), "queue", "--pending", "--only", "28"]) == 0 and calls == []
    path.with_suffix(".json").write_text("[1, 2]")
    with pytest.raises(CommandError, match=r"range\.json: not a study table"):
        study_command([str(path), "queue", "--pending"])


@pytest.mark.slow
def test_table_reads_the_reports_of_real_experiments(tmp_path, default_params):
    """Two real experiments of a seconds-long project, read back through ``dvc exp show`` and DVC's cache (the
    key, report.confidence, reruns only the report in the second experiment)."""
    repo = make_project(tmp_path / "repo", tiny_params(default_params, seeds=(0, 1)))
    (repo / "presets").mkdir()
    (repo / "presets" / "none.yaml").write_text("runtime: {progress: false}\n")
    (repo / "study.yaml").write_text(
        "preset: presets/none.yaml\nset: {variants: [modulus, soft_threshold]}\n"
        "key: report.confidence\nvalues: [0.9, 0.95]\nreference: modulus\ncompare: [soft_threshold]\n"
    )
    commit(repo, "study")
    for i, level in enumerate((0.9, 0.95)):
        dvc("exp", "run", "-n", f"study-{i}", "-S", f"report.confidence={level}", cwd=repo)
    result = run(["pcn", "study", "study.yaml", "table"], repo)
    table = json.loads((repo / "study.json").read_text())
    assert [p["value"] for p in table["points"]] == [0.9, 0.95] and not any(p.get("pending") for p in table["points"])
    assert table["growth"]["soft_threshold"]["seeds"] == ["0", "1"]
    for p in table["points"]:
        assert set(p["gap"]["soft_threshold"]["by_seed"]) == {"0", "1"} and p["premise_share"]["n"] == 2
    first, second = table["points"]
    assert first["gap"] == second["gap"] and first["premise_share"] == second["premise_share"]  # same trainings
    assert "| 0.95 |" in result.stdout
