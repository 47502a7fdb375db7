"""Registered models prove they are ours (issue 32): digests recorded at registration, checked before any byte
reaches torch or MLflow's loader; no pickle in what pcn logs; one version per resume key; input checked."""

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pcn.tracking import registry
from pcn.tracking.model_input import ModelInputError
from pcn.tracking.verified import ModelVerificationError, load_model

ROOT = Path(__file__).resolve().parents[2]
CARD = {
    "name": "synthetic",
    "normalization": {"mean": [0.5], "std": [0.5]},
    "channels": 1,
    "image_size": 4,
    "num_classes": 2,
    "digest": "d" * 64,
}


class Run:
    """What log_and_register uses of a StageRun."""

    def __init__(self, client, experiment_id):
        self.client, self.experiment_id = client, experiment_id
        self.run_id = client.create_run(experiment_id).info.run_id

    def reachable(self):
        return True


def register(client, experiment_id, key="k" * 64):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    trained = registry.TrainedRun(
        "modulus",
        SimpleNamespace(arch="tiny", nonlinearity="modulus"),
        0,
        CARD,
        {"epochs": 1, "final_test_error": 50.0, "params_hash": "p"},
        key,
    )
    batches = SimpleNamespace(images=torch.arange(32, dtype=torch.uint8).view(2, 1, 4, 4))
    registry.log_and_register(Run(client, experiment_id), trained, model, model.state_dict(), batches, ROOT)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    import mlflow
    from mlflow.tracking import MlflowClient

    from pcn.tracking.store import default_tracking_uri, ensure_experiment

    repo = tmp_path_factory.mktemp("repo")
    uri = default_tracking_uri(repo)
    experiment = ensure_experiment(uri, "e", repo / "mlartifacts")
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    register(client, experiment)
    client.set_registered_model_alias("pcn-modulus", "current", "1")
    return repo, uri, client, experiment


def model_folder(store) -> Path:
    """The logged model of version 1 of pcn-modulus (the ``current`` alias) in the artifact store."""
    repo, _, client, _ = store
    model_id = client.get_model_version("pcn-modulus", "1").source.rsplit("/", 1)[-1]  # models:/m-...
    return repo / "mlartifacts" / "e" / "models" / model_id / "artifacts"


@pytest.fixture
def tampered(store):
    """The store's logged model, restored after the test changes it."""
    repo = store[0]
    folder = model_folder(store)
    backup = repo / "backup"
    shutil.copytree(folder, backup)
    yield folder
    shutil.rmtree(folder)
    shutil.copytree(backup, folder)
    shutil.rmtree(backup)


def test_a_verified_model_loads_and_predicts_pixels(store):
    repo, uri, client, _ = store
    tags = client.get_model_version("pcn-modulus", "1").tags
    assert "data/model.pt2" in json.loads(tags["pcn.manifest"]) and len(tags["pcn.manifest_sha256"]) == 64
    model = load_model("pcn-modulus@current", uri)
    logits = np.asarray(model.predict(np.zeros((3, 1, 4, 4), np.uint8)))
    assert logits.shape == (3, 2)
    assert model.predict(np.full((1, 1, 4, 4), 7.0)).shape == (1, 2)  # whole-valued floats are pixels


def test_what_pcn_logs_holds_no_pickle(store):
    import zipfile

    folder = model_folder(store)
    with zipfile.ZipFile(folder / "data" / "model.pt2") as archive:
        samples = [m for m in archive.infolist() if "sample_inputs/" in m.filename]
    assert samples and all(m.file_size == 0 for m in samples)
    assert not [p for p in folder.rglob("*") if p.suffix in (".pkl", ".pickle", ".pth", ".joblib")]


class Payload:
    def __reduce__(self):
        return (Path.touch, (Path("/tmp/pcn-issue32-owned"),))


def test_a_swapped_sample_input_pickle_is_refused_before_loading(store, tampered):
    import zipfile

    Path("/tmp/pcn-issue32-owned").unlink(missing_ok=True)
    archive = tampered / "data" / "model.pt2"
    with zipfile.ZipFile(archive) as old:
        members = {m.filename: old.read(m) for m in old.infolist()}
    name = next(n for n in members if "sample_inputs/" in n)
    members[name] = pickle.dumps(Payload())
    with zipfile.ZipFile(archive, "w") as new:
        for n, data in members.items():
            new.writestr(n, data)
    with pytest.raises(ModelVerificationError, match=r"file data/model.pt2 differs from the registered one"):
        load_model("pcn-modulus@current", store[1])
    assert not Path("/tmp/pcn-issue32-owned").exists()


