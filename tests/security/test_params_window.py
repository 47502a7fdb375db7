"""The params window is closed (issue 32): no value is credited in dvc.lock that a result was not computed with."""

import json

import pytest
import yaml

import stage_inputs
from conftest import tiny_params
from project import dvc, env, make_project, read_json


def test_a_value_credited_but_not_read_is_named(tmp_path, monkeypatch):
    lock = {
        "schema": "2.0",
        "stages": {
            "train@m-0": {
                "cmd": "python stages/train.py",
                "params": {"params.yaml": {"train": {"lr": 0.05, "epochs": 1}, "data.augment": True}},
                "outs": [{"path": "results/train/m-0", "md5": "x.dir"}],
            }
        },
    }
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    out = tmp_path / "results" / "train" / "m-0"
    out.mkdir(parents=True)
    (out / "params_read.json").write_text(json.dumps({"train": {"lr": 0.01, "epochs": 1}, "data": {"augment": True}}))
    [problem] = stage_inputs.lock_problems(tmp_path)
    assert problem.startswith(
        "train@m-0: dvc.lock credits train.lr = 0.05 but results/train/m-0 was computed with 0.01"
    )
    assert problem.endswith("dvc repro -f -s train@m-0")
    assert stage_inputs.lock_problems(tmp_path, skip="train@m-0") == []  # the stage that recomputes it may run
    monkeypatch.setattr(stage_inputs, "ROOT", tmp_path)
    monkeypatch.setenv("DVC_STAGE", "evaluate@m-0")
    with pytest.raises(SystemExit, match="error: train@m-0: dvc.lock credits train.lr"):
        stage_inputs.load_params()


#: Edits params.yaml when a train stage's process exits: after its last check, before DVC reads params.yaml.
HOOK = """
import atexit, os, re
def edit():
    if os.environ.get("DVC_STAGE", "").startswith("train@"):
        text = open("params.yaml").read()
        open("params.yaml", "w").write(re.sub(r"(?m)^  lr: .*$", "  lr: 0.05", text, count=1))
atexit.register(edit)
"""


@pytest.mark.slow
def test_an_edit_after_the_stage_and_before_the_lock_fails_the_next_stage(tmp_path, default_params):
    params = tiny_params(default_params, variants=("modulus",))
    params["train"]["lr"] = 0.01
    repo = make_project(tmp_path / "repo", params)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HOOK)
    done = dvc("repro", cwd=repo, check=False, environ=env(PYTHONPATH=str(hook), PCN_TRACKING="off"))
    assert done.returncode != 0
    assert read_json(repo / "results/train/modulus-0/params_read.json")["train"]["lr"] == 0.01
    assert "train@modulus-0: dvc.lock credits train.lr = 0.05 but results/train/modulus-0 was computed with 0.01" in (
        done.stderr
    )
    assert "dvc repro -f -s train@modulus-0" in done.stderr
