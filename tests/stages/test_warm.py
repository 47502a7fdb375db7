"""The warm interpreter (stages/warm.py): same results as a plain run, signals forwarded, no stale code."""

import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, tiny_params
from project import dvc, env, make_project, read_json, stage

pytestmark = pytest.mark.slow


def wait_for_server(environ: dict, timeout: float = 90) -> None:
    """Until the warm interpreter of this environment listens (it imports torch, MLflow... first)."""
    probe = (
        "import sys; sys.path.insert(0, 'stages'); from process import stage_environment; "
        "stage_environment(); from warm import server_key; print(server_key())"
    )  # as prepare_stage does
    key = subprocess.run(
        [sys.executable, "-c", probe], env=environ, cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    socket_path = f"{os.environ.get('XDG_RUNTIME_DIR') or '/tmp'}/pcn-preload-{os.getuid()}/{key}.sock"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(socket_path):
            return
        time.sleep(0.5)
    raise AssertionError(f"no warm interpreter started ({socket_path})")


def test_delegated_stages_give_the_same_results(tmp_path, default_params):
    params = tiny_params(default_params, variants=("modulus",), epochs=2)
    plain = make_project(tmp_path / "plain", params)
    warm = make_project(tmp_path / "warm", params)
    quiet = env(PCN_PRELOAD="0")
    dvc("repro", cwd=plain, environ=quiet)
    e = env(PCN_PRELOAD_IDLE_SECONDS="30")
    stage("validate", warm, environ=e)  # starts the server
    wait_for_server(e)
    out = dvc("repro", cwd=warm, environ=e)
    assert out.returncode == 0
    for name in ("results/train/modulus-0/history.csv", "results/evaluate/modulus-0/separation.csv"):
        a, b = (plain / name).read_text(), (warm / name).read_text()
        strip = [",".join(line.split(",")[:7]) for line in a.splitlines()]  # drop the timing columns
        assert strip == [",".join(line.split(",")[:7]) for line in b.splitlines()], name
    assert read_json(plain / "results/report/summary.json") == read_json(warm / "results/report/summary.json")


def test_code_edits_are_seen_and_signals_forwarded(tmp_path, default_params):
    """The server never holds repository code: an edited stage runs as edited; Ctrl-C reaches the stage."""
    repo = make_project(tmp_path / "repo", tiny_params(default_params))
    e = env(PCN_PRELOAD_IDLE_SECONDS="30")
    stage("validate", repo, environ=e)
    wait_for_server(e)
    script = repo / "stages" / "validate.py"
    script.write_text(script.read_text().replace('print(f"validate: params.yaml is valid', 'print(f"EDITED'))
    again = stage("validate", repo, environ=e)
    assert "EDITED" in again.stdout
    sleeper = repo / "stages" / "sleeper.py"
    sleeper.write_text(
        "from process import prepare_stage\nprepare_stage(__file__)\n"
        "import os\nimport time\nprint('child', os.environ.get('PCN_PRELOAD_CHILD'),"
        " flush=True)\ntry:\n    time.sleep(60)\nexcept KeyboardInterrupt:\n"
        "    print('interrupted', flush=True)\n    raise SystemExit(7)\n"
    )
    e2 = dict(e, DVC_ROOT=str(repo))
    proc = subprocess.Popen([sys.executable, "stages/sleeper.py"], cwd=repo, env=e2, stdout=subprocess.PIPE, text=True)
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 7 and "interrupted" in out and "child 1" in out  # ran in the warm interpreter
