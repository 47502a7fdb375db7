"""The warm interpreter's server (started by :mod:`warm`, the client side): it imports torch, MLflow and
matplotlib once, then forks a child per request that takes the client's streams, arguments,
environment and process settings and runs the stage script. See stages/warm.py for the design.

This module uses the standard library only, and imports no repository code.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import struct
import sys
import threading
from pathlib import Path

PRELOAD_MODULES = (
    "numpy",
    "torch",
    "torch.nn.functional",
    "torch._dynamo",
    "torch.export",
    "mlflow",
    "mlflow.pytorch",
    "mlflow.models",
    "mlflow.tracking",
    "mlflow.system_metrics.system_metrics_monitor",
    "matplotlib",
    "matplotlib.pyplot",
    "ruamel.yaml",
    "tqdm",
    "psutil",
    "PIL.Image",
)
#: Environment variables read when those modules are imported: part of the server's identity.
IDLE_SECONDS = 60.0
CHILD_FLAG = "PCN_PRELOAD_CHILD"
#: Signals the client forwards to the child (unless the client ignores them: then the child does too).
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: Resource limits the child takes from the client.
RLIMITS = tuple(
    getattr(resource, name)
    for name in (
        "RLIMIT_AS",
        "RLIMIT_CORE",
        "RLIMIT_CPU",
        "RLIMIT_DATA",
        "RLIMIT_FSIZE",
        "RLIMIT_MEMLOCK",
        "RLIMIT_NOFILE",
        "RLIMIT_NPROC",
        "RLIMIT_STACK",
    )
    if hasattr(resource, name)
)


def _send(conn: socket.socket, obj: dict) -> None:
    data = json.dumps(obj).encode()
    conn.sendall(struct.pack("!I", len(data)) + data)


def _recv(conn: socket.socket) -> dict | None:
    header = _recv_exactly(conn, 4)
    if header is None:
        return None
    data = _recv_exactly(conn, struct.unpack("!I", header)[0])
    return None if data is None else json.loads(data)


def _recv_exactly(conn: socket.socket, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        chunk = conn.recv(n - got)
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


# ----------------------------------------------------------------------------- server


def _single_threaded() -> bool:
    try:
        return threading.active_count() == 1 and len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return threading.active_count() == 1


def serve(path: Path) -> None:
    """Import :data:`PRELOAD_MODULES`, then fork a child per request until idle for :data:`IDLE_SECONDS`."""
    import importlib
    import select

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MPLBACKEND", "Agg")
    # Libraries that would otherwise start threads at import: NumPy's OpenBLAS (pcn does no BLAS work
    # in NumPy) and pyarrow's jemalloc (imported by MLflow). With them, the server stays single-threaded.
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    os.environ["JE_ARROW_MALLOC_CONF"] = "background_thread:false"
    for name in PRELOAD_MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # optional: the child imports what it needs
            pass
    if not _single_threaded():
        path.with_suffix(".starting").unlink(missing_ok=True)
        return  # forking a multi-threaded process is unsafe: serve nothing
    base_path = list(sys.path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp))
    os.chmod(tmp, 0o600)
    listener.listen(16)
    os.replace(tmp, path)
    path.with_suffix(".starting").unlink(missing_ok=True)
    idle = float(os.environ.get("PCN_PRELOAD_IDLE_SECONDS", IDLE_SECONDS))
    children: set[int] = set()
    try:
        while True:
            ready, _, _ = select.select([listener], [], [], idle)
            _reap(children)
            if not ready:
                if children:  # a stage still runs: idle time counts from its end
                    continue
                break
            conn, _ = listener.accept()
            uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))[1]
            pid = os.fork() if uid == os.getuid() else -1
            if pid:
                conn.close()
                if pid > 0:
                    children.add(pid)
                continue
            listener.close()
            _run_child(conn, base_path)  # never returns
    finally:
        try:
            if path.exists() and os.stat(path).st_ino == os.fstat(listener.fileno()).st_ino:
                path.unlink()
        except OSError:
            pass


def _reap(children: set[int]) -> None:
    """Collect the stages that have ended (removing them from ``children``)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            children.clear()
            return
        if pid == 0:
            return
        children.discard(pid)


def _run_child(conn: socket.socket, base_path: list[str]) -> None:
    """In the forked child: become the client's stage process, run the script, report the status."""
    import runpy
    import traceback

    os.setsid()
    header, fds, _, _ = socket.recv_fds(conn, 4, 3)
    request = json.loads(_recv_exactly(conn, struct.unpack("!I", header)[0]))
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    sys.stdin = open(0, closefd=False)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"], **{CHILD_FLAG: "1"})
    sys.argv = request["argv"]
    sys.path[:] = [os.path.dirname(request["script"])] + base_path
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        take_state(request["state"])
    except (OSError, ValueError) as exc:  # e.g. a nice level below the server's: the client runs the stage
        _send(conn, {"refused": f"{type(exc).__name__}: {exc}"})
        os._exit(0)
    _send(conn, {"pid": os.getpid()})
    threading.Thread(target=_watch_client, args=(conn,), daemon=True).start()
    code = 1
    try:
        runpy.run_path(request["script"], run_name="__main__")
        code = 0
    except SystemExit as exc:
        if exc.code is None:
            code = 0
        elif isinstance(exc.code, int):
            code = exc.code
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:  # what an uncaught exception would print
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
    try:
        _send(conn, {"exit": code})
    except OSError:
        pass
    os._exit(code)


def take_state(state: dict) -> None:
    """Take the client's :func:`process_state` (raises if one cannot be taken, e.g. a lower nice level)."""
    os.umask(state["umask"])
    if os.getpriority(os.PRIO_PROCESS, 0) != state["nice"]:
        os.setpriority(os.PRIO_PROCESS, 0, state["nice"])
    os.sched_setaffinity(0, state["affinity"])
    for r, limits in state["rlimits"].items():
        if list(resource.getrlimit(int(r))) != limits:
            resource.setrlimit(int(r), tuple(limits))
    for signum in state["ignored"]:
        signal.signal(signum, signal.SIG_IGN)


def _stopped(pid: int) -> bool:
    """Whether process ``pid`` is stopped (state T in /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("T", "t")
    except (OSError, IndexError):
        return False


def _watch_client(conn: socket.socket) -> None:
    """End the stage (as SIGTERM does) if the client disappears; stop it while the client is stopped (the
    client's SIGCONT continues it)."""
    import select

    client = int(os.environ.get("PCN_CLIENT_PID") or 0)
    try:
        while True:
            ready, _, _ = select.select([conn], [], [], 0.2)
            if ready and not conn.recv(1):
                break
            if not ready and client and _stopped(client):
                os.kill(os.getpid(), signal.SIGSTOP)
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGTERM)


if __name__ == "__main__":
    # run as a script, this file's folder (stages/) leads sys.path: drop it, so that no stage helper can
    # shadow a module of the standard library or of the libraries the server imports
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        serve(Path(sys.argv[2]))
