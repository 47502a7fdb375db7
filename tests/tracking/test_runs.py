"""MLflow store checks: fail fast, absolute URIs, concurrent writers, copied stores, frozen servers."""

import multiprocessing as mp
import socket
import time

import pytest

from pcn.tracking.store import TrackingError, check_tracking_uri, default_tracking_uri, ensure_experiment


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_fails_fast():
    start = time.perf_counter()
    with pytest.raises(TrackingError, match="unreachable"):
        check_tracking_uri(f"http://127.0.0.1:{free_port()}", timeout=2)
    assert time.perf_counter() - start < 5


def test_rejects_relative_and_file_stores(tmp_path):
    with pytest.raises(TrackingError, match="absolute path"):
        check_tracking_uri("sqlite:///mlflow.db")
    with pytest.raises(TrackingError, match="file store is disabled"):
        check_tracking_uri(str(tmp_path / "mlruns"))
    with pytest.raises(TrackingError, match="does not exist"):
        check_tracking_uri(f"sqlite:///{tmp_path}/missing/mlflow.db")
    check_tracking_uri(default_tracking_uri(tmp_path))
    assert default_tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"


def _writer(uri: str, root: str, index: int, queue) -> None:
    try:
        import mlflow

        experiment_id = ensure_experiment(uri, "concurrent", root)
        mlflow.set_tracking_uri(uri)
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"writer{index}"):
            for step in range(5):
                mlflow.log_metric("value", index * 10 + step, step=step)
        queue.put(("ok", index))
    except Exception as exc:  # reported to the parent
        queue.put(("error", repr(exc)))


def test_concurrent_writers_share_one_new_sqlite_store(tmp_path):
    """Four processes create the store and experiment at the same moment, then log runs."""
    uri = default_tracking_uri(tmp_path)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(uri, str(tmp_path / "artifacts"), i, queue)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
    results = [queue.get(timeout=5) for _ in procs]
    assert all(status == "ok" for status, _ in results), results
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("concurrent")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.info.run_name for r in runs) == [f"writer{i}" for i in range(4)]
    assert all(len(client.get_metric_history(r.info.run_id, "value")) == 5 for r in runs)


def test_store_files_are_checked_and_named(tmp_path):
    import os
    import sqlite3

    text = tmp_path / "notes.db"
    text.write_text("not a database")
    with pytest.raises(TrackingError, match=f"{text} is not an SQLite database"):
        check_tracking_uri(f"sqlite:///{text}")
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(TrackingError, match=f"{other} is an SQLite database of another application"):
        check_tracking_uri(f"sqlite:///{other}")
    ours = tmp_path / "mlflow.db"
    ensure_experiment(f"sqlite:///{ours}", "e", tmp_path / "art")
    check_tracking_uri(f"sqlite:///{ours}")  # an MLflow store passes
    os.chmod(ours, 0o444)
    try:
        if os.geteuid() == 0:  # root writes through the mode bits: the store is writable, so accepted
            check_tracking_uri(f"sqlite:///{ours}")
        else:
            with pytest.raises(TrackingError, match=f"{ours} is read-only"):
                check_tracking_uri(f"sqlite:///{ours}")
    finally:
        os.chmod(ours, 0o644)


