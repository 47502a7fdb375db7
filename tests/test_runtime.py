"""Process settings: the OpenMP waiting policy reaches the stages before torch loads, and a user's own wins."""
import os
import subprocess
import sys
from pathlib import Path

from pcn.runtime import THREAD_ENVIRONMENT, thread_environment

ROOT = Path(__file__).resolve().parents[1]
# Records OMP_WAIT_POLICY at the moment torch is first imported (when OpenMP reads it).
PROBE = """
import os, sys
class Watch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and "seen" not in globals():
            globals()["seen"] = os.environ.get("OMP_WAIT_POLICY", "unset")
sys.meta_path.insert(0, Watch())
sys.path.insert(0, ".")
import stages.common
import torch
print(seen)
"""


def test_thread_environment_fills_only_what_is_unset():
    assert THREAD_ENVIRONMENT == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert thread_environment({})["OMP_WAIT_POLICY"] == "PASSIVE"
    assert thread_environment({"OMP_WAIT_POLICY": "ACTIVE"})["OMP_WAIT_POLICY"] == "ACTIVE"


def policy_seen_by_torch(**extra) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env.update(PCN_PRELOAD="0", **extra)
    return subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_stage_processes_get_the_policy_before_torch_is_imported():
    assert policy_seen_by_torch() == "PASSIVE"
    assert policy_seen_by_torch(OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"