@pytest.mark.parametrize(
    "plant, named",
    [
        (lambda f: (f / "data" / "model.pth").write_bytes(pickle.dumps(Payload())), "file data/model.pth"),
        (lambda f: (f / "code" / "loader.py").write_text("import os"), "file code/loader.py"),
        (
            lambda f: (f / "MLmodel").write_text((f / "MLmodel").read_text().replace("mlflow.pytorch", "loader")),
            "file MLmodel differs",
        ),
    ],
)
def test_a_planted_file_or_format_is_refused_by_name(store, tampered, plant, named):
    (tampered / "code").mkdir(exist_ok=True)
    plant(tampered)
    with pytest.raises(ModelVerificationError, match=named):
        load_model("pcn-modulus@current", store[1])


def test_a_version_without_digests_is_refused(store):
    repo, uri, client, _ = store
    client.delete_model_version_tag("pcn-modulus", "1", "pcn.manifest_sha256")
    try:
        with pytest.raises(ModelVerificationError, match="no valid pcn.manifest tag"):
            load_model("pcn-modulus/1", uri)
    finally:
        tags = client.get_model_version("pcn-modulus", "1").tags
        from pcn.tracking.verified import manifest_digest

        client.set_model_version_tag("pcn-modulus", "1", "pcn.manifest_sha256", manifest_digest(tags["pcn.manifest"]))


@pytest.mark.parametrize(
    "images, named",
    [
        (np.zeros((0, 1, 4, 4), np.uint8), "empty batch"),
        (np.full((2, 1, 4, 4), 0.5, np.float32), "not whole pixel values"),
        (np.full((2, 1, 4, 4), 300, np.int64), "outside 0..255"),
        (np.zeros((2, 3, 4, 4), np.uint8), r"shape \(2, 3, 4, 4\)"),
        (np.zeros((2, 1, 4, 4), np.complex64), "dtype complex64"),
        (np.zeros((5000, 1, 4, 4), np.uint8), "over the limit of 4096"),
    ],
)
def test_a_wrong_input_is_one_line_naming_it(store, images, named):
    model = load_model("pcn-modulus@current", store[1])
    with pytest.raises(ModelInputError, match=named) as raised:
        model.predict(images)
    assert "\n" not in str(raised.value) and "expected uint8 pixels (N, 1, 4, 4)" in str(raised.value)


def test_a_second_registration_of_the_same_key_makes_no_version(store):
    repo, uri, client, experiment = store
    register(client, experiment)
    assert [str(v.version) for v in client.search_model_versions("name='pcn-modulus'")] == ["1"]


def test_a_kill_before_registration_leaves_nothing_untagged(store, monkeypatch):
    """The version is created with its tags in one call: a kill before it leaves no version; a kill after it leaves
    a tagged one that the next run finds. Either way the next run ends with one version per key."""
    repo, uri, client, experiment = store
    real = client.create_model_version

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # SIGKILL just before the version is made

    monkeypatch.setattr(client, "create_model_version", killed)
    with pytest.raises(KeyboardInterrupt):
        register(client, experiment, key="2" * 64)
    assert registry.find_version(client, "modulus", "2" * 64) is None
    calls = []
    monkeypatch.setattr(client, "create_model_version", lambda *a, **k: calls.append(k) or real(*a, **k))
    register(client, experiment, key="2" * 64)
    register(client, experiment, key="2" * 64)
    assert len(calls) == 1 and calls[0]["tags"][registry.KEY_TAG] == "2" * 64 and "pcn.manifest" in calls[0]["tags"]
    versions = client.search_model_versions("name='pcn-modulus'")
    assert sorted(v.tags[registry.KEY_TAG] for v in versions) == ["2" * 64, "k" * 64]


def test_pcn_model_load_refuses_by_name_in_one_line(store, tampered):
    (tampered / "data" / "model.pth").write_bytes(b"x")
    done = subprocess.run(
        [sys.executable, "-m", "pcn.cli.main", "model", "load", "pcn-modulus@current", "--uri", store[1]],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=store[0],
    )
    assert done.returncode == 1
    assert (
        done.stderr.strip().splitlines()[-1].startswith("error: pcn-modulus@current (version 1): file data/model.pth")
    )
