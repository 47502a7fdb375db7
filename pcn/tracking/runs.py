"""MLflow helpers that take every location explicitly (no global MLflow state is read here).

* The default store is an **absolute** ``sqlite:///<repo>/mlflow.db``: relative paths
  break in ``dvc exp run --queue`` temporary copies.
* The store is checked and its experiment created by :mod:`pcn.tracking.store`.
* :class:`StageRun` is one stage's run: opened before the work, nested under the pipeline
  execution's parent run (:func:`pipeline_parent`), closed FINISHED, FAILED or KILLED.
  Logging during the work goes through :meth:`StageRun.log_metrics`, which never waits long
  for a dead server: after brief retries, entries go to a journal file that
  ``pcn resync <journal>`` replays later.
"""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from pcn.tracking.journal import append, apply_entry, replay
from pcn.tracking.store import TrackingError, check_tracking_uri, exclusive_lock

#: How long logging stays offline (entries journaled without trying) after a failed call.
RETRY_AFTER_SECONDS = 30.0


def readable(value: float) -> float:
    """``value`` at 12 significant digits, as MLflow shows it: an error of 100 (1 - 0.901) is logged as 9.9, not
    9.899999999999999 (the binary noise of the subtraction), and no digit a measurement carries is lost."""
    return float(f"{float(value):.12g}")


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM (treated like Ctrl-C: runs are marked KILLED)."""


def git_commit(repo_root: Path) -> str:
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=repo_root, capture_output=True, text=True, timeout=10
            ).stdout.strip()
            or "unknown"
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name (the first ``model name`` of ``/proc/cpuinfo``; ``platform.processor()`` elsewhere)."""
    import platform

    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def host_tags() -> dict[str, str]:
    """What a run's floats depend on beyond its inputs: the CPU model, the instruction set ATen's kernels use
    (``torch.backends.cpu.get_cpu_capability()``: ``AVX512``, ``AVX2``, ...), the torch build and whether it has
    MKL, and the GPU's name when there is one. The same inputs on another CPU model can train to other bytes
    (docs/reliability.md)."""
    import torch

    tags = {
        "host.cpu": cpu_model(),
        "host.cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch.version": torch.__version__,
        "torch.mkl": str(torch.backends.mkl.is_available()).lower(),
    }
    if torch.cuda.is_available():
        tags["host.cuda_device"] = torch.cuda.get_device_name()
    return tags


# ----------------------------------------------------------------------------- runs


def pipeline_parent(
    client,
    experiment_id: str,
    pipeline_id: str,
    name: str,
    tags: dict[str, str],
    lock: Path,
    alive: Callable[[str], bool] | None = None,
) -> str:
    """The run id of the parent run of pipeline execution ``pipeline_id`` (created on first use).

    Every stage of one ``dvc repro`` / ``dvc exp run`` shares ``pipeline_id``; the parent is
    set RUNNING while a stage works and back to the stage's outcome when it ends, so its
    duration spans the execution. The run is found by a digest of the id (``pcn.pipeline_key``),
    so that no character of an experiment's name reaches MLflow's filter syntax. Before a new
    parent is created, parents left RUNNING by executions that ``alive`` says are gone (killed
    without a chance to close their runs) are closed KILLED (:func:`close_abandoned_parents`).
    """
    key = hashlib.sha256(pipeline_id.encode()).hexdigest()[:32]
    with exclusive_lock(lock):
        found = client.search_runs([experiment_id], f"tags.`pcn.pipeline_key` = '{key}'", max_results=1)
        if found:
            run_id = found[0].info.run_id
            client.update_run(run_id, status="RUNNING")
            return run_id
        if alive is not None:
            close_abandoned_parents(client, experiment_id, alive)
        run = client.create_run(
            experiment_id,
            run_name=name,
            tags={**tags, "pcn.pipeline_id": pipeline_id, "pcn.pipeline_key": key, "pcn.kind": "pipeline"},
        )
        return run.info.run_id


def close_abandoned_parents(client, experiment_id: str, alive: Callable[[str], bool]) -> list[str]:
    """Close KILLED the RUNNING parent runs whose execution is gone (``alive(pipeline_id)`` false), and their
    RUNNING stage runs; returns the parents closed."""
    closed = []
    running = "tags.`pcn.kind` = 'pipeline' and attributes.status = 'RUNNING'"
    for parent in client.search_runs([experiment_id], running):
        if alive(parent.data.tags.get("pcn.pipeline_id", "")):
            continue
        parent_id = parent.info.run_id  # hexadecimal: safe in a filter
        children = f"tags.`mlflow.parentRunId` = '{parent_id}' and attributes.status = 'RUNNING'"
        for child in client.search_runs([experiment_id], children):
            client.set_tag(child.info.run_id, "pcn.closed_abandoned", "true")  # its journal may still complete it
            client.set_terminated(child.info.run_id, "KILLED")
        client.set_tag(parent_id, "pcn.closed_abandoned", "true")
        client.set_terminated(parent_id, "KILLED")
        closed.append(parent_id)
    return closed


