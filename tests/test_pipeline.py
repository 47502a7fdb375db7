"""End to end: a real `dvc repro` in a temporary git repository with a real MLflow sqlite store,
resume after a kill, determinism, and DDP (2 gloo processes) against one process."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import ROOT, tiny_params

pytestmark = pytest.mark.slow

PROJECT_FILES = ["pcn", "stages", "dvc.yaml", "pyproject.toml", ".dvc/config", ".dvcignore", ".gitignore"]


def make_project(tmp: Path, params: dict) -> Path:
    """Copy the project (code and pipeline, no results) into ``tmp`` as a fresh git repo."""
    tmp.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, tmp / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, tmp / name)
    (tmp / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git = ["git", "-c", "user.name=pcn-test", "-c", "user.email=pcn-test@example.invalid"]
    subprocess.run(["git", "init", "-q"], cwd=tmp, check=True)
    subprocess.run(git + ["add", "-A"], cwd=tmp, check=True)
    subprocess.run(git + ["commit", "-qm", "init"], cwd=tmp, check=True)
    return tmp


def env() -> dict:
    e = dict(os.environ)
    e["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{e['PATH']}"      # `python` = this interpreter
    e.pop("MLFLOW_TRACKING_URI", None)
    e.pop("DVC_ROOT", None)
    e.update(DVC_NO_ANALYTICS="1", MLFLOW_DISABLE_TELEMETRY="true", OMP_NUM_THREADS="1")
    return e


def run(cmd: list[str], cwd: Path, check: bool = True, **kw) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=kw.pop("environ", env()), capture_output=True, text=True,
                            timeout=900, **kw)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def dvc(*args, cwd: Path, check: bool = True):
    return run([sys.executable, "-m", "dvc", *args], cwd, check)


def stage(name: str, cwd: Path, *args, environ=None, check=True):
    e = env() if environ is None else environ
    e["DVC_ROOT"] = str(cwd)
    return run([sys.executable, f"stages/{name}.py", *args], cwd, check, environ=e)


def mlflow_runs(repo: Path) -> dict:
    from mlflow.tracking import MlflowClient
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("phase-collapse")
    runs = client.search_runs([experiment.experiment_id])
    return {r.info.run_name: r for r in runs}, runs, client


def test_dvc_repro_end_to_end(tmp_path, default_params):
    repo = make_project(tmp_path / "repo", tiny_params(default_params))
    out = dvc("repro", cwd=repo).stdout
    for name in ("fetch", "filters", "train@modulus", "train@soft_threshold", "evaluate@modulus", "report"):
        assert f"Running stage '{name}'" in out
    train = json.loads((repo / "results/train/modulus/metrics.json").read_text())
    assert 0 <= train["final_test_acc"] <= 1 and train["epochs"] == 1
    rows = (repo / "results/evaluate/soft_threshold/separation.csv").read_text().splitlines()
    assert rows[0].startswith("layer,ncm_accuracy") and len(rows) == 1 + 3          # input + 2 blocks
    assert "| modulus | lscat | mod |" in (repo / "results/report/table.md").read_text()
    assert (repo / "results/report/ncm_accuracy.png").stat().st_size > 1000
    runs, _, client = mlflow_runs(repo)
    assert {"train@modulus", "train@soft_threshold", "evaluate@modulus", "report"} <= set(runs)
    run = runs["train@modulus"]
    assert run.data.params["model.nonlinearity"] == "mod" and run.data.tags["dvc.variant"] == "modulus"
    assert len(run.data.tags["params.sha256"]) == 64 and "git.commit" in run.data.tags
    assert [m.step for m in client.get_metric_history(run.info.run_id, "test_acc")] == [1]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"metrics.json", "history.csv", "curves.png", "filters.png", "checkpoint"} <= artifacts
    layer_steps = client.get_metric_history(runs["evaluate@modulus"].info.run_id, "layer_ncm_accuracy")
    assert sorted(m.step for m in layer_steps) == [0, 1, 2]

    second = dvc("repro", cwd=repo).stdout
    assert "Running stage" not in second

    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["lr"] = 0.02
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    third = dvc("repro", cwd=repo).stdout
    assert "Running stage 'train@modulus'" in third and "Running stage 'evaluate@modulus'" in third
    assert "Running stage 'report'" in third
    assert "Running stage 'fetch'" not in third and "Running stage 'filters'" not in third

    # DVC refuses `-S train.epoch=2` itself; the `+key=value` form adds the key silently, which we reject
    typo = dvc("exp", "run", "-S", "+train.epoch=2", cwd=repo, check=False)
    assert typo.returncode != 0
    assert "train.epoch: unknown key (did you mean 'epochs'?)" in typo.stdout + typo.stderr


def prepare_stages(repo: Path):
    stage("fetch", repo)
    stage("filters", repo)


def test_resume_after_kill_matches_uninterrupted_run(tmp_path, default_params):
    params = tiny_params(default_params, variants=("modulus",), epochs=4)
    params["data"]["synthetic"].update(n_train=768, image_size=16)
    params["network"]["widths"] = [8, 16]
    reference = make_project(tmp_path / "reference", params)
    prepare_stages(reference)
    stage("train", reference, "--variant", "modulus")
    expected = json.loads((reference / "results/train/modulus/metrics.json").read_text())

    again = make_project(tmp_path / "again", params)                  # determinism: same params + seed
    prepare_stages(again)
    stage("train", again, "--variant", "modulus")
    repeated = json.loads((again / "results/train/modulus/metrics.json").read_text())
    assert {k: v for k, v in repeated.items() if k != "images_per_second"} == \
        {k: v for k, v in expected.items() if k != "images_per_second"}

    repo = make_project(tmp_path / "killed", params)
    prepare_stages(repo)
    e = env()
    e["DVC_ROOT"] = str(repo)
    proc = subprocess.Popen([sys.executable, "stages/train.py", "--variant", "modulus"], cwd=repo, env=e,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    ckpt = repo / "checkpoints/modulus/last.pt"
    deadline = time.time() + 300
    while time.time() < deadline:
        if ckpt.is_file() and torch.load(ckpt, weights_only=False)["epoch"] >= 2:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    state = torch.load(ckpt, weights_only=False)
    assert 2 <= state["epoch"] < 4, "the kill must land before training ends"
    assert not (repo / "results/train/modulus/metrics.json").exists()

    resumed = stage("train", repo, "--variant", "modulus").stdout
    assert f"resuming from {ckpt} at epoch {state['epoch']}" in resumed
    got = json.loads((repo / "results/train/modulus/metrics.json").read_text())
    for key in ("final_test_acc", "final_train_acc", "best_test_acc", "best_epoch"):
        assert got[key] == expected[key], key
    history = (repo / "results/train/modulus/history.csv").read_text().splitlines()
    ref_history = (reference / "results/train/modulus/history.csv").read_text().splitlines()
    def strip(line):                                                    # drop the timing columns
        return line.split(",")[:7]
    assert [strip(h) for h in history] == [strip(h) for h in ref_history]
    assert not ckpt.exists()                                            # removed after completion
    _, runs, _ = mlflow_runs(repo)
    first_id = state["mlflow_run_id"]
    assert len(runs) == 2
    resumed_runs = [r for r in runs if r.data.tags.get("resumed_from") == first_id]
    assert len(resumed_runs) == 1 and resumed_runs[0].info.status == "FINISHED"
    killed = [r for r in runs if r.info.run_id == first_id][0]
    assert killed.info.status == "KILLED"


def test_ddp_two_gloo_processes_equal_single_process(tmp_path, default_params):
    params = tiny_params(default_params, variants=("modulus_skip",), epochs=2)
    single = make_project(tmp_path / "single", params)
    prepare_stages(single)
    stage("train", single, "--variant", "modulus_skip")

    params["train"].update(launcher="torchrun", nproc=2)
    ddp = make_project(tmp_path / "ddp", params)
    prepare_stages(ddp)
    stage("train", ddp, "--variant", "modulus_skip")

    a = json.loads((single / "results/train/modulus_skip/metrics.json").read_text())
    b = json.loads((ddp / "results/train/modulus_skip/metrics.json").read_text())
    assert b["world_size"] == 2 and a["world_size"] == 1
    assert b["final_test_acc"] == pytest.approx(a["final_test_acc"], abs=1 / 32 + 1e-9)
    wa = torch.load(single / "models/modulus_skip/model.pt", weights_only=False)["state_dict"]
    wb = torch.load(ddp / "models/modulus_skip/model.pt", weights_only=False)["state_dict"]
    for key in wa:
        assert torch.allclose(wa[key].float(), wb[key].float(), rtol=1e-3, atol=1e-4), key
    ha = [line.split(",")[:5] for line in (single / "results/train/modulus_skip/history.csv").read_text().splitlines()]
    hb = [line.split(",")[:5] for line in (ddp / "results/train/modulus_skip/history.csv").read_text().splitlines()]
    assert [r[:2] for r in ha] == [r[:2] for r in hb]
    for ra, rb in zip(ha[1:], hb[1:]):
        assert float(ra[2]) == pytest.approx(float(rb[2]), rel=1e-3)        # train loss per epoch


def test_stage_fails_fast_on_unreachable_tracking_server(tmp_path, default_params):
    from test_tracking import free_port
    repo = make_project(tmp_path / "repo", tiny_params(default_params))
    e = env()
    e["MLFLOW_TRACKING_URI"] = f"http://127.0.0.1:{free_port()}"
    start = time.perf_counter()
    result = stage("train", repo, "--variant", "modulus", environ=e, check=False)
    assert result.returncode != 0 and "is unreachable" in result.stderr
    assert time.perf_counter() - start < 60 and not (repo / "checkpoints").exists()


def test_stage_rejects_invalid_params_before_work(tmp_path, default_params):
    params = tiny_params(default_params)
    params["train"]["optimiser"] = "adam"
    repo = make_project(tmp_path / "repo", params)
    result = stage("fetch", repo, check=False)
    assert result.returncode != 0 and "train.optimiser: unknown key" in result.stderr
    assert not (repo / "data" / "prepared").exists()


def test_non_finite_loss_stops_training_and_keeps_checkpoint(tmp_path, default_params):
    params = tiny_params(default_params, variants=("modulus",), epochs=30)
    params["train"]["lr"] = 1e30
    params["train"]["momentum"] = 0.0
    repo = make_project(tmp_path / "repo", params)
    prepare_stages(repo)
    result = stage("train", repo, "--variant", "modulus", check=False)
    assert result.returncode != 0
    assert "non-finite" in result.stderr and "at epoch" in result.stderr and "step" in result.stderr
    failed_epoch = int(result.stderr.split("at epoch ")[1].split(",")[0])
    if failed_epoch > 0:                                                # epochs before the fault were saved
        assert torch.load(repo / "checkpoints/modulus/last.pt", weights_only=False)["epoch"] == failed_epoch
    assert not (repo / "results/train/modulus/metrics.json").exists()


def test_queued_experiment_logs_to_the_origin_store(tmp_path, default_params):
    """`dvc exp run --queue` runs in .dvc/tmp/exps/<copy>: outputs stay there, MLflow runs land in
    the origin repository's database (an in-copy relative store would be deleted with the copy)."""
    repo = make_project(tmp_path / "repo", tiny_params(default_params, variants=("modulus",)))
    dvc("exp", "run", "--queue", "-S", "train.lr=0.02", "-n", "lr002", cwd=repo)
    dvc("queue", "start", "-j", "1", cwd=repo)
    deadline = time.time() + 600
    status = ""
    while time.time() < deadline:
        time.sleep(3)
        status = dvc("queue", "status", cwd=repo).stdout
        if "Running" not in status and "Queued" not in status:
            break
    assert "Success" in status, status + dvc("queue", "logs", "lr002", cwd=repo, check=False).stdout
    assert not (repo / "data" / "prepared").exists()                   # outputs stayed in the copy
    _, runs, _ = mlflow_runs(repo)
    train = [r for r in runs if r.info.run_name == "train@modulus"]
    assert len(train) == 1 and train[0].data.tags["dvc.exp_name"] == "lr002"
    assert train[0].data.params["train.lr"] == "0.02" and train[0].info.status == "FINISHED"
    assert "lr002" in dvc("exp", "show", "--no-pager", "--csv", cwd=repo).stdout
