"""pcn baseline: a clone whose committed dvc.lock came from another CPU keeps its own results after an
experiment (``git checkout . && dvc checkout`` restores them, no stage runs)."""

import subprocess
import sys

import pytest
import yaml

from pcn.cli.baseline import split_changes

from conftest import tiny_params
from project import GIT, commit, dvc, env, make_project, ran, result_files

KEPT = ["results/report/summary.json", "results/wavelets/filters.png"]


def test_only_the_lock_the_kept_outputs_and_gitignores_are_the_baseline():
    changes = [
        (" M", "dvc.lock"),
        (" M", "results/report/summary.json"),
        ("??", "results/wavelets/filters.png"),
        ("??", "models/.gitignore"),
        (" M", "params.yaml"),
        ("M ", "pcn/nn/wavelet.py"),
        ("??", "notes.txt"),
        (" M", "results/report/summary.json.bak"),
    ]
    baseline, other = split_changes(changes, KEPT)
    assert baseline == ["dvc.lock", "models/.gitignore", "results/report/summary.json", "results/wavelets/filters.png"]
    assert other == ["params.yaml", "pcn/nn/wavelet.py", "results/report/summary.json.bak"]  # untracked notes: left


def pcn_baseline(repo, *args, check=True):
    cmd = [sys.executable, "-m", "pcn.cli.main", "baseline", *args]
    done = subprocess.run(cmd, cwd=repo, env=env(), capture_output=True, text=True)
    assert not check or done.returncode == 0, done.stdout + done.stderr
    return done


def foreign_lock(repo) -> None:
    """Commit a dvc.lock as another CPU would have written it: other bytes for the trained model."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    for out in lock["stages"]["train@modulus-0"]["outs"]:
        if out["path"] == "models/modulus-0":
            out["md5"] = "0123456789abcdef0123456789abcdef.dir"
    (repo / "dvc.lock").write_text(yaml.safe_dump(lock, sort_keys=False))
    commit(repo, "results from another CPU")


@pytest.mark.slow
def test_after_an_experiment_checkout_restores_this_machines_baseline(tmp_path, default_params):
    repo = make_project(tmp_path / "repo", tiny_params(default_params, variants=("modulus",), seeds=(0,)))
    (repo / "NOTES.md").write_text("a tracked file that is nobody's dependency")
    dvc("repro", cwd=repo)
    foreign_lock(repo)  # commits NOTES.md too
    refused = pcn_baseline(repo, check=False)  # the workspace's model is not the committed lock's
    assert refused.returncode == 1 and "run `dvc repro` first" in refused.stderr, refused.stderr
    assert "train@modulus-0" in ran(dvc("repro", cwd=repo).stdout)  # this machine's bytes, again
    mine = result_files(repo)
    (repo / "notes.txt").write_text("mine")  # untracked: left alone
    done = pcn_baseline(repo)
    assert "committed" in done.stdout, done.stdout
    log = subprocess.run(GIT + ["log", "-1", "--name-only", "--format=%s"], cwd=repo, capture_output=True, text=True)
    assert log.stdout.startswith("pcn baseline: dvc repro on ") and "dvc.lock" in log.stdout, log.stdout
    assert "notes.txt" not in log.stdout
    assert "nothing to commit" in pcn_baseline(repo).stdout
    (repo / "NOTES.md").write_text("edited")  # a tracked file besides the results: not committed around
    refused = pcn_baseline(repo, check=False)
    assert refused.returncode == 1 and "NOTES.md" in refused.stderr, refused.stderr
    subprocess.run(GIT + ["checkout", "NOTES.md"], cwd=repo, check=True)
    dvc("exp", "run", "-S", "train.lr=0.02", cwd=repo)
    assert result_files(repo) != mine
    subprocess.run(GIT + ["checkout", "."], cwd=repo, check=True)
    dvc("checkout", cwd=repo)  # fails ("Is your cache up to date?") when the lock is the foreign one
    assert result_files(repo) == mine
    again = dvc("repro", cwd=repo)
    assert ran(again.stdout) == [] and "Data and pipelines are up to date" in again.stdout


def test_a_workspace_without_its_outputs_is_refused(tmp_path, default_params):
    repo = make_project(tmp_path / "repo", tiny_params(default_params, variants=("modulus",), seeds=(0,)))
    head = subprocess.run(GIT + ["rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout
    refused = pcn_baseline(repo, check=False)
    assert refused.returncode == 1 and "run `dvc repro` first; nothing committed" in refused.stderr, refused.stderr
    assert subprocess.run(GIT + ["rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout == head
