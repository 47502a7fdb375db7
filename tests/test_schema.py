"""Strict params validation: every class of error names its key and the valid choices."""

import copy

import pytest

from pcn.nn.phase_collapse import count_parameters
from pcn.pipeline.build import InputSpec, build_model
from pcn.schema import ParamsError, parse_params

from conftest import ROOT, read_yaml


def errors_for(params: dict) -> str:
    with pytest.raises(ParamsError) as info:
        parse_params(params)
    return str(info.value)


def test_default_params_are_valid(default_params):
    p = parse_params(default_params)
    assert p.data.name == "mnist5k" and all(v in p.models for v in p.variants)
    assert len(p.seeds) >= 3 and {"modulus", "soft_threshold"} <= set(p.variants)


def test_unknown_key_with_suggestion(default_params):
    p = copy.deepcopy(default_params)
    p["train"]["epoch"] = 3  # typo of epochs, as `dvc exp run -S +train.epoch=3` would add it
    message = errors_for(p)
    assert "train.epoch: unknown key (did you mean 'epochs'?)" in message
    assert "valid keys: epochs, batch_size" in message


def changed(params: dict, changes: dict) -> dict:
    """A copy of ``params`` with each dotted key of ``changes`` set to its value."""
    p = copy.deepcopy(params)
    for key, value in changes.items():
        *path, last = key.split(".")
        section = p
        for part in path:
            section = section[part]
        section[last] = value
    return p


#: Invalid params (dotted key: value) and messages the error must hold, every one at once, each with its key.
PROBLEMS = {
    "wrong types": (
        {
            "train.lr": "fast",
            "train.epochs": 2.5,
            "filters.full_angles": "yes",  # YAML 1.2 (DVC's reading) makes `yes` a string
            "network.widths": [],
        },
        [
            "train.lr: expected a finite number, got 'fast'",
            "train.epochs: expected an integer, got 2.5",
            "filters.full_angles: expected true or false, got 'yes'",
            "network.widths: expected a non-empty list of int, got []",
        ],
    ),
    "a scalar where a list is expected": (
        {"variants": "modulus", "seeds": 0},
        [
            "variants: expected a list of str, got the scalar 'modulus' (write [modulus])",
            "seeds: expected a list of int, got the scalar 0 (write [0])",
        ],
    ),
    "out of range values and bad choices": (
        {
            "train.lr": 0,
            "train.momentum": 1.5,
            "data.name": "mnist",
            "models.modulus.arch": "lscat-skip",
            "report.confidence": 1.0,
        },
        [
            "train.lr: 0.0 is out of range; must be > 0.0",
            "train.momentum: 1.5 is out of range; must be <= 1.0",
            "data.name: 'mnist' is not valid; valid: mnist5k, translated_mnist, cifar10, imagenet, synthetic",
            "models.modulus.arch: 'lscat-skip' is not valid; valid: lscat, lscat_skip, resnet18",
            "report.confidence: 1.0 is out of range; must be < 1.0",
        ],
    ),
    "inconsistent combinations": (
        {
            "variants": ["modulus", "modulos"],
            "models.resnet_relu.nonlinearity": "mod",
            "train.nproc": 2,
            "seeds": [0, 0],
        },
        [
            "variants[1]: 'modulos' is not defined under 'models'",
            "models.resnet_relu.nonlinearity: 'mod' is not valid for arch resnet18",
            "train.nproc: must be 1 with train.launcher=python",
            "seeds: expected distinct integers in [0, 2147483647], got [0, 0]",
        ],
    ),
    "a misspelled variant beside wrong types elsewhere": (
        {"variants": ["modulus", "modulos"], "train.lr": "fast", "report.confidence": 2},
        [
            "variants[1]: 'modulos' is not defined under 'models'",
            "train.lr: expected a finite number, got 'fast'",
            "report.confidence: 2.0 is out of range; must be < 1.0",
        ],
    ),
}


@pytest.mark.parametrize("case", PROBLEMS)
def test_every_problem_is_reported_with_its_key(default_params, case):
    changes, messages = PROBLEMS[case]
    message = errors_for(changed(default_params, changes))
    missing = [m for m in messages if m not in message]
    assert not missing, message


def test_a_malformed_section_gets_no_follow_on_errors(default_params):
    """A scalar where the variants list belongs is one error, not one per character of the scalar."""
    message = errors_for(changed(default_params, {"variants": "modulus", "train.lr": "fast"}))
    assert "variants: expected a list" in message and "train.lr: expected a finite number" in message
    assert "variants[0]" not in message


def test_numbers_are_read_as_yaml_1_2(tmp_path):
    """`lr: 1e-3` is a number for DVC (YAML 1.2) and must be one for the stages too."""
    from pcn.schema import read_params_file

    text = (ROOT / "params.yaml").read_text().replace("  lr: 0.01\n", "  lr: 1e-3\n")
    assert "lr: 1e-3" in text
    path = tmp_path / "params.yaml"
    path.write_text(text)
    assert parse_params(read_params_file(path)).train.lr == 0.001


