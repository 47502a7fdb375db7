"""The MLflow side of ``pcn repro``: one ``mlflow server`` for the execution and one parent run for its stages.

An SQLite store fails writes under many concurrent writers; stages that run at once therefore log through one
server on 127.0.0.1 that alone writes the database. The experiment is created before any stage starts.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from pcn.cli.project import fail


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(store: str, artifacts: Path, timeout: float = 90.0) -> tuple[subprocess.Popen, str]:
    """Start ``mlflow server`` on a free port of 127.0.0.1 with backend ``store``; returns ``(process, uri)``
    once it answers ``/health``."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store,
        "--default-artifact-root", artifacts.as_uri(), "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            error = (process.stderr.read() or b"").decode(errors="replace").strip().splitlines()
            fail(f"mlflow server for {store} exited at start: {error[-1] if error else process.returncode}")
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                if answer.status == 200:
                    return process, uri
        except OSError:
            time.sleep(0.5)
    stop_server(process)
    fail(f"mlflow server for {store} did not answer on {uri} within {timeout:.0f} s")


def stop_server(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, 15)  # its own session: the server and its uvicorn workers
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


def pipeline_key(pipeline_id: str) -> str:
    """The tag ``pcn.pipeline_key`` that :func:`pcn.tracking.runs.pipeline_parent` gives the execution's parent."""
    return hashlib.sha256(pipeline_id.encode()).hexdigest()[:32]


def close_parent(uri: str, experiment: str, pipeline_id: str, status: str) -> None:
    """Set the execution's parent run (if a stage opened one) to ``status`` (FINISHED, FAILED, KILLED)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return
    key = pipeline_key(pipeline_id)
    for run in client.search_runs([found.experiment_id], f"tags.`pcn.pipeline_key` = '{key}'", max_results=1):
        client.set_terminated(run.info.run_id, status)


def past_durations(uri: str, experiment: str) -> dict[str, float]:
    """Seconds each stage took in its latest finished MLflow run (``train@modulus-0`` -> 42.0)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return {}
    durations: dict[str, float] = {}
    runs = client.search_runs(
        [found.experiment_id],
        "attributes.status = 'FINISHED'",
        max_results=5000,
        order_by=["attributes.start_time DESC"],
    )
    for run in runs:
        if run.data.tags.get("pcn.kind") == "pipeline" or not run.info.end_time:
            continue
        name = (run.info.run_name or "").split(" #", 1)[0]
        if name and name not in durations:
            durations[name] = (run.info.end_time - run.info.start_time) / 1000
    return durations
