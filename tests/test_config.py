"""Strict params validation: every class of error names its key and the valid choices."""
import copy

import pytest
import yaml
from conftest import ROOT

from pcn.config import ParamsError, parse_params
from pcn.factory import InputSpec, build_model
from pcn.model import count_parameters


def errors_for(params: dict) -> str:
    with pytest.raises(ParamsError) as info:
        parse_params(params)
    return str(info.value)


def test_default_params_are_valid(default_params):
    p = parse_params(default_params)
    assert p.data.name == "mnist5k" and all(v in p.models for v in p.variants)


def test_unknown_key_with_suggestion(default_params):
    p = copy.deepcopy(default_params)
    p["train"]["epoch"] = 3            # typo of epochs, as `dvc exp run -S train.epoch=3` would add it
    message = errors_for(p)
    assert "train.epoch: unknown key (did you mean 'epochs'?)" in message
    assert "valid keys: epochs, batch_size" in message


def test_wrong_types(default_params):
    p = copy.deepcopy(default_params)
    p["train"]["lr"] = "fast"
    p["train"]["epochs"] = 2.5
    p["filters"]["full_angles"] = "yes"
    p["network"]["widths"] = 64
    message = errors_for(p)
    assert "train.lr: expected a finite number, got 'fast'" in message
    assert "train.epochs: expected an integer, got 2.5" in message
    assert "filters.full_angles: expected true or false" in message
    assert "network.widths: expected a non-empty list" in message


def test_out_of_range_and_bad_choices(default_params):
    p = copy.deepcopy(default_params)
    p["train"]["lr"] = 0
    p["train"]["momentum"] = 1.5
    p["data"]["name"] = "mnist"
    p["models"]["modulus"]["arch"] = "lscat-skip"
    message = errors_for(p)
    assert "train.lr: 0.0 is out of range; must be > 0.0" in message
    assert "train.momentum: 1.5 is out of range; must be <= 1.0" in message
    assert "data.name: 'mnist' is not valid; valid: mnist5k, cifar10, imagenet, synthetic" in message
    assert "models.modulus.arch: 'lscat-skip' is not valid; valid: lscat, lscat_skip, resnet18" in message


def test_inconsistent_combinations(default_params):
    p = copy.deepcopy(default_params)
    p["variants"] = ["modulus", "modulos"]
    p["models"]["resnet_relu"]["nonlinearity"] = "mod"
    p["train"]["nproc"] = 2
    message = errors_for(p)
    assert "variants[1]: 'modulos' is not defined under 'models'" in message
    assert "models.resnet_relu.nonlinearity: 'mod' is not valid for arch resnet18" in message
    assert "train.nproc: must be 1 with train.launcher=python" in message


def test_missing_key(default_params):
    p = copy.deepcopy(default_params)
    del p["train"]["lr_step"]
    assert "train.lr_step: missing (required)" in errors_for(p)


@pytest.mark.parametrize("preset,expected", [
    ("cifar10", {"modulus_skip": 24_459_018}),
    ("imagenet", {"modulus": 29_052_584}),
])
def test_presets_are_valid_and_match_paper_sizes(preset, expected):
    with open(ROOT / "presets" / f"{preset}.yaml") as f:
        p = parse_params(yaml.safe_load(f), preset)
    inputs = InputSpec(3, 32, 10) if preset == "cifar10" else InputSpec(3, 224, 1000)
    for variant, count in expected.items():
        model = build_model(p.network, p.filters, p.models[variant], inputs)
        assert count_parameters(model) == count
    assert p.train.lr == 0.01 and p.train.momentum == 0.9 and p.train.weight_decay == 1e-4
    assert p.train.batch_size == 128
    assert (p.train.epochs, p.train.lr_step) == ((300, 70) if preset == "cifar10" else (150, 45))


def test_stage_hash_depends_on_variant_only_for_its_model(default_params):
    p = parse_params(default_params)
    q = copy.deepcopy(default_params)
    q["models"]["tanh"]["learned"] = False
    q["evaluate"]["batch_size"] = 10
    assert parse_params(q).stage_hash("modulus") == p.stage_hash("modulus")
    assert parse_params(q).stage_hash("tanh") != p.stage_hash("tanh")
