"""MLflow from the stages: logged and registered models that load back, system metrics, datasets, and a
tracking server that dies mid-run."""

import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
import torch

from conftest import tiny_params
from project import dvc, env, make_project, mlflow_runs, read_json, start_train_stage, wait_for_epoch

pytestmark = pytest.mark.slow


def test_logged_models_are_in_the_experiment_registered_with_meaning_and_take_pixels(tmp_path, default_params):
    import mlflow
    import numpy as np

    from pcn.pipeline.build import InputSpec, rebuild_model

    params = tiny_params(default_params, variants=("modulus",), seeds=(0, 1))
    params["runtime"].update(log_models=True, system_metrics=True)
    repo = make_project(tmp_path / "repo", params)
    dvc("repro", cwd=repo)
    runs, all_runs, client = mlflow_runs(repo)
    versions = client.search_model_versions("name='pcn-modulus'")
    assert sorted(int(v.version) for v in versions) == [1, 2]  # one version per trained model
    train = [r for r in all_runs if r.info.run_name.startswith("train@modulus-0 ")][0]
    version = [v for v in versions if v.run_id == train.info.run_id][0]
    logged = client.get_logged_model(version.source.rsplit("/", 1)[-1])  # models:/<model id>
    assert logged.experiment_id == train.info.experiment_id and logged.name == "modulus-0"  # not "Default"
    assert not (repo / "mlruns").exists()  # no stray tree of the Default experiment
    from pcn.tracking.runs import cpu_model

    for run in all_runs:  # every run says on which CPU and torch build its floats were computed
        assert run.data.tags.get("host.cpu") == cpu_model() and run.data.tags["torch.version"] == torch.__version__
    assert train.data.tags["pcn.work"] == "train"
    metrics = read_json(repo / "results/train/modulus-0/metrics.json")
    card = read_json(repo / "data/prepared/card.json")
    assert {k: version.tags[k] for k in ("variant", "seed", "data.name", "epochs", "params_hash")} == {
        "variant": "modulus",
        "seed": "0",
        "data.name": "synthetic",
        "epochs": str(metrics["epochs"]),
        "params_hash": metrics["params_hash"],
    }
    assert float(version.tags["test_error_pct"]) == pytest.approx(metrics["final_test_error"], abs=1e-4)
    assert "uint8 images (N, 1, 16, 16)" in version.description and "logits" in version.description
    assert client.get_model_version_by_alias("pcn-modulus", "current").version == version.version
    assert client.get_model_version_by_alias("pcn-modulus", "seed-1").version != version.version
    # the model takes pixels as a user has them and normalizes them itself
    saved = torch.load(repo / "models/modulus-0/model.pt", weights_only=True)
    model = rebuild_model(saved, InputSpec.from_card(card))
    pixels = torch.randint(0, 256, (5, card["channels"], card["image_size"], card["image_size"]), dtype=torch.uint8)
    mean, std = (torch.tensor(card["normalization"][k]).view(1, -1, 1, 1) for k in ("mean", "std"))
    with torch.no_grad():
        expected = model((pixels.float() / 255 - mean) / std)
    mlflow.set_tracking_uri(client.tracking_uri)
    torch_model = mlflow.pytorch.load_model("models:/pcn-modulus@current")
    assert torch.allclose(torch_model(pixels), expected, atol=1e-5)
    predicted = mlflow.pyfunc.load_model(f"models:/pcn-modulus/{version.version}").predict(pixels.numpy())
    assert np.allclose(np.asarray(predicted), expected.numpy(), atol=1e-5)
    # outputs rewritten from the finished checkpoint: the same model, registered once
    dvc("repro", "-f", "-s", "train@modulus-0", cwd=repo)
    assert len(client.search_model_versions("name='pcn-modulus'")) == 2
    assert any(k.startswith("system/cpu_utilization") for k in train.data.metrics)  # system metrics
    (dataset,) = train.inputs.dataset_inputs
    assert dataset.dataset.digest == card["digest"][:36] and dataset.dataset.name == "synthetic"
    assert train.data.metrics["test_error"] == pytest.approx(metrics["final_test_error"])
    history = client.get_metric_history(train.info.run_id, "test_error")  # the headline, per epoch, in percent
    assert [m.step for m in history] == list(range(1, metrics["epochs"] + 1))
    assert history[-1].value == pytest.approx(metrics["final_test_error"])
    val = client.get_metric_history(train.info.run_id, "val_error")
    assert val[-1].value == pytest.approx(metrics["final_val_error"])


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(store, port):
    e = env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{store}",
            "--default-artifact-root",
            str(store.parent / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env=e,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return proc
        except OSError:
            time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError("the MLflow server did not start")


def test_a_dead_tracking_server_costs_no_epoch_and_no_hang(tmp_path, default_params):
    params = tiny_params(default_params, variants=("modulus",), epochs=4)
    params["data"]["synthetic"]["n_train"] = 512
    repo = make_project(tmp_path / "repo", params)
    dvc("repro", "fetch", cwd=repo)
    store, port = tmp_path / "server" / "mlflow.db", free_port()
    store.parent.mkdir()
    server = start_server(store, port)
    e = env(MLFLOW_TRACKING_URI=f"http://127.0.0.1:{port}", DVC_ROOT=str(repo))
    proc = start_train_stage(repo, e)
    wait_for_epoch(repo, 1, proc)
    os.killpg(server.pid, signal.SIGKILL)  # the server dies after epoch 1
    killed_at = time.time()
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    assert time.time() - killed_at < 120  # brief retries, no 9-minute hang
    history = (repo / "results/train/modulus-0/history.csv").read_text().splitlines()
    assert len(history) == 1 + 4  # no epoch lost
    journal = repo / "checkpoints/mlflow_pending/train@modulus-0.jsonl"
    assert journal.is_file() and "resync" in err and str(journal) in err
    server = start_server(store, port)  # back: the journal is replayed
    try:
        replay = subprocess.run(
            [
                sys.executable,
                "-m",
                "pcn.cli.main",
                "resync",
                "--uri",
                f"http://127.0.0.1:{port}",
                str(journal),
            ],
            cwd=repo,
            env=e,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert replay.returncode == 0, replay.stderr
        from mlflow.tracking import MlflowClient

        client = MlflowClient(f"http://127.0.0.1:{port}")
        run = client.search_runs([client.get_experiment_by_name("phase-collapse").experiment_id])[0]
        assert [m.step for m in client.get_metric_history(run.info.run_id, "test_acc")] == [1, 2, 3, 4]
        assert client.get_run(run.info.run_id).info.status == "FINISHED"
    finally:
        os.killpg(server.pid, signal.SIGKILL)


def test_the_served_registered_model_classifies_raw_test_images_over_rest(tmp_path, default_params):
    """`mlflow models serve` of the ``current`` alias on loopback, sent the prepared test images as uint8 pixels
    (as a client has them): its answers give the test accuracy the training stage measured."""
    import json

    import numpy as np

    from pcn.data.datasets import load_split, read_card
    from pcn.data.splits import seed_splits

    params = tiny_params(default_params, variants=("modulus",), seeds=(0,), epochs=2)
    params["runtime"]["log_models"] = True
    repo = make_project(tmp_path / "repo", params)
    dvc("repro", cwd=repo)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/pcn-modulus@current"]
        + ["--env-manager", "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=repo,
        env=env(MLFLOW_TRACKING_URI=f"sqlite:///{repo / 'mlflow.db'}"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2):
                    break
            except OSError:
                assert server.poll() is None, "mlflow models serve exited"
                time.sleep(0.5)
        prepared = repo / "data/prepared"
        card = read_card(prepared)
        d = params["data"]
        test = seed_splits(
            load_split(prepared, card, "train"),
            load_split(prepared, card, "test"),
            card["name"],
            d["split_seed"],
            0,
            d["resplit"],
            d["validation_fraction"],
        )["test"]  # the test images of seed 0's run, as the training stage drew them
        images, labels = test.images, test.labels  # (N, C, H, W) uint8, (N,)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps({"inputs": images.tolist()}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            logits = np.asarray(json.loads(response.read())["predictions"])
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    assert logits.shape == (len(labels), 4)
    metrics = read_json(repo / "results/train/modulus-0/metrics.json")
    accuracy = float((logits.argmax(1) == labels).mean())
    assert accuracy == pytest.approx(1 - metrics["final_test_error"] / 100, abs=0.5 / len(labels))
    assert accuracy > 0.25  # 4 classes: better than chance, so the comparison says something


def test_the_registered_model_on_its_exported_test_split_gives_its_test_error_tag(tmp_path, default_params):
    """What docs/mlflow.md's serving section promises: ``pcn test-split --seed 0`` and the model of
    ``models:/pcn-modulus@current`` give the error of the version's ``test_error_pct`` tag (with ``data.resplit``,
    not the prepared test images')."""
    import mlflow
    import numpy as np

    params = tiny_params(default_params, variants=("modulus",), seeds=(0,), epochs=2)
    params["runtime"]["log_models"] = True
    params["data"]["resplit"] = True
    repo = make_project(tmp_path / "repo", params)
    dvc("repro", cwd=repo)
    out = subprocess.run(
        [sys.executable, "-m", "pcn.cli.main", "test-split", "--seed", "0", "--out", "seed0.npz"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    split = np.load(repo / "seed0.npz")
    _, _, client = mlflow_runs(repo)
    mlflow.set_tracking_uri(client.tracking_uri)
    version = client.get_model_version_by_alias("pcn-modulus", "current")
    assert version.tags["seed"] == str(int(split["seed"]))  # the alias's model is the split's seed's
    logits = np.asarray(mlflow.pyfunc.load_model("models:/pcn-modulus@current").predict(split["images"]))
    error = 100 * float((logits.argmax(1) != split["labels"]).mean())
    assert error == pytest.approx(float(version.tags["test_error_pct"]), abs=1e-3)
    assert error < 75  # 4 classes: better than chance, so the comparison says something
