"""The MLflow server pcn repro starts for an execution: 8 stages logging at the same moment lose no write, and
the server is gone after it is stopped."""

import subprocess
import sys
import time

import pytest

from pcn.cli.repro_tracking import start_server, stop_server
from pcn.tracking.store import default_tracking_uri, ensure_experiment

pytestmark = pytest.mark.slow

WRITER = """import sys, time
from mlflow.tracking import MlflowClient
from mlflow.entities import Metric
uri, experiment, start, index = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
client = MlflowClient(uri)
run = client.create_run(experiment, run_name=f"stage-{index}")
time.sleep(max(0.0, start - time.time()))  # every writer starts at the same moment
for step in range(40):
    client.log_metric(run.info.run_id, "loss", float(step), step=step)
client.log_batch(run.info.run_id, metrics=[Metric(f"m{i}", float(i), 0, 0) for i in range(40)])
client.set_terminated(run.info.run_id, "FINISHED")
"""


def test_eight_stages_logging_at_once_lose_no_write(tmp_path):
    from mlflow.tracking import MlflowClient

    store = default_tracking_uri(tmp_path)
    experiment = ensure_experiment(store, "phase-collapse", tmp_path / "mlartifacts")
    server, uri = start_server(store, tmp_path / "mlartifacts")
    try:
        start = time.time() + 25  # after every writer has imported MLflow (2 cores, 8 processes)
        writers = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER, uri, experiment, str(start), str(i)], stderr=subprocess.PIPE
            )
            for i in range(8)
        ]
        errors = [w.communicate(timeout=180)[1].decode()[-500:] for w in writers]
        assert [w.returncode for w in writers] == [0] * 8, errors
    finally:
        stop_server(server)
    assert server.poll() is not None
    client = MlflowClient(store)  # read back from the database itself
    runs = client.search_runs([experiment])
    assert len(runs) == 8 and all(r.info.status == "FINISHED" for r in runs)
    for r in runs:
        assert len(client.get_metric_history(r.info.run_id, "loss")) == 40
        assert len([k for k in r.data.metrics if k.startswith("m")]) == 40
