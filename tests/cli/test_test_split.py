"""``pcn test-split``: the test split a seed's train stage scores its model on, as a file, and not the prepared
test images that other seeds trained on."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT, read_yaml, tiny_params
from project import dvc, make_project


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    params = tiny_params(read_yaml(ROOT / "params.yaml"), variants=("modulus",), seeds=(0, 1))
    params["data"]["resplit"] = True
    repo = make_project(tmp_path_factory.mktemp("split") / "repo", params)
    dvc("repro", "fetch", cwd=repo)
    return repo


def pcn(repo, *args):
    return subprocess.run(
        [sys.executable, "-m", "pcn.cli.main", "test-split", *args], cwd=repo, capture_output=True, text=True
    )


def test_the_file_holds_the_split_the_train_stage_scores_on(repo):
    from pcn.data.datasets import read_card
    from pcn.pipeline.run_data import RunData
    from pcn.schema import load_params_file

    out = pcn(repo, "--seed", "1", "--out", "split/one.npz")
    assert out.returncode == 0, out.stderr
    saved = np.load(repo / "split/one.npz")  # no pickle needed
    params, card = load_params_file(repo / "params.yaml"), read_card(repo / "data/prepared")
    train, test, _ = RunData(params, repo / "data/prepared", card, torch.device("cpu"), 1).training_batches(16)
    assert np.array_equal(saved["images"], test.images.numpy()) and saved["images"].dtype == np.uint8
    assert np.array_equal(saved["labels"], test.labels.numpy())
    assert (int(saved["seed"]), str(saved["split"]), bool(saved["resplit"])) == (1, "test", True)
    assert str(saved["data_name"]) == "synthetic" and str(saved["data_digest"]) == card["digest"]
    # held out: none of its images is in the seed's training split
    trained = {bytes(image) for image in train.images.numpy()}
    assert not any(bytes(image) in trained for image in saved["images"])
    # and not the prepared test images, nor the other seed's split
    assert not np.array_equal(saved["images"], np.load(repo / "data/prepared/test_images.npy"))
    assert pcn(repo, "--seed", "0", "--out", "zero.npz").returncode == 0
    assert not np.array_equal(saved["images"], np.load(repo / "zero.npz")["images"])


def test_a_seed_not_in_params_is_one_line_with_the_choices(repo):
    out = pcn(repo, "--seed", "7")
    assert out.returncode == 1 and out.stderr.strip() == "error: --seed 7 is not one of params.yaml's seeds: 0, 1"
