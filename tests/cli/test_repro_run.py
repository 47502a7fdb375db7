"""pcn repro end to end on a tiny configuration: dvc repro's results with DVC's records up to date, one parent
run with every stage run tagged with its worker, stages spread over a running scheduler's workers, and a
failing stage named with its dependants held back."""

import contextlib
import json
import subprocess
import sys
import time

import pytest

from conftest import tiny_params
from project import dvc, env, make_project, mlflow_runs, result_files, run

pytestmark = pytest.mark.slow


def pcn_repro(repo, *args, check=True, environ=None):
    return run([sys.executable, "-m", "pcn.cli.main", "repro", *args], repo, check, environ or env(), timeout=600)


def stage_runs(repo):
    _, runs, _ = mlflow_runs(repo)
    parents = [r for r in runs if r.data.tags.get("pcn.kind") == "pipeline"]
    return parents, [r for r in runs if r.data.tags.get("pcn.kind") != "pipeline"]


def test_two_workers_give_dvc_repro_results(tmp_path, default_params):
    params = tiny_params(default_params)
    plain = make_project(tmp_path / "plain", params)
    dvc("repro", cwd=plain, environ=env(MKL_NUM_THREADS="1"))  # MKL's sgemm: other bytes at 1 and 2 threads
    repo = make_project(tmp_path / "repo", params)
    out = pcn_repro(repo, "--workers", "2").stdout  # one thread per worker: MKL's too
    assert "all 8 stages finished" in out and "start report -> tcp://127.0.0.1:" in out, out
    assert "Data and pipelines are up to date." in dvc("status", cwd=repo).stdout
    assert result_files(repo) == result_files(plain)  # byte for byte
    parents, stages = stage_runs(repo)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert parents[0].info.run_name.startswith("pcn repro ")
    assert len(stages) == 5 and all(r.info.status == "FINISHED" for r in stages)
    assert {r.data.tags["mlflow.parentRunId"] for r in stages} == {parents[0].info.run_id}
    assert all(r.data.tags["dask.worker"].startswith("tcp://127.0.0.1:") for r in stages)
    assert {r.data.tags.get("device") for r in stages if r.data.tags["dvc.stage"] == "train"} == {"cpu"}
    assert "nothing to run" in pcn_repro(repo, "--workers", "2").stdout


