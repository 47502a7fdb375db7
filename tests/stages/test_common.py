"""The stage helpers' reading of results files: damaged or non-finite results stop the stage, naming the file."""

import json

import pytest

from common import read_csv, read_metrics


def test_a_truncated_metrics_file_is_named(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text('{"test_error": 2.5, "seed"')
    with pytest.raises(SystemExit, match="metrics.json is damaged or truncated"):
        read_metrics(path)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), None])
def test_a_non_finite_error_is_refused_by_name(tmp_path, value):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"test_error": value, "seed": 0}))
    with pytest.raises(SystemExit, match="test_error is .* non-finite error cannot be averaged"):
        read_metrics(path)
    path.write_text(json.dumps({"test_error": 2.5, "final_val_error": None}))
    assert read_metrics(path)["test_error"] == 2.5


def test_a_truncated_csv_is_named(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,train_loss,test_acc\n1,0.5,0.9\n2,0.4")
    with pytest.raises(SystemExit, match="history.csv is damaged or truncated"):
        read_csv(path)
    path.write_text("epoch,train_loss\n")
    with pytest.raises(SystemExit, match="history.csv has no rows"):
        read_csv(path)
    path.write_text("epoch,train_loss\n1,0.5\n")
    assert read_csv(path) == [{"epoch": 1, "train_loss": 0.5}]


def test_a_stage_refuses_to_write_when_its_params_changed_while_it_ran(tmp_path, default_params):
    import yaml

    from common import Provenance

    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(default_params))
    from common import load_params

    view = lambda p: {"seeds": p.seeds, "confidence": p.report.confidence}  # noqa: E731
    provenance = Provenance("report", "stages/report.py", view, load_params(path), path)
    provenance.refuse_if_changed()  # nothing changed: no objection
    changed = dict(default_params, report={**default_params["report"], "confidence": 0.9})
    path.write_text(yaml.safe_dump(changed))
    with pytest.raises(SystemExit, match="report: changed while it ran: params.confidence"):
        provenance.refuse_if_changed()
    path.write_text(yaml.safe_dump(dict(default_params, runtime={**default_params["runtime"], "progress": False})))
    provenance.refuse_if_changed()  # a setting it does not read: fine


@pytest.mark.parametrize(
    "addressing,expected",
    [("train@modulus_skip-12", ("modulus_skip", 12)), ("sub/dvc.yaml:train@modulus-0", ("modulus", 0))],
)
def test_a_stage_reads_its_variant_and_seed_from_dvc(monkeypatch, default_params, tmp_path, addressing, expected):
    import yaml

    from common import load_params, stage_variant_and_seed

    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(default_params))
    params = load_params(path)
    monkeypatch.setenv("DVC_STAGE", addressing)
    assert stage_variant_and_seed("train", None, None, params) == expected
    assert stage_variant_and_seed("train", "soft_threshold", 3, params) == ("soft_threshold", 3)  # given wins


@pytest.mark.parametrize(
    "addressing",
    ["train@mod'; touch /tmp/owned; echo '-0", "train@nosuch-0", "train@modulus-x", "evaluate@modulus-0", ""],
)
def test_a_stage_refuses_a_name_it_does_not_know(monkeypatch, default_params, tmp_path, addressing):
    import yaml

    from common import load_params, stage_variant_and_seed

    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(default_params))
    params = load_params(path)
    monkeypatch.setenv("DVC_STAGE", addressing)
    with pytest.raises(SystemExit, match="train: "):
        stage_variant_and_seed("train", None, None, params)
