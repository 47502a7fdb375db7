"""A warm interpreter for the stage scripts: torch, MLflow and matplotlib imported once, then forked per stage.

A DVC pipeline of many short stages (one per variant and seed) would otherwise spend
several seconds per stage importing the same libraries. The first stage script of a
pipeline starts a small server in the background, which imports them and waits on a Unix
socket; each later stage script (the "client") asks it to fork, and the forked child runs
the stage exactly as ``python stages/<stage>.py ...`` would, with the client's arguments,
working directory, environment and standard streams (passed as file descriptors), and the
client's process settings: umask, nice level, resource limits, CPU affinity and ignored
signals (a setting the child cannot take, such as a nice level below the server's, makes the
client run the stage itself). The client forwards Ctrl-C, SIGTERM and SIGHUP to the child
(a signal the client ignores, as under ``nohup``, the child ignores too), stops and continues
it with the client (Ctrl-Z, SIGSTOP, SIGCONT), and exits with the child's status; if the client
dies, the child is terminated (SIGTERM, which the stages record as KILLED). Sockets of servers
that died without removing them are removed by the next client that starts a server.

What makes this safe: the server never imports pcn or any repository code (the child
imports them fresh, so code edits are always seen); it forks only while it has a single
thread and has not used OpenMP or CUDA; its identity includes the Python executable, the
installed torch and MLflow, the environment variables that these read at import
(threading, CUDA, allocator) and the CPU affinity (OpenMP sizes its thread pool from it when
torch loads), so a different setting gets a different server; the socket
lives in a directory only the user can enter, and the server checks the peer's user id.
``PCN_PRELOAD=0`` turns it off. The server exits after :data:`IDLE_SECONDS` without requests
(``PCN_PRELOAD_IDLE_SECONDS`` changes that).

This module uses the standard library only (the client runs it before any heavy import).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import resource
import signal
import socket
import struct
import sys
from pathlib import Path

from warm_server import CHILD_FLAG, FORWARDED, IDLE_SECONDS, RLIMITS, _recv

ENV_PREFIXES = (
    "OMP_",
    "MKL_",
    "KMP_",
    "GOMP_",
    "OPENBLAS_",
    "CUDA_",
    "NCCL_",
    "PYTORCH_",
    "TORCH",
    "LD_",
    "MALLOC_",
    "PYTHON",
    "MLFLOW_",
    "MPLBACKEND",
)


def _runtime_dir() -> Path | None:
    """A directory only this user can enter (None if it cannot be made so)."""
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or "/tmp")
    path = base / f"pcn-preload-{os.getuid()}"
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        st = path.lstat()
    except OSError:
        return None
    if not path.is_dir() or path.is_symlink() or st.st_uid != os.getuid() or st.st_mode & 0o077:
        return None
    return path


def server_key() -> str:
    """Identity of the interpreter a stage would get: executable, installed libraries, import-time environment."""
    libraries = {}
    for name in ("torch", "mlflow", "numpy", "matplotlib"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            st = os.stat(spec.origin)
            libraries[name] = [spec.origin, st.st_mtime_ns, st.st_size]
    env = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES) and k != CHILD_FLAG}
    ident = {
        "executable": sys.executable,
        "version": sys.version,
        "prefix": sys.prefix,
        "libraries": libraries,
        "env": env,
        "affinity": sorted(os.sched_getaffinity(0)),
        "server": hashlib.sha256(Path(__file__).with_name("warm_server.py").read_bytes()).hexdigest(),
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:20]


# ----------------------------------------------------------------------------- client


def delegate(script: str) -> None:
    """Run the stage ``script`` in the warm interpreter and exit with its status, if one is available.

    Returns (and the caller runs the stage itself) when preloading is off, when this is
    already a forked child or a torchrun worker, or when no server answers, in which case one
    is started in the background for the next stages.
    """
    if os.environ.get("PCN_PRELOAD", "1") == "0" or os.environ.get(CHILD_FLAG) or "RANK" in os.environ:
        return
    directory = _runtime_dir()
    if directory is None:
        return
    path = directory / f"{server_key()}.sock"
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(path))
    except OSError:
        conn.close()
        _start_server(path)
        return
    code = _run_remote(conn, script)
    if code is not None:
        sys.exit(code)


def _start_server(path: Path) -> None:
    """Start a server for ``path`` unless one is already starting (its marker names a live process)."""
    import subprocess
    import time

    remove_stale(path.parent)
    marker = path.with_suffix(".starting")
    try:
        if time.time() - marker.stat().st_mtime < IDLE_SECONDS:
            return
        marker.unlink()  # a stale marker: its server never came up
    except FileNotFoundError:
        pass
    except OSError:
        return
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError:
        return  # another stage is starting it right now
    os.close(fd)
    try:
        subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("warm_server.py").resolve()), "serve", str(path)],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            cwd="/",
        )
    except OSError:
        marker.unlink(missing_ok=True)  # no server: every stage imports for itself


def remove_stale(directory: Path) -> list[str]:
    """Remove the sockets of servers that are gone (connecting is refused) and the half-bound sockets of
    servers that died while starting; returns the names removed."""
    removed = []
    for path in directory.iterdir():
        name = path.name
        if name.endswith(".sock"):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(str(path))
                continue  # a live server
            except ConnectionRefusedError:
                pass
            except OSError:
                continue
            finally:
                probe.close()
        elif name.startswith(".") and ".sock." in name and name.rsplit(".", 1)[1].isdigit():
            if _alive(int(name.rsplit(".", 1)[1])):
                continue
        else:
            continue
        path.unlink(missing_ok=True)
        removed.append(name)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_state() -> dict:
    """This process's settings that a plain stage process would have and the forked child must take."""
    mask = os.umask(0)
    os.umask(mask)
    return {
        "umask": mask,
        "nice": os.getpriority(os.PRIO_PROCESS, 0),
        "affinity": sorted(os.sched_getaffinity(0)),
        "rlimits": {str(r): list(resource.getrlimit(r)) for r in RLIMITS},
        "ignored": [int(s) for s in FORWARDED if signal.getsignal(s) == signal.SIG_IGN],
    }


