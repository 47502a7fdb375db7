"""MLflow store checks: fail fast, absolute URIs, concurrent writers on one sqlite store."""
import multiprocessing as mp
import socket
import time

import pytest

from pcn.tracking import TrackingError, check_tracking_uri, default_tracking_uri, ensure_experiment, flatten


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
    except Exception as exc:   # reported to the parent
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


def test_flatten():
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": "x"}) == {"a.b": 1, "a.c": "[1, 2]", "d": "x"}