@contextlib.contextmanager
def scheduler_with_workers(tmp_path, repo, count=2):
    """A Dask scheduler and ``count`` one-thread workers on 127.0.0.1; yields ``(address, worker processes)``."""
    from distributed import Client

    file, e = tmp_path / "scheduler.json", env(PYTHONPATH=str(repo))
    quiet = {"env": e, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    scheduler = [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0"]
    started = [subprocess.Popen([*scheduler, "--scheduler-file", str(file)], **quiet)]
    try:
        deadline = time.time() + 60
        while not file.is_file() and time.time() < deadline:
            time.sleep(0.2)
        assert file.is_file(), "the scheduler did not start"
        address = json.loads(file.read_text())["address"]
        worker = [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1"]
        for _ in range(count):
            started.append(subprocess.Popen([*worker, "--host", "127.0.0.1", "--no-dashboard"], **quiet))
        with Client(address, timeout="60s") as client:
            client.wait_for_workers(count, timeout=120)
        yield address, started[1:]
    finally:
        for process in reversed(started):
            process.terminate()
            process.wait(timeout=30)


def test_a_running_scheduler_spreads_stages_over_its_workers(tmp_path, default_params):
    repo = make_project(tmp_path / "repo", tiny_params(default_params))
    with scheduler_with_workers(tmp_path, repo) as (address, _):
        out = pcn_repro(repo, "--scheduler", address).stdout
        assert "8 stages on 2 Dask workers" in out, out
    parents, stages = stage_runs(repo)
    assert len(parents) == 1 and len(stages) == 5  # train and evaluate of 2 variants, report
    assert len({r.data.tags["dask.worker"] for r in stages}) == 2
    assert "Data and pipelines are up to date." in dvc("status", cwd=repo).stdout


# Appended to the project's stages/train.py: the first attempt stops after its first epoch's checkpoint and waits
# there to be killed (a marker file says so), so the kill lands mid-training on any machine, however fast.
PAUSE_AFTER_FIRST_CHECKPOINT = """
import time as _time

_save_checkpoint = training.save_checkpoint


def _save_then_wait_to_be_killed(s, state, *args, **kwargs):
    _save_checkpoint(s, state, *args, **kwargs)
    marker = ROOT / ".dvc/tmp/first-checkpoint-written"
    if state.epoch == 1 and not marker.exists():
        marker.write_text(str(os.getpid()))
        _time.sleep(600)


training.save_checkpoint = _save_then_wait_to_be_killed
"""


def test_a_worker_killed_mid_training_gives_a_complete_run(tmp_path, default_params):
    import psutil

    repo = make_project(tmp_path / "repo", tiny_params(default_params, variants=("modulus",), epochs=3))
    train = repo / "stages/train.py"
    main_call = 'if __name__ == "__main__":'
    train.write_text(train.read_text().replace(main_call, PAUSE_AFTER_FIRST_CHECKPOINT + "\n\n" + main_call))
    marker = repo / ".dvc/tmp/first-checkpoint-written"
    with scheduler_with_workers(tmp_path, repo) as (address, workers):
        cmd = [sys.executable, "-m", "pcn.cli.main", "repro", "--scheduler", address]
        repro = subprocess.Popen(cmd, cwd=repo, env=env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 300
        while not marker.is_file() and time.time() < deadline and repro.poll() is None:
            time.sleep(0.2)
        assert marker.is_file(), "the first attempt did not reach its first checkpoint"
        pids = {w.pid for w in workers}
        running = [p for p in psutil.process_iter(["cmdline"]) if "train@modulus-0" in (p.info["cmdline"] or [])]
        # the Dask worker process running the training: the ancestor of its dvc process started by a nanny we started
        victim = next(a for p in running for a in p.parents() if a.ppid() in pids)
        victim.kill()  # SIGKILL: no chance to clean up; the nanny starts a fresh worker
        out, _ = repro.communicate(timeout=400)
    assert repro.returncode == 0, out
    assert "all 6 stages finished" in out, out
    log = (repo / ".dvc/tmp/pcn-repro/train@modulus-0.log").read_text()
    assert "resuming from" in log and "at epoch 1" in log, log
    assert "Data and pipelines are up to date." in dvc("status", cwd=repo).stdout
    _, stages = stage_runs(repo)
    train_runs = [r for r in stages if r.data.tags["dvc.stage"] == "train"]
    finished = [r for r in train_runs if r.info.status == "FINISHED"]
    assert sorted(r.info.status for r in train_runs) == ["FINISHED", "KILLED"], [r.info.status for r in train_runs]
    assert "resumed_from" in finished[0].data.tags


def test_a_failing_stage_is_named_and_its_dependants_not_started(tmp_path, default_params):
    repo = make_project(tmp_path / "repo", tiny_params(default_params))
    train = repo / "stages/train.py"
    train.write_text(
        'import os, sys\nif os.environ.get("DVC_STAGE") == "train@soft_threshold-0":\n'
        '    sys.exit("boom: soft_threshold breaks")\n' + train.read_text()
    )
    failed = pcn_repro(repo, "--workers", "2", "--retries", "0", check=False)
    out = failed.stdout
    assert failed.returncode == 1, out + failed.stderr
    assert "stage train@soft_threshold-0 failed" in out and "boom: soft_threshold breaks" in out, out
    assert "not started (they depend on train@soft_threshold-0): evaluate@soft_threshold-0, report" in out, out
    assert "done  evaluate@modulus-0" in out and "done  draw_filters" in out  # the independent ones went on
    logs = {p.stem for p in (repo / ".dvc/tmp/pcn-repro").glob("*.log")}  # one per stage started
    assert logs == {"validate", "fetch", "draw_filters", "train@modulus-0", "evaluate@modulus-0"} | {
        "train@soft_threshold-0"
    }, logs
    status = dvc("status", cwd=repo).stdout
    assert "evaluate@modulus-0" not in status and "report" in status
