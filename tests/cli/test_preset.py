"""Presets hold only what differs from params.yaml; `pcn preset` turns them into DVC's own --set-param
overrides, which give exactly params.yaml with the preset merged in, and every preset validates."""

import pytest

from pcn.cli.preset import command, overlay, set_params, unknown_keys
from pcn.cli.project import CommandError
from pcn.schema import parse_params

from conftest import ROOT, read_yaml

PRESETS = sorted((ROOT / "presets").glob("*.yaml"))


def test_overlay_merges_mappings_and_replaces_the_rest():
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 2}
    assert overlay(base, {"a": {"y": [3]}, "c": 4}) == {"a": {"x": 1, "y": [3]}, "b": 2, "c": 4}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": 2}  # not modified
    assert unknown_keys({"train": {"lr": 1}, "models": {}}, {"train": {"lrr": 2}, "models": {"m": {"lr": 1}}}) == [
        "train.lrr"
    ]


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.name)
def test_presets_differ_from_params_and_validate(path, default_params):
    preset = read_yaml(path)
    merged = overlay(default_params, preset)
    parse_params(merged, path.name)

    def same(a, b, key=""):  # a preset repeats no default
        if isinstance(a, dict) and isinstance(b, dict):
            return [k for name in a if name in b for k in same(a[name], b[name], f"{key}{name}.")]
        return [key] if a == b else []

    assert not same(preset, default_params), f"{path.name} repeats params.yaml"
    assert len(path.read_text().splitlines()) < 40


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.name)
def test_dvc_applies_the_overrides_as_the_overlay(path, default_params, tmp_path):
    """The overrides through DVC's own function for `dvc exp run --set-param` give the overlay."""
    from dvc.utils.hydra import apply_overrides

    target = tmp_path / "params.yaml"
    target.write_text((ROOT / "params.yaml").read_text())
    cmd = command(path, ROOT / "params.yaml", ["--queue"])
    overrides = [cmd[i + 1] for i, word in enumerate(cmd) if word == "--set-param"]
    assert cmd[:3] == ["dvc", "exp", "run"] and cmd[-1] == "--queue"
    assert overrides == set_params(default_params, read_yaml(path))
    apply_overrides(str(target), overrides)
    assert read_yaml(target) == overlay(default_params, read_yaml(path))


def test_a_bad_preset_is_refused_naming_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lrr: 0.1\n")
    with pytest.raises(CommandError, match="train.lrr"):
        command(bad, ROOT / "params.yaml", [])
    bad.write_text("train:\n  lr: -1\n")
    with pytest.raises(CommandError, match="train.lr"):
        command(bad, ROOT / "params.yaml", [])
    bad.write_text("tracking:\n  uri: 'a b'\n")
    with pytest.raises(CommandError, match="cannot be passed"):
        command(bad, ROOT / "params.yaml", [])


def test_the_translated_preset_is_the_committed_run(default_params):
    """The headline command (pcn preset presets/translated.yaml) reproduces the configuration of the committed
    report results/translated/: the same variants, seeds, data set, recipe per variant (learning rate, epochs,
    step) and studies shown."""
    import json

    merged = parse_params(overlay(default_params, read_yaml(ROOT / "presets/translated.yaml")), "translated")
    table = json.loads((ROOT / "results/translated/table.json").read_text())
    assert [r["variant"] for r in table["rows"]] == merged.variants
    for row in table["rows"]:
        assert row["seeds"] == merged.seeds, row["variant"]
        recipe = merged.models[row["variant"]].recipe(merged.train)
        assert row["epochs"] == recipe["epochs"], row["variant"]
        assert {k: row["recipe"][k] for k in recipe} == recipe, row["variant"]
    assert merged.data.name == "translated_mnist" and table["dataset"] == merged.data.name
    assert list(table["studies"]) == merged.report.studies
    run = (ROOT / "results/translated/RUN.md").read_text()
    assert f"{len(merged.variants)} variants, {len(merged.seeds)} seeds" in run


@pytest.mark.parametrize("value", ['"1e3"', '"NaN"', '"True"'])
def test_a_value_that_dvc_reads_otherwise_is_refused_by_key(tmp_path, value):
    """Issue 32: ``-S tracking.experiment=1e3`` writes the number 1000.0; the preset is refused before any experiment,
    naming the key and what DVC would read, and params.yaml is untouched."""
    before = (ROOT / "params.yaml").read_bytes()
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"tracking:\n  experiment: {value}\n")
    with pytest.raises(CommandError, match=r"tracking\.experiment: '.*' would be read as"):
        command(bad, ROOT / "params.yaml", [])
    assert (ROOT / "params.yaml").read_bytes() == before
