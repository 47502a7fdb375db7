"""The warm interpreter (stages/warm.py): same results as a plain run, signals forwarded, no stale code."""

import json
import os
import resource
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
    script.write_text(script.read_text().replace('f"validate: params.yaml is valid', 'f"EDITED'))
    assert "EDITED" in script.read_text()
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


PROBE = """from process import prepare_stage
prepare_stage(__file__)
import json, os, resource, signal, sys, time
mask = os.umask(0)
os.umask(mask)
print(json.dumps({"child": os.environ.get("PCN_PRELOAD_CHILD"), "pid": os.getpid(), "umask": mask,
                  "nice": os.getpriority(os.PRIO_PROCESS, 0), "affinity": sorted(os.sched_getaffinity(0)),
                  "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
                  "hup_ignored": signal.getsignal(signal.SIGHUP) == signal.SIG_IGN}), flush=True)
time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 0)
"""


def careful_caller(nice: int = 0):
    """What `nice -n N sh -c 'umask 027; ulimit -n 300; nohup ...'` does to the stage's caller."""

    def apply():
        os.umask(0o027)
        os.nice(nice)
        resource.setrlimit(resource.RLIMIT_NOFILE, (300, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    return apply


def probe(repo, environ, preexec=None, *args):
    out = subprocess.run(
        [sys.executable, "stages/probe.py", *args],
        cwd=repo,
        env=dict(environ, DVC_ROOT=str(repo)),
        preexec_fn=preexec,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.splitlines()[0])


def eventually(condition, timeout: float = 15.0) -> bool:
    """Whether ``condition()`` becomes true within ``timeout`` seconds (a loaded machine schedules late)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def catches(pid: int, signum: int) -> bool:
    """Whether process ``pid`` has a handler for ``signum`` (SigCgt in /proc/<pid>/status)."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


def state_of(pid: int) -> str:
    return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]


def ended(pid: int) -> bool:
    """Whether process ``pid`` has exited (gone, or a zombie not yet collected)."""
    try:
        return state_of(pid) == "Z"
    except OSError:
        return True


def test_a_delegated_stage_is_the_callers_process(tmp_path, default_params):
    """umask, nice, resource limits, ignored SIGHUP as the caller has them (as a plain process would); a nice
    level below the server's cannot be taken: the stage then runs in the caller's own process."""
    repo = make_project(tmp_path / "repo", tiny_params(default_params))
    (repo / "stages" / "probe.py").write_text(PROBE)
    e = env(PCN_PRELOAD_IDLE_SECONDS="30", PYTHONPCN_TEST_SERVER=str(tmp_path))  # a server of its own
    probe(repo, e)  # starts the server
    wait_for_server(e)
    warm_run = probe(repo, e, careful_caller())
    plain_run = probe(repo, dict(e, PCN_PRELOAD="0"), careful_caller())
    assert warm_run.pop("child") == "1" and plain_run.pop("child") is None
    warm_run.pop("pid"), plain_run.pop("pid")
    assert warm_run == plain_run
    assert warm_run["umask"] == 0o027 and warm_run["nofile"] == 300 and warm_run["hup_ignored"]
    # a server started at nice 2 cannot give a stage nice 0
    e2 = dict(e, PYTHONPCN_TEST_SERVER=str(tmp_path / "niced"))
    probe(repo, e2, careful_caller(nice=2))
    wait_for_server(e2)
    assert probe(repo, e2, careful_caller(nice=2))["child"] == "1"
    refused = probe(repo, e2, careful_caller())
    assert refused["nice"] == plain_run["nice"]
    assert refused["child"] == ("1" if os.geteuid() == 0 else None)  # root may lower its nice level


def test_hangup_stop_and_continue_reach_the_delegated_stage(tmp_path, default_params):
    repo = make_project(tmp_path / "repo", tiny_params(default_params))
    (repo / "stages" / "probe.py").write_text(PROBE)
    e = env(PCN_PRELOAD_IDLE_SECONDS="30", PYTHONPCN_TEST_SERVER=str(tmp_path), DVC_ROOT=str(repo))
    probe(repo, e)
    wait_for_server(e)
    client = subprocess.Popen(
        [sys.executable, "stages/probe.py", "30"],
        cwd=repo,
        env=e,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=careful_caller(),
    )
    child = json.loads(client.stdout.readline())
    assert child["child"] == "1"
    pid = child["pid"]
    try:
        assert eventually(lambda: catches(client.pid, signal.SIGTSTP))  # the client's handlers are in place
        client.send_signal(signal.SIGHUP)  # ignored by the caller (nohup): the stage goes on
        time.sleep(1)
        assert client.poll() is None and state_of(pid) in "SR"
        client.send_signal(signal.SIGTSTP)  # Ctrl-Z
        assert eventually(lambda: state_of(client.pid) == "T" and state_of(pid) == "T")
        client.send_signal(signal.SIGCONT)
        assert eventually(lambda: state_of(client.pid) in "SR" and state_of(pid) in "SR")
        client.send_signal(signal.SIGSTOP)  # cannot be caught: the stage sees the caller stopped
        assert eventually(lambda: state_of(pid) == "T")
        client.send_signal(signal.SIGCONT)
        assert eventually(lambda: state_of(pid) in "SR")
    finally:
        client.send_signal(signal.SIGINT)
        client.communicate(timeout=30)
    assert client.returncode != 0
    # the child reports its status just before it exits: it ends soon after the client
    assert eventually(lambda: ended(pid))
