"""A warm interpreter for the stage scripts: torch, MLflow and matplotlib imported once, then forked per stage.

A DVC pipeline of many short stages (one per variant and seed) would otherwise spend
several seconds per stage importing the same libraries. The first stage script of a
pipeline starts a small server in the background, which imports them and waits on a Unix
socket; each later stage script (the "client") asks it to fork, and the forked child runs
the stage exactly as ``python stages/<stage>.py ...`` would, with the client's arguments,
working directory, environment and standard streams (passed as file descriptors). The
client forwards Ctrl-C / SIGTERM to the child and exits with the child's status; if the
client dies, the child is terminated (SIGTERM, which the stages record as KILLED).

What makes this safe: the server never imports pcn or any repository code (the child
imports them fresh, so code edits are always seen); it forks only while it has a single
thread and has not used OpenMP or CUDA; its identity includes the Python executable, the
installed torch and MLflow, and the environment variables that these read at import
(threading, CUDA, allocator), so a different setting gets a different server; the socket
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
IDLE_SECONDS = 60.0
CHILD_FLAG = "PCN_PRELOAD_CHILD"


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
        "server": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:20]


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
            [sys.executable, os.path.abspath(__file__), "serve", str(path)],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=True,
            cwd="/",
        )
    except OSError:
        marker.unlink(missing_ok=True)  # no server: every stage imports for itself


def _run_remote(conn: socket.socket, script: str) -> int | None:
    """The stage's exit status, or None if the server did not start it (the caller then runs it itself)."""
    env = dict(os.environ, PCN_CLIENT_PID=str(os.getpid()))
    request = {"script": os.path.abspath(script), "argv": sys.argv, "cwd": os.getcwd(), "env": env}
    data = json.dumps(request).encode()
    try:
        socket.send_fds(conn, [struct.pack("!I", len(data)) + data], [0, 1, 2])
        started = _recv(conn)
    except OSError:
        started = None
    if not started:
        return None
    child = started["pid"]

    def forward(signum, frame):
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, forward)
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


def _watch_client(conn: socket.socket) -> None:
    """End the stage (as SIGTERM does) if the client disappears."""
    try:
        while conn.recv(1):
            pass
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
