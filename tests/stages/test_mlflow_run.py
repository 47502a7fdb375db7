"""stages/mlflow_run.py: which pipeline executions are still alive (their parent runs stay open)."""

import os
import subprocess
import sys

import psutil

from conftest import ROOT

sys.path.insert(0, str(ROOT / "stages"))
from mlflow_run import pipeline_alive  # noqa: E402


def test_an_execution_is_alive_while_its_dvc_process_runs():
    me = psutil.Process(os.getpid())
    assert pipeline_alive(f"my:exp:{me.pid}:{me.create_time():.3f}")  # ':' in the experiment name
    assert not pipeline_alive(f":{me.pid}:{me.create_time() - 100:.3f}")  # the pid was reused
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    assert not pipeline_alive(f":{int(ended.stdout)}:1.000")
    assert pipeline_alive("set-by-PCN_PIPELINE_ID")  # another form: never closed by others