def _run_remote(conn: socket.socket, script: str) -> int | None:
    """The stage's exit status, or None if the server did not start it (the caller then runs it itself)."""
    env = dict(os.environ, PCN_CLIENT_PID=str(os.getpid()))
    state = process_state()
    request = {"script": os.path.abspath(script), "argv": sys.argv, "cwd": os.getcwd(), "env": env, "state": state}
    data = json.dumps(request).encode()
    try:
        socket.send_fds(conn, [struct.pack("!I", len(data)) + data], [0, 1, 2])
        started = _recv(conn)
    except OSError:
        started = None
    if not started or "pid" not in started:
        return None  # the server could not start it, or the child could not take this process's settings
    child = started["pid"]

    def forward(signum, frame):
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass

    def stop(signum, frame):  # Ctrl-Z: stop the child, then this process as the default action would
        forward(signal.SIGSTOP, frame)
        os.kill(os.getpid(), signal.SIGSTOP)  # returns once continued (SIGTSTP's default action would be
        # discarded in an orphaned process group, leaving the stage stopped and its caller running)

    for signum in FORWARDED:
        if signum not in state["ignored"]:
            signal.signal(signum, forward)
    signal.signal(signal.SIGTSTP, stop)
    signal.signal(signal.SIGCONT, forward)  # continued (after Ctrl-Z or SIGSTOP): so is the child
    while True:
        try:
            reply = _recv(conn)
            break
        except InterruptedError:
            continue
    if reply is None:
        print("error: the stage's process ended without an exit status", file=sys.stderr)
        return 1
    return int(reply["exit"])
