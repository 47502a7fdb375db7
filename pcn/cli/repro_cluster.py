"""The Dask side of ``pcn repro``: the cluster, each worker's share of the machine, and the task that runs a stage.

A task runs ``dvc --wait-for-lock repro --single-item <stage>`` as a subprocess (an argument list, no shell):
DVC keeps writing ``dvc.lock``, the run cache and the outputs. The subprocess is killed if its worker dies
(``PR_SET_PDEATHSIG``), so that Dask's rescheduling never leaves two copies of one stage running.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

#: Dask topic on which tasks announce where they run (``pcn repro`` prints it).
TOPIC = "pcn-repro"
#: Lines of a failed stage's log shown by ``pcn repro``.
LOG_TAIL = 15


class StageFailed(RuntimeError):
    """A stage's DVC command exited non-zero; the message is its name, status and log tail."""


@dataclass
class StageResult:
    name: str
    worker: str
    seconds: float


def gpu_count() -> int:
    """GPUs this process may use: ``CUDA_VISIBLE_DEVICES`` when set, else what NVML counts (0 without a driver)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return pynvml.nvmlDeviceGetCount()
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no driver, no library: a CPU machine
        return 0


def slot_environments(workers: int | None, cores: int | None = None) -> list[dict[str, str]]:
    """The environment of each local worker's stages: one worker per GPU, each seeing only its GPU, or on CPU
    ``workers`` workers with the cores split between them (OpenMP and torch threads)."""
    gpus = gpu_count()
    if gpus and workers is None:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        ids = [d.strip() for d in visible.split(",")] if visible else [str(i) for i in range(gpus)]
        return [{"CUDA_VISIBLE_DEVICES": i} for i in ids[:gpus]]
    count = workers or 1
    threads = str(max(1, (cores or os.cpu_count() or 1) // count))
    return [{"OMP_NUM_THREADS": threads} for _ in range(count)]  # torch gives MKL as many


def die_with_parent() -> None:
    """In the child, before exec: receive SIGTERM when the worker that started it dies (Linux only)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except OSError:
        pass


def stage_command(name: str) -> list[str]:
    return [sys.executable, "-m", "dvc", "--wait-for-lock", "repro", "--single-item", name]


def log_tail(path: Path, lines: int = LOG_TAIL) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def run_stage(name: str, root: str, environment: dict[str, str], slots: dict[str, dict[str, str]]) -> StageResult:
    """Dask task: run stage ``name`` in project ``root`` with DVC, logging to ``.dvc/tmp/pcn-repro/<name>.log``.

    ``environment`` is added to the worker's own; ``slots`` maps a local worker's name to its share of the
    machine (GPU or threads). Raises :class:`StageFailed` (with the log tail) when DVC exits non-zero.
    """
    from distributed import get_worker

    worker = get_worker()
    env = {**os.environ, **environment, **slots.get(str(worker.name), {})}
    env["PCN_DASK_WORKER"] = worker.address
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # `python` in dvc.yaml
    log = Path(root) / ".dvc" / "tmp" / "pcn-repro" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        worker.log_event(TOPIC, {"stage": name, "worker": worker.address})
    except Exception:  # announcing is a courtesy
        pass
    start = time.monotonic()
    with open(log, "wb") as out:
        process = subprocess.Popen(
            stage_command(name), cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent
        )
        try:
            code = process.wait()
        except BaseException:
            process.terminate()
            process.wait()
            raise
    if code != 0:
        raise StageFailed(f"stage {name} failed (exit {code}; log {log}):\n{log_tail(log)}")
    return StageResult(name, worker.address, time.monotonic() - start)


def start_cluster(scheduler: str | None, slots: int):
    """A Dask client: of the running scheduler at ``scheduler``, or of a new local cluster of ``slots`` worker
    processes with one thread each. Returns ``(client, cluster or None)``."""
    from distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler, timeout="20s"), None
    cluster = LocalCluster(
        n_workers=slots,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0" if dashboard_available() else None,
        silence_logs=40,  # errors only: a person reads pcn repro's own lines
    )
    return Client(cluster), cluster


def dashboard_available() -> bool:
    try:
        import bokeh  # noqa: F401
    except ImportError:
        return False
    return True
