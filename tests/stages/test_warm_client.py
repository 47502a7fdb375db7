"""The warm interpreter's process settings and stale sockets (stages/warm.py, stages/warm_server.py), without a
server: the end-to-end cases are in test_warm.py."""

import json
import os
import resource
import signal
import socket
import subprocess
import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "stages"))
import warm  # noqa: E402
import warm_server  # noqa: E402


def test_stale_sockets_and_half_bound_ones_are_removed_live_ones_kept(tmp_path):
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(tmp_path / "dead.sock"))
    stale.close()  # the file stays, nobody listens: a server killed without cleaning up
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(str(tmp_path / "live.sock"))
    live.listen(1)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / f".dead.sock.{int(dead.stdout)}").write_text("")  # its server died while starting
    (tmp_path / f".live.sock.{os.getpid()}").write_text("")  # a server starting right now
    (tmp_path / "other.txt").write_text("")
    try:
        removed = warm.remove_stale(tmp_path)
    finally:
        live.close()
    assert sorted(removed) == sorted(["dead.sock", f".dead.sock.{int(dead.stdout)}"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["live.sock", f".live.sock.{os.getpid()}", "other.txt"])


def in_child(fn) -> int:
    """Run ``fn`` in a forked process; its exit status (``fn``'s return value, 99 on an exception)."""
    pid = os.fork()
    if pid == 0:
        try:
            os._exit(fn())
        except BaseException:
            os._exit(99)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_the_child_takes_every_setting_of_the_client():
    def client_side():
        os.umask(0o027)
        os.nice(2)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 300), hard))
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        return warm.process_state()

    read, write = os.pipe()
    if os.fork() == 0:
        os.write(write, json.dumps(client_side()).encode())
        os._exit(0)
    os.wait()
    state = json.loads(os.read(read, 65536))  # as the request carries it
    assert state["umask"] == 0o027 and state["ignored"] == [int(signal.SIGHUP)]
    assert state["nice"] == os.getpriority(os.PRIO_PROCESS, 0) + 2

    def server_child():
        warm_server.take_state(state)
        assert warm.process_state() == state
        return 0

    assert in_child(server_child) == 0


def test_a_setting_the_child_cannot_take_is_refused():
    if os.geteuid() == 0:
        return  # root may lower its nice level: nothing to refuse
    lower = dict(warm.process_state(), nice=os.getpriority(os.PRIO_PROCESS, 0))

    def niced_server_child():
        os.nice(3)  # the server runs at a higher nice level than the client
        try:
            warm_server.take_state(lower)
        except PermissionError:
            return 5
        return 0

    assert in_child(niced_server_child) == 5