class StageRun:
    """One stage's MLflow run, as a context manager.

    Opened on ``__enter__`` (before the stage's work), nested under ``parent_id``; closed on
    ``__exit__``: FINISHED, KILLED on Ctrl-C / SIGTERM (:class:`KeyboardInterrupt`), FAILED on any
    other exception; the parent gets the same status. System metrics (CPU, memory, disk,
    network, GPU when present) are sampled every ``system_metrics_interval`` seconds
    (0 disables them).

    ``log_metrics``, ``log_params``, ``set_tags`` and ``log_artifact`` never raise on a tracking
    failure: the entry is appended to ``journal`` (JSON lines) and tracking stays offline for
    :data:`RETRY_AFTER_SECONDS`; the next successful call first replays the journal (so does
    the next run that opens with the same journal). A store not heard from for
    :data:`RETRY_AFTER_SECONDS` is probed first (:meth:`reachable`, a 3 s health check), so that a
    frozen server (connections accepted, never answered) costs what a dead one does: seconds per
    window, not MLflow's request timeout on every call.
    """

    def __init__(
        self,
        client,
        experiment_id: str,
        name: str,
        tags: dict[str, str],
        journal: Path,
        parent_id: str | None = None,
        system_metrics_interval: float = 0.0,
        roots: tuple[Path, ...] = (),
    ):
        self.client, self.experiment_id, self.name, self.tags = client, experiment_id, name, tags
        self.journal, self.parent_id = Path(journal), parent_id
        self.roots = tuple(roots) or (self.journal.parent,)  # where journaled artifacts may come from
        self.system_metrics_interval = system_metrics_interval
        self.run_id: str | None = None
        self.status: str | None = None
        self._monitor = None
        self._offline_until = 0.0
        self._last_contact = float("-inf")  # monotonic time of the last call the store answered

    # -- lifecycle
    def __enter__(self) -> "StageRun":
        tags = {**self.tags, "pcn.journal": self.journal.name}  # the journal that may complete this run
        if self.parent_id:
            tags["mlflow.parentRunId"] = self.parent_id
        run = self.client.create_run(self.experiment_id, run_name=self.name, tags=tags)
        self.run_id = run.info.run_id
        self._last_contact = time.monotonic()
        if self.journal.is_file():  # left by an earlier run while the store was down
            self._replay_journal()
        if self.system_metrics_interval > 0:
            self._start_monitor()
        return self

    def _start_monitor(self) -> None:
        try:
            from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

            self._monitor = SystemMetricsMonitor(
                self.run_id, sampling_interval=self.system_metrics_interval, tracking_uri=self.client.tracking_uri
            )
            self._monitor.start()
        except Exception as exc:  # psutil missing, ...: the run goes on without them
            print(f"warning: no system metrics ({exc})", file=sys.stderr)
            self._monitor = None

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            status = "FINISHED"
        elif issubclass(exc_type, KeyboardInterrupt):
            status = "KILLED"
        else:
            status = "FAILED"
        self.close(status)

    def close(self, status: str) -> None:
        if self.status is not None:
            return
        self.status = status
        if self._monitor is not None:
            with contextlib.suppress(Exception):
                self._monitor.finish()
        self._call("terminate", self.run_id, status)
        if self.parent_id:
            self._call("terminate", self.parent_id, status)

    # -- resilient logging
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self._call("metrics", {k: readable(v) for k, v in metrics.items()}, step, int(time.time() * 1000))

    def log_parent_metrics(self, metrics: dict[str, float]) -> None:
        """Metrics on the pipeline's parent run (the headline numbers of the execution)."""
        if self.parent_id:
            self._call(
                "metrics",
                {k: readable(v) for k, v in metrics.items()},
                None,
                int(time.time() * 1000),
                run_id=self.parent_id,
            )

    def log_params(self, params: dict[str, object]) -> None:
        self._call("params", {k: str(v)[:6000] for k, v in params.items()})

    def set_tags(self, tags: dict[str, str]) -> None:
        self._call("tags", {k: str(v) for k, v in tags.items()})

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self._call("artifact", str(path), artifact_path)

    def log_dataset(self, name: str, digest: str, source: str, context: str, profile: dict) -> None:
        """The run's data set as an MLflow dataset input (name, digest, source, split sizes)."""
        self._call("dataset", name, digest, source, context, profile)

    def reachable(self) -> bool:
        """Whether to send to the store now: not within an offline window, and, if the store has not answered for
        :data:`RETRY_AFTER_SECONDS`, it answers a health check within 3 s (else a new offline window starts)."""
        now = time.monotonic()
        if now < self._offline_until:
            return False
        if now - self._last_contact > RETRY_AFTER_SECONDS and not answers(self.client):
            self._offline_until = time.monotonic() + RETRY_AFTER_SECONDS
            return False
        return True

    def _call(self, kind: str, *args, run_id: str | None = None) -> None:
        entry = {"kind": kind, "run_id": run_id or self.run_id, "args": list(args)}
        if not self.reachable():
            self._journal(entry)
            return
        try:
            self._replay_journal()
            apply_entry(self.client, entry)
            self._last_contact = time.monotonic()
        except Exception as exc:  # dead server, locked database, ...: keep the entry
            self._offline_until = time.monotonic() + RETRY_AFTER_SECONDS
            self._journal(entry)
            print(
                f"warning: MLflow {kind} of run {self.run_id} not logged ({type(exc).__name__}: "
                f"{str(exc)[:200]}); kept in {self.journal}",
                file=sys.stderr,
            )

    def _journal(self, entry: dict) -> None:
        append(self.journal, {**entry, "tracking_uri": self.client.tracking_uri})

    def _replay_journal(self) -> None:
        """Send the journal's entries for this store and experiment; quarantine what may not be sent."""
        if self.journal.is_file():
            replay(self.journal, self.client, self.roots, self.experiment_id, answers)

    @property
    def pending(self) -> int:
        """Entries waiting in the journal."""
        return sum(1 for _ in open(self.journal)) if self.journal.is_file() else 0


def answers(client) -> bool:
    """Whether the store answers, within seconds (a dead server is not waited for)."""
    try:
        check_tracking_uri(client.tracking_uri, timeout=3.0)
    except TrackingError:
        return False
    return True
