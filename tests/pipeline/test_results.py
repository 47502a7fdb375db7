"""The results read back by the report: damaged or non-finite results are refused, naming the file."""

import json

import pytest

from pcn.pipeline.results import ResultsError, read_csv, read_metrics


def test_a_truncated_metrics_file_is_named(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text('{"test_error": 2.5, "seed"')
    with pytest.raises(ResultsError, match="metrics.json is damaged or truncated"):
        read_metrics(path)
    path.write_bytes(b'{"test_error": 2.5, "variant": "mod\xffulus"}')  # not UTF-8
    with pytest.raises(ResultsError, match="metrics.json is damaged or truncated"):
        read_metrics(path)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), None])
def test_a_non_finite_error_is_refused_by_name(tmp_path, value):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"test_error": value, "seed": 0}))
    with pytest.raises(ResultsError, match="test_error is .* non-finite error cannot be averaged"):
        read_metrics(path)
    path.write_text(json.dumps({"test_error": 2.5, "final_val_error": None}))
    assert read_metrics(path)["test_error"] == 2.5


def test_a_truncated_csv_is_named(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,train_loss,test_acc\n1,0.5,0.9\n2,0.4")
    with pytest.raises(ResultsError, match="history.csv is damaged or truncated"):
        read_csv(path)
    path.write_text("epoch,train_loss\n")
    with pytest.raises(ResultsError, match="history.csv has no rows"):
        read_csv(path)
    path.write_text("epoch,train_loss\n1,0.5\n")
    assert read_csv(path) == [{"epoch": 1, "train_loss": 0.5}]
