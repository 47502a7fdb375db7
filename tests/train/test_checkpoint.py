"""Checkpoint files: atomic writes, plain data only (a planted pickle never runs), resume keys."""

import os
import pickle

import pytest
import torch

from pcn.files import atomic_write, write_json
from pcn.mappings import differences
from pcn.train import checkpoint
from pcn.train.checkpoint import CheckpointError, resume_key
from pcn.train.loop import TrainingState

from project import RunsCode


def test_planted_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "last.pt"
    torch.save({"model": RunsCode(marker)}, path)
    with pytest.raises(CheckpointError, match=f"{path} was refused: it is not a plain weights file"):
        checkpoint.load(path)
    assert not marker.exists()
    raw = tmp_path / "raw.pt"  # a bare pickle, not a torch zip
    raw.write_bytes(pickle.dumps(RunsCode(marker)))
    with pytest.raises(CheckpointError, match="raw.pt"):
        checkpoint.load(raw)
    assert not marker.exists()


def test_plain_training_checkpoint_roundtrip(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, fused=True)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    state = TrainingState(
        2,
        [{"epoch": 1, "test_acc": 0.5}, {"epoch": 2, "test_acc": 0.6}],
        {"acc": 0.6, "top5": 1.0, "epoch": 2},
        {k: v.clone() for k, v in model.state_dict().items()},
    )
    obj = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "state": state.as_dict(),
        "rng": [checkpoint.rng_state()],
        "resume_key": "abc",
        "resume_parts": {"code": {"a.py": "1"}},
    }
    checkpoint.save(tmp_path / "c.pt", obj)
    back = checkpoint.load(tmp_path / "c.pt")  # weights_only=True accepts all of it
    assert TrainingState.from_dict(back["state"]).history == state.history
    opt.load_state_dict(back["optimizer"])
    assert torch.equal(back["model"]["weight"], model.weight)


def test_unreadable_files_are_named(tmp_path):
    assert checkpoint.load(tmp_path / "none.pt") is None
    (tmp_path / "torn.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="torn.pt is unreadable"):
        checkpoint.load(tmp_path / "torn.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="holds a list, not a mapping"):
        checkpoint.load(tmp_path / "list.pt")


def test_atomic_write_keeps_previous_file_on_failure(tmp_path):
    path = tmp_path / "metrics.json"
    write_json(path, {"epoch": 1})

    def boom(f):
        f.write(b"half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        atomic_write(path, boom)
    assert path.read_text().strip().startswith("{") and '"epoch": 1' in path.read_text()
    assert os.listdir(tmp_path) == ["metrics.json"]  # no temporary file left behind


def test_resume_key_and_differences():
    parts = {
        "params": {"lr": 0.01, "epochs": 3},
        "code": {"pcn/nn/phase_collapse.py": "aa", "pcn/nn/layers.py": "bb"},
        "data": "d1",
        "filters": "f1",
    }
    changed = {**parts, "params": {"lr": 0.02, "epochs": 3}, "code": {**parts["code"], "pcn/nn/layers.py": "cc"}}
    assert resume_key(parts) == resume_key(dict(reversed(list(parts.items()))))  # order-independent
    assert resume_key(parts) != resume_key(changed)
    assert differences(parts, changed) == ["code: pcn/nn/layers.py", "params: lr"]
    assert differences(parts, {**parts, "data": "d2"}) == ["data"]


def test_rng_state_roundtrip():
    state = checkpoint.rng_state()
    a = torch.rand(3)
    checkpoint.set_rng_state(state)
    assert torch.equal(torch.rand(3), a)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_outputs_get_the_users_umask(tmp_path, umask):
    import subprocess
    import sys

    code = (
        f"import os; os.umask({umask}); from pcn.files import write_json; "
        f"write_json(__import__('pathlib').Path({str(tmp_path / 'm.json')!r}), {{'a': 1}})"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o666 & ~umask
