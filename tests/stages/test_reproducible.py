"""Outputs that reproduce bit for bit: no run id, time or speed in anything DVC tracks."""

import subprocess

import pytest
import yaml

from conftest import tiny_params
from project import GIT, commit, dvc, make_project, read_json

pytestmark = pytest.mark.slow


def output_hashes(repo) -> dict:
    """Every stage's output hashes as dvc.lock records them."""
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    return {name: {o["path"]: o.get("md5") for o in stage.get("outs", [])} for name, stage in lock.items()}


def test_two_executions_write_the_same_bytes_and_leave_git_clean(tmp_path, default_params):
    params = tiny_params(default_params, variants=("modulus",), seeds=(0, 1))
    a, b = (make_project(tmp_path / name, params) for name in ("a", "b"))
    for repo in (a, b):
        dvc("repro", cwd=repo)
    assert output_hashes(a) == output_hashes(b)  # two clones, the same bytes
    assert "mlflow_run_id" not in (a / "results/train/modulus-0/metrics.json").read_text()
    assert "seconds" not in (a / "results/train/modulus-0/history.csv").read_text().splitlines()[0]
    assert read_json(a / "checkpoints/modulus-0/run.json")["mlflow_run_id"]  # kept, outside DVC and git
    commit(a, "results")
    dvc("repro", "-f", cwd=a)  # every stage runs again
    status = subprocess.run(GIT + ["status", "--porcelain"], cwd=a, capture_output=True, text=True, check=True)
    assert status.stdout == "", status.stdout  # nothing tracked changed