@pytest.mark.parametrize(
    "fraction,message",
    [
        (1.0, "data.mnist5k.test_fraction: 1.0 is out of range; must be < 1.0"),
        (0.0, "data.mnist5k.test_fraction: 0.0 is out of range; must be > 0.0"),
        (0.0005, "leaves 0 of the 500 images per class for testing"),
        (0.9995, "leaves 500 of the 500 images per class for testing"),
    ],
)
def test_test_fraction_leaves_both_splits_non_empty(default_params, fraction, message):
    p = copy.deepcopy(default_params)
    p["data"]["mnist5k"]["test_fraction"] = fraction
    assert message in errors_for(p)


@pytest.mark.parametrize("name", ["m;touch PWNED;#", "../../x", "a b", "x'y", "-rf", "9lives", ""])
def test_unsafe_variant_names_are_refused(default_params, name):
    p = copy.deepcopy(default_params)
    p["models"][name] = {"arch": "lscat", "nonlinearity": "mod"}
    p["variants"] = [name]
    assert f"models.{name}: {name!r} is not a safe variant name" in errors_for(p)


@pytest.mark.parametrize("name", ["a/../../b", "x;y", " lead", ".hidden"])
def test_unsafe_experiment_names_are_refused(default_params, name):
    p = copy.deepcopy(default_params)
    p["tracking"]["experiment"] = name
    assert f"tracking.experiment: {name!r} is not a safe name" in errors_for(p)


def test_imagenet_requires_its_listing(default_params):
    p = copy.deepcopy(default_params)
    p["data"]["name"] = "imagenet"
    assert "data.scan: must be [imagenet] when data.name is imagenet" in errors_for(p)
    p["data"]["scan"] = ["imagenet"]
    parse_params(p)
    p["data"]["name"] = "mnist5k"
    assert "and [] otherwise; got ['imagenet']" in errors_for(p)


def test_num_workers_is_a_count_or_auto(default_params):
    p = copy.deepcopy(default_params)
    p["runtime"]["num_workers"] = 4
    assert parse_params(p).runtime.num_workers == 4
    p["runtime"]["num_workers"] = "many"
    assert "runtime.num_workers: expected an integer or 'auto', got 'many'" in errors_for(p)
    p["runtime"]["num_workers"] = -1
    assert "runtime.num_workers: -1 is out of range; must be >= 0" in errors_for(p)


def test_missing_key(default_params):
    p = copy.deepcopy(default_params)
    del p["train"]["lr_step"]
    assert "train.lr_step: missing (required)" in errors_for(p)


@pytest.mark.parametrize(
    "preset,expected",
    [
        ("cifar10", {"modulus_skip": 24_459_018}),
        ("imagenet", {"modulus": 29_052_584}),
    ],
)
def test_presets_are_valid_and_match_paper_sizes(preset, expected):
    from pcn.cli.preset import overlay

    p = parse_params(overlay(read_yaml(ROOT / "params.yaml"), read_yaml(ROOT / "presets" / f"{preset}.yaml")), preset)
    inputs = InputSpec(3, 32, 10) if preset == "cifar10" else InputSpec(3, 224, 1000)
    for variant, count in expected.items():
        model = build_model(p.network, p.filters, p.models[variant], inputs)
        assert count_parameters(model) == count
    assert p.train.lr == 0.01 and p.train.momentum == 0.9 and p.train.weight_decay == 1e-4
    assert p.train.batch_size == 128
    assert (p.train.epochs, p.train.lr_step) == ((300, 70) if preset == "cifar10" else (150, 45))


def test_the_shipped_params_file_is_valid():
    parse_params(read_yaml(ROOT / "params.yaml"), "params.yaml")  # the presets: tests/stages/test_presets.py


def test_training_hash_depends_on_what_training_reads(default_params):
    p = parse_params(default_params)
    base = p.training_hash("modulus", 0)
    assert p.training_hash("modulus", 1) != base  # the seed
    q = copy.deepcopy(default_params)
    q["models"]["tanh"]["learned"] = False  # another variant
    q["evaluate"]["batch_size"] = 10  # evaluation only
    q["runtime"]["progress"] = False  # display only
    q["data"]["cifar10"]["root"] = "/elsewhere"  # another data set's setting
    assert parse_params(q).training_hash("modulus", 0) == base
    assert parse_params(q).training_hash("tanh", 0) != p.training_hash("tanh", 0)
    for section, key, value in (
        ("train", "lr", 0.02),
        ("filters", "sigma0", 0.7),
        ("filters", "n_angles", 8),
        ("network", "normalize_eps", 1e-3),
        ("network", "widths", [8, 8]),
        ("data", "augment", "cifar"),
        ("data", "name", "synthetic"),
    ):
        r = copy.deepcopy(default_params)
        r[section][key] = value
        assert parse_params(r).training_hash("modulus", 0) != base, f"{section}.{key} is not in the hash"


@pytest.mark.parametrize("key,value", [("seeds", [0, 2**40]), ("seeds", [-1]), ("data.split_seed", 2**33)])
def test_seeds_are_bounded_to_what_the_generators_take(default_params, key, value):
    with pytest.raises(ParamsError, match=key.replace(".", r"\.") + r".*2147483647"):
        parse_params(changed(default_params, {key: value}))
