"""Outputs that reproduce bit for bit: no run id, time or speed in anything DVC tracks."""

import subprocess

import pytest
import yaml

from conftest import tiny_params
from project import GIT, commit, dvc, env, make_project, mlflow_runs, ran, read_json, result_files

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


def registry_versions(repo) -> int:
    from mlflow.tracking import MlflowClient

    return len(MlflowClient(f"sqlite:///{repo / 'mlflow.db'}").search_model_versions())


def test_an_experiment_round_trip_restores_outputs_without_running_a_stage(tmp_path, default_params):
    """After `dvc exp run -S`, going back to the committed params restores every output from the cache (git:
    the small results; DVC's cache: models and data) with no stage run, no MLflow run and no model version;
    running the same experiment again restores it from DVC's run cache."""
    params = tiny_params(default_params, variants=("modulus",), seeds=(0,))
    params["runtime"]["log_models"] = True
    repo = make_project(tmp_path / "repo", params)
    dvc("repro", cwd=repo)
    commit(repo, "baseline results")
    baseline, baseline_runs = result_files(repo), len(mlflow_runs(repo)[1])
    dvc("exp", "run", "-n", "lr", "-S", "train.lr=0.02", cwd=repo)
    experiment, experiment_runs, versions = result_files(repo), len(mlflow_runs(repo)[1]), registry_versions(repo)
    assert experiment != baseline and experiment_runs > baseline_runs and versions == 2
    subprocess.run(GIT + ["checkout", "."], cwd=repo, check=True)
    dvc("checkout", cwd=repo)
    assert result_files(repo) == baseline
    again = dvc("repro", cwd=repo)
    assert ran(again.stdout) == [] and "Data and pipelines are up to date" in again.stdout
    dvc("exp", "run", "-n", "lr-again", "-S", "train.lr=0.02", cwd=repo)
    assert result_files(repo) == experiment  # restored from the run cache ...
    assert len(mlflow_runs(repo)[1]) == experiment_runs and registry_versions(repo) == versions  # ... not run


def test_a_second_clone_pulls_models_and_data_from_the_default_remote_without_running(tmp_path, default_params):
    """`dvc push` in one clone and `dvc pull` in another, through the default remote of .dvc/config (the user's
    ~/.cache/pcn/dvc-storage, private): the second clone has every output, byte for byte, and `dvc repro` runs
    nothing."""
    params = tiny_params(default_params, variants=("modulus",), seeds=(0,))
    first = make_project(tmp_path / "first", params)
    home = env(HOME=str(tmp_path / "home"))
    dvc("repro", cwd=first, environ=home)
    commit(first, "results")
    pushed = dvc("push", cwd=first, environ=home)
    assert (tmp_path / "home/.cache/pcn/dvc-storage").is_dir(), pushed.stdout  # ~/.cache/pcn/... of .dvc/config
    assert (tmp_path / "home/.cache/pcn").stat().st_mode & 0o777 == 0o700
    second = tmp_path / "second"
    subprocess.run(GIT + ["clone", "-q", str(first), str(second)], check=True)
    assert not (second / "models/modulus-0").exists() and not (second / "results/train/modulus-0").exists()
    dvc("pull", cwd=second, environ=home)
    assert result_files(second) == result_files(first)
    again = dvc("repro", cwd=second)
    assert ran(again.stdout) == [] and not (second / "mlflow.db").exists()  # no stage ran, nothing tracked
