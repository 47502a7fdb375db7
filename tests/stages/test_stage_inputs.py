"""What a stage is given: its variant and seed from DVC's stage name, checked before anything runs."""

import pytest
import yaml

from stage_inputs import load_params, stage_variant_and_seed


@pytest.fixture
def params(default_params, tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(default_params))
    return load_params(path)


@pytest.mark.parametrize(
    "addressing,expected",
    [("train@modulus_skip-12", ("modulus_skip", 12)), ("sub/dvc.yaml:train@modulus-0", ("modulus", 0))],
)
def test_a_stage_reads_its_variant_and_seed_from_dvc(monkeypatch, params, addressing, expected):
    monkeypatch.setenv("DVC_STAGE", addressing)
    assert stage_variant_and_seed("train", None, None, params) == expected
    assert stage_variant_and_seed("train", "soft_threshold", 3, params) == ("soft_threshold", 3)  # given wins


@pytest.mark.parametrize(
    "addressing",
    ["train@mod'; touch /tmp/owned; echo '-0", "train@nosuch-0", "train@modulus-x", "evaluate@modulus-0", ""],
)
def test_a_stage_refuses_a_name_it_does_not_know(monkeypatch, params, addressing):
    monkeypatch.setenv("DVC_STAGE", addressing)
    with pytest.raises(SystemExit, match="train: "):
        stage_variant_and_seed("train", None, None, params)


def test_bad_params_stop_the_stage_naming_the_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_bytes(b"seeds: [0]\ndata: \xff\n")
    with pytest.raises(SystemExit, match="params.yaml is not UTF-8"):
        load_params(path)
    path.write_text("seeds: [0\n")
    with pytest.raises(SystemExit, match="params.yaml is not valid YAML"):
        load_params(path)
