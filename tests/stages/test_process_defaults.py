"""Stage processes (stages/process_defaults.py): the OpenMP waiting policy reaches the stages before torch loads, and a
user's own wins."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
from process_defaults import STAGE_ENVIRONMENT, stage_environment  # noqa: E402

# Records OMP_WAIT_POLICY at the moment torch is first imported (when OpenMP reads it).
PROBE = """
import os, sys
class Watch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and "seen" not in globals():
            globals()["seen"] = os.environ.get("OMP_WAIT_POLICY", "unset")
sys.meta_path.insert(0, Watch())
sys.path.insert(0, ".")
sys.path.insert(0, 'stages')
from process_defaults import set_process_defaults
set_process_defaults()
import torch
print(seen)
"""


def test_stage_environment_fills_only_what_is_unset():
    assert STAGE_ENVIRONMENT["OMP_WAIT_POLICY"] == "PASSIVE"
    assert stage_environment({})["OMP_WAIT_POLICY"] == "PASSIVE"
    assert stage_environment({"OMP_WAIT_POLICY": "ACTIVE"})["OMP_WAIT_POLICY"] == "ACTIVE"


def test_importing_the_stage_helpers_changes_nothing_in_the_process():
    """Only set_process_defaults, called explicitly, touches the environment and sys.path."""
    probe = (
        "import os, sys; sys.path.insert(0, 'stages'); env = dict(os.environ); path = list(sys.path); "
        "import stage_inputs, mlflow_run, workspace, process_defaults; "
        "assert dict(os.environ) == env, set(os.environ.items()) ^ set(env.items()); "
        "assert sys.path == path; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


def policy_seen_by_torch(**extra) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env.update(**extra)
    return subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_stage_processes_get_the_policy_before_torch_is_imported():
    assert policy_seen_by_torch() == "PASSIVE"
    assert policy_seen_by_torch(OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"