def test_a_store_that_cannot_be_written_is_read_only_whatever_its_mode_bits(tmp_path, monkeypatch):
    """As on a read-only mount (EROFS), where the mode bits still say writable."""
    import builtins
    import errno

    ours = tmp_path / "mlflow.db"
    ensure_experiment(f"sqlite:///{ours}", "e", tmp_path / "art")
    real_open = builtins.open

    def read_only_mount(file, mode="r", *args, **kwargs):
        if str(file) == str(ours) and mode != "rb":
            raise OSError(errno.EROFS, "Read-only file system", str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", read_only_mount)
    with pytest.raises(TrackingError, match=f"{ours} is read-only \\(Read-only file system; mode -rw"):
        check_tracking_uri(f"sqlite:///{ours}")


def test_a_deleted_experiment_is_named_with_the_command_that_restores_it(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = default_tracking_uri(tmp_path)
    experiment = ensure_experiment(uri, "phase-collapse", tmp_path / "art")
    MlflowClient(uri).delete_experiment(experiment)
    with pytest.raises(TrackingError) as info:
        ensure_experiment(uri, "phase-collapse", tmp_path / "art")
    message = str(info.value)
    assert "'phase-collapse'" in message and "is deleted" in message and "\n" not in message
    assert f"mlflow experiments restore --experiment-id {experiment}" in message


def test_a_copied_repository_keeps_its_new_artifacts_in_itself(tmp_path, capsys):
    """``cp -r`` of a repository copies its store, whose experiment names the original's artifact folder:
    the copy's runs must not write into the original. A shared store outside the repositories is left alone."""
    import shutil

    from mlflow.tracking import MlflowClient

    original, copy = tmp_path / "original", tmp_path / "copy"
    original.mkdir()
    ensure_experiment(default_tracking_uri(original), "phase-collapse", original / "mlartifacts")
    shutil.copytree(original, copy)
    uri = default_tracking_uri(copy)
    experiment = ensure_experiment(uri, "phase-collapse", copy / "mlartifacts")
    assert "kept its artifacts in" in capsys.readouterr().err
    client = MlflowClient(uri)
    assert client.get_experiment(experiment).artifact_location == (copy / "mlartifacts/phase-collapse").as_uri()
    run = client.create_run(experiment)
    (tmp_path / "table.md").write_text("| a |")
    client.log_artifact(run.info.run_id, str(tmp_path / "table.md"))
    assert list(copy.glob("mlartifacts/phase-collapse/*/artifacts/table.md"))
    assert not (original / "mlartifacts").exists()
    ensure_experiment(uri, "phase-collapse", copy / "mlartifacts")
    assert "kept its artifacts" not in capsys.readouterr().err  # said once
    original_uri = default_tracking_uri(original)
    assert (
        MlflowClient(original_uri).get_experiment_by_name("phase-collapse").artifact_location
        == (original / "mlartifacts/phase-collapse").as_uri()
    )
    shared = f"sqlite:///{tmp_path / 'shared.db'}"  # one store for two checkouts: the first one's location stays
    ensure_experiment(shared, "e", original / "mlartifacts")
    kept = ensure_experiment(shared, "e", copy / "mlartifacts")
    assert MlflowClient(shared).get_experiment(kept).artifact_location == (original / "mlartifacts/e").as_uri()


def _runs(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = default_tracking_uri(tmp_path)
    experiment = ensure_experiment(uri, "e", tmp_path / "art")
    return MlflowClient(uri), experiment


@pytest.mark.parametrize("raised,status", [(None, "FINISHED"), (ValueError, "FAILED"), (KeyboardInterrupt, "KILLED")])
def test_stage_run_status_follows_the_outcome(tmp_path, raised, status):
    from pcn.tracking.runs import StageRun, pipeline_parent
    from pcn.tracking.store import store_lock

    client, experiment = _runs(tmp_path)
    parent = pipeline_parent(client, experiment, "pid-1", "repro #abcd", {}, store_lock(client.tracking_uri, tmp_path))
    try:
        with StageRun(client, experiment, "train@m-0", {"seed": "0"}, tmp_path / "j.jsonl", parent) as run:
            assert client.get_run(run.run_id).info.status == "RUNNING"  # opened before the work
            run.log_metrics({"loss": 1.0}, step=1)
            if raised:
                raise raised("boom")
    except (ValueError, KeyboardInterrupt):
        pass
    assert client.get_run(run.run_id).info.status == status
    assert client.get_run(parent).info.status == status
    assert client.get_run(run.run_id).data.tags["mlflow.parentRunId"] == parent
    again = pipeline_parent(client, experiment, "pid-1", "repro #abcd", {}, store_lock(client.tracking_uri, tmp_path))
    assert again == parent and client.get_run(parent).info.status == "RUNNING"  # the same execution's parent


def test_parent_runs_are_found_whatever_the_name_and_abandoned_ones_are_closed(tmp_path):
    from pcn.tracking.runs import StageRun, pipeline_parent
    from pcn.tracking.store import store_lock

    client, experiment = _runs(tmp_path)
    lock = store_lock(client.tracking_uri, tmp_path)
    quoted = 'it\'s "mine" `x`:1:2.0'  # an experiment name DVC accepts, in the pipeline id
    first = pipeline_parent(client, experiment, quoted, "exp it's", {}, lock)
    assert pipeline_parent(client, experiment, quoted, "exp it's", {}, lock) == first
    # a dvc process killed without warning (SIGKILL): its parent and its stage run stay RUNNING
    dead = pipeline_parent(client, experiment, "exp:424242:1.0", "repro", {}, lock)
    stage = StageRun(client, experiment, "train@m-0", {}, tmp_path / "j.jsonl", dead).__enter__()
    live = pipeline_parent(client, experiment, "exp:1:1.0", "repro", {}, lock)
    statuses = lambda: {r: client.get_run(r).info.status for r in (first, dead, stage.run_id, live)}  # noqa: E731
    assert set(statuses().values()) == {"RUNNING"}
    new = pipeline_parent(client, experiment, "exp:2:2.0", "repro", {}, lock, alive=lambda i: "424242" not in i)
    assert statuses() == {first: "RUNNING", dead: "KILLED", stage.run_id: "KILLED", live: "RUNNING"}
    assert client.get_run(new).info.status == "RUNNING"


def test_tracking_failures_are_journaled_and_replayed(tmp_path):
    """A dead store costs no time and loses nothing: entries wait in the journal, then are replayed."""
    import time as _time

    from pcn.tracking.runs import StageRun, replay

    client, experiment = _runs(tmp_path)
    journal = tmp_path / "pending.jsonl"
    with StageRun(client, experiment, "train@m-0", {}, journal) as run:
        real = client.log_batch

        def dead(*args, **kwargs):
            raise ConnectionError("server gone")

        client.log_batch = dead
        start = _time.perf_counter()
        for epoch in range(1, 4):
            run.log_metrics({"test_acc": epoch / 10}, step=epoch)
        assert _time.perf_counter() - start < 2 and run.pending == 3
        client.log_batch = real
    history = client.get_metric_history(run.run_id, "test_acc")
    assert history == [] and journal.is_file()  # offline: nothing reached the store
    report = replay(journal, client, (tmp_path,), experiment)
    assert (report.sent, report.kept, report.quarantined) == (4, 0, [])  # the 3 epochs and the run's status
    assert [m.step for m in client.get_metric_history(run.run_id, "test_acc")] == [1, 2, 3]
    assert client.get_run(run.run_id).info.status == "FINISHED" and not journal.exists()


@pytest.mark.parametrize("server", ["frozen", "dead"])
def test_a_frozen_server_costs_what_a_dead_one_does(tmp_path, monkeypatch, server):
    """A frozen server (connections accepted, never answered) against a dead one (connections refused), with
    the stages' MLflow settings: every entry is journaled; the store is probed once (a 3 s health check), then
    left alone for the offline window. Without the probe, one call to a frozen server waits MLflow's request
    timeout three times (33 s measured), and again each window."""
    from mlflow.tracking import MlflowClient

    from pcn.tracking.runs import StageRun

    from process_defaults import STAGE_ENVIRONMENT

    for key, value in STAGE_ENVIRONMENT.items():
        monkeypatch.setenv(key, value)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)  # the kernel accepts connections for it; nothing ever reads or answers them
        port = listener.getsockname()[1]
        if server == "dead":
            listener.close()
        run = StageRun(MlflowClient(f"http://127.0.0.1:{port}"), "1", "train@m-0", {}, tmp_path / "j.jsonl")
        run.run_id = "0" * 32  # opened before the server froze or died
        start = time.perf_counter()
        for epoch in range(1, 4):
            run.log_metrics({"test_error": 1.0 / epoch}, step=epoch)
        assert not run.reachable()  # within the offline window: no probe
        elapsed = time.perf_counter() - start
    assert run.pending == 3
    assert elapsed < 6, f"{server} server: {elapsed:.1f} s for three epochs' metrics"


def test_metrics_are_logged_without_binary_noise():
    from pcn.tracking.runs import readable

    assert 100 * (1 - 0.901) != 9.9 and readable(100 * (1 - 0.901)) == 9.9
    assert readable(2.8333333333333335) == 2.83333333333 and readable(1e-9) == 1e-9 and readable(3) == 3.0


def test_host_tags_name_the_cpu_model_and_the_torch_build(tmp_path):
    import torch

    from pcn.tracking.runs import cpu_model, host_tags

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9B14\n\nprocessor\t: 1\n")
    assert cpu_model(cpuinfo) == "AMD EPYC 9B14"
    tags = host_tags()
    assert tags["torch.version"] == torch.__version__
    assert tags["host.cpu_capability"] in {"DEFAULT", "NO AVX", "AVX2", "AVX512", "ZVECTOR", "SVE256", "SVE128"}
    assert tags["host.cpu"] == cpu_model() and tags["host.cpu"] != "unknown"
    assert all(isinstance(v, str) and v for v in tags.values())  # MLflow tags: non-empty strings
