"""ImageNet read in place: the folder's listing reruns fetch, bad images are named, and resume is exact with
loader workers (on a tiny ImageFolder tree of real JPEG files)."""

import os
import signal

import pytest
import torch

from conftest import tiny_params
from project import (
    commit,
    dvc,
    make_project,
    ran,
    stage,
    start_train_stage,
    wait_for_epoch,
    write_jpeg,
    write_params,
)

pytestmark = pytest.mark.slow


def image_tree(root, per_class=2, size=(64, 48)):
    for split in ("train", "val"):
        for c, name in enumerate(("cat", "dog")):
            for i in range(per_class):
                write_jpeg(root / split / name / f"{i}.jpg", size=size, color=(60 + 90 * c, 20 * i, 100))


def imagenet_params(default_params, root, epochs=1, workers=0):
    p = tiny_params(default_params, variants=("modulus",), epochs=epochs)
    p["data"].update(name="imagenet", scan=["imagenet"], augment="imagenet")
    p["data"]["imagenet"].update(root=str(root), verify=False)
    p["filters"]["factorize_from"] = 1
    p["network"]["widths"] = [2, 4]
    p["train"]["batch_size"] = 4
    p["evaluate"]["batch_size"] = 4
    p["runtime"]["num_workers"] = workers
    return p


def test_listing_reruns_fetch_and_bad_images_are_named(tmp_path, default_params):
    images = tmp_path / "imagenet"
    image_tree(images)
    params = imagenet_params(default_params, images)
    repo = make_project(tmp_path / "repo", params)
    first = ran(dvc("repro", cwd=repo).stdout)
    assert {"scan@imagenet", "fetch", "train@modulus-0", "evaluate@modulus-0", "report"} <= set(first)
    commit(repo, "results")
    again = dvc("repro", cwd=repo).stdout
    assert ran(again) == ["scan@imagenet"] and "Stage 'fetch' didn't change" in again
    write_jpeg(images / "train" / "cat" / "new.jpg")  # an image added: fetch reruns
    assert {"scan@imagenet", "fetch", "train@modulus-0"} <= set(ran(dvc("repro", cwd=repo).stdout))
    bad = images / "train" / "dog" / "broken.jpg"
    write_jpeg(bad, size=(300, 300))
    bad.write_bytes(bad.read_bytes()[:500])  # truncated
    failed = dvc("repro", cwd=repo, check=False)  # named where it is decoded
    assert failed.returncode != 0 and f"cannot decode image {bad}" in failed.stdout + failed.stderr
    params["data"]["imagenet"]["verify"] = True  # named at fetch when verifying
    write_params(repo, params)
    failed = dvc("repro", cwd=repo, check=False)
    assert failed.returncode != 0 and "1 of 10 images cannot be decoded" in failed.stdout + failed.stderr
    assert ran(failed.stdout)[-1] == "fetch"


def history(repo):
    return [line.split(",")[:7] for line in (repo / "results/train/modulus-0/history.csv").read_text().splitlines()]


def test_resume_with_loader_workers_is_exact(tmp_path, default_params):
    images = tmp_path / "imagenet"
    image_tree(images, per_class=8, size=(80, 60))
    runs = {}
    for name, workers in (("reference", 2), ("no_workers", 0)):
        repo = make_project(tmp_path / name, imagenet_params(default_params, images, epochs=3, workers=workers))
        dvc("repro", "fetch", cwd=repo)
        stage("train", repo, "--variant", "modulus", "--seed", "0")
        runs[name] = history(repo)
    assert runs["reference"] == runs["no_workers"]  # workers do not change the draws
    repo = make_project(tmp_path / "killed", imagenet_params(default_params, images, epochs=3, workers=2))
    dvc("repro", "fetch", cwd=repo)
    proc = start_train_stage(repo, capture=False)
    wait_for_epoch(repo, 1, proc, timeout=600)
    os.killpg(proc.pid, signal.SIGKILL)
    ckpt = repo / "checkpoints/modulus-0/last.pt"
    proc.wait()
    assert torch.load(ckpt, weights_only=True)["state"]["epoch"] < 3, "the kill must land before training ends"
    assert "resuming" in stage("train", repo, "--variant", "modulus", "--seed", "0").stdout
    assert history(repo) == runs["reference"]
