"""The Table 1 baselines, the fair ablations and the translated digits go through the whole pipeline."""

import pytest

from conftest import tiny_params
from project import dvc, make_project, read_json

pytestmark = pytest.mark.slow

NEW_VARIANTS = (
    "identity",
    "scat",
    "resnet_standard",
    "resnet_thresh",
    "resnet_thresh_frozen",
    "resnet_absdead",
    "resnet_identity",
)


def test_every_new_variant_trains_and_is_reported(tmp_path, default_params):
    params = tiny_params(default_params, variants=NEW_VARIANTS)
    params["network"]["resnet_stem"] = "small"
    repo = make_project(tmp_path / "repo", params)
    dvc("repro", cwd=repo)
    for name in NEW_VARIANTS:
        metrics = read_json(repo / f"results/train/{name}-0/metrics.json")
        assert 0 <= metrics["final_train_acc"] <= 1 and metrics["n_parameters"] > 0, name
        zeros = read_json(repo / f"results/evaluate/{name}-0/metrics.json")["zero_fraction_by_layer"]
        assert all(z is None for z in zeros) if name == "scat" else all(0 <= z <= 1 for z in zeros), (name, zeros)
        assert "zero_fraction" in (repo / f"results/evaluate/{name}-0/separation.csv").read_text(), name
    rows = {r["variant"]: r for r in read_json(repo / "results/report/table.json")["rows"]}
    assert set(rows) == set(NEW_VARIANTS)


def test_translated_digits_train_with_new_positions_every_epoch(tmp_path, default_params):
    params = tiny_params(default_params, variants=("modulus",), epochs=2)
    params["data"].update(
        name="translated_mnist", augment="translate", translated_mnist={"canvas": 32, "test_fraction": 0.2}
    )
    params["train"]["batch_size"] = 256
    repo = make_project(tmp_path / "repo", params)
    dvc("repro", cwd=repo)
    card = read_json(repo / "data/prepared/card.json")
    assert card["name"] == "translated_mnist" and card["image_size"] == 32 and card["splits"]["train"] == 4000
    history = (repo / "results/train/modulus-0/history.csv").read_text().splitlines()
    assert len(history) == 1 + 2
    assert read_json(repo / "results/train/modulus-0/metrics.json")["final_test_acc"] > 0.3  # it learns


def test_resnet_only_pipelines_ignore_the_filter_settings(tmp_path, default_params):
    params = tiny_params(default_params, variants=("resnet_relu",))
    params["network"].update(widths=[4] * 8, resnet_stem="small")  # 8 blocks do not fit 16x16 images
    repo = make_project(tmp_path / "repo", params)
    out = dvc("repro", cwd=repo)
    assert "no LScat variant selected" in out.stdout and (repo / "results/wavelets/filters.png").is_file()
    assert read_json(repo / "results/train/resnet_relu-0/metrics.json")["epochs"] == 1
