"""One ``pcn repro`` execution: the MLflow server, the cluster, and each stage submitted once its inputs are done.

Progress lines say which stage started on which worker, which finished, and how many are left.
"""

from __future__ import annotations

import datetime
import os
import threading
import time
from pathlib import Path

from pcn.cli.repro_plan import Step, dependants, waiting


def pipeline_identity() -> tuple[str, str]:
    """``(id, label)`` of this execution: ``<kind>:<pid>:<start time>`` of this process, the form in which
    ``stages/mlflow_run.py`` tells a live execution from a dead one."""
    import psutil

    started = psutil.Process().create_time()
    label = f"pcn repro {datetime.datetime.fromtimestamp(started):%Y-%m-%d %H:%M:%S}"
    return f"pcn-repro:{os.getpid()}:{started:.3f}", label


class Progress:
    """Prints one line per event, with the time since the start and what is done and left."""

    def __init__(self, total: int):
        self.total, self.done, self.start = total, 0, time.monotonic()
        self.lock = threading.Lock()

    def say(self, text: str) -> None:
        with self.lock:
            print(f"[{time.monotonic() - self.start:7.1f} s] {text}", flush=True)

    def started(self, event) -> None:
        """Handler of the tasks' announcements (a Dask event: ``(time, {"stage", "worker"})``)."""
        _, what = event
        self.say(f"start {what['stage']} -> {what['worker']}")

    def finished(self, name: str, worker: str, seconds: float) -> None:
        self.done += 1
        self.say(f"done  {name} on {worker} in {seconds:.1f} s ({self.done} done, {self.total - self.done} left)")


def track(root: Path, uri: str | None, experiment: str):
    """``(environment for the stages, server process or None, URI the stages use)``; the experiment exists after."""
    from pcn.cli.project import fail
    from pcn.cli.repro_tracking import start_server
    from pcn.tracking.store import TrackingError, check_tracking_uri, ensure_experiment, sqlite_path

    if uri is None:
        return {}, None, None
    artifacts = root / "mlartifacts"
    try:
        check_tracking_uri(uri)
        ensure_experiment(uri, experiment, artifacts)  # once, before anything runs in parallel
    except TrackingError as exc:
        fail(str(exc))
    if sqlite_path(uri) is None:
        return {"MLFLOW_TRACKING_URI": uri}, None, uri
    server, served = start_server(uri, artifacts)
    return {"MLFLOW_TRACKING_URI": served}, server, served


def execute(root: Path, steps: list[Step], args, uri: str | None, experiment: str) -> int:
    """Run the stages of ``steps`` marked to run; returns the exit status (0: all finished)."""
    from pcn.cli.repro_cluster import slot_environments, start_cluster
    from pcn.cli.repro_tracking import close_parent, stop_server

    ident, label = pipeline_identity()
    environment, server, served = track(root, uri, experiment)
    environment.update(PCN_PIPELINE_ID=ident, PCN_PIPELINE_LABEL=label)
    slots = {} if args.scheduler else slot_environments(args.workers)
    status = "FAILED"
    try:
        client, cluster = start_cluster(args.scheduler, len(slots))
        try:
            status, code = schedule(client, root, steps, environment, {str(i): e for i, e in enumerate(slots)}, args)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
        return code
    except KeyboardInterrupt:
        status = "KILLED"
        print("interrupted: every task stopped; finished stages stay recorded in dvc.lock", flush=True)
        return 130
    finally:
        if served:
            try:
                close_parent(served, experiment, ident, status)
            except Exception as exc:  # the runs themselves are closed by their stages
                print(f"warning: parent run not closed ({str(exc).splitlines()[0][:200]})")
        if server is not None:
            stop_server(server)


def schedule(client, root: Path, steps: list[Step], environment: dict, slots: dict, args) -> tuple[str, int]:
    """Submit each stage when the stages it waits for have finished; returns ``(MLflow status, exit status)``."""
    from distributed import as_completed

    from pcn.cli.repro_cluster import TOPIC, StageFailed, dashboard_available, run_stage

    needs = waiting(steps)
    progress = Progress(len(needs))
    link = client.dashboard_link if dashboard_available() else None  # the dashboard needs bokeh
    workers = client.scheduler_info().get("workers", {})
    print(f"{len(needs)} stages on {len(workers)} Dask workers" + (f"; dashboard {link}" if link else ""), flush=True)
    try:
        client.subscribe_topic(TOPIC, progress.started)
    except Exception:  # older schedulers: the finish lines still come
        pass
    done, failed, futures = set(), {}, {}  # done: finished stages only; a failed one releases nothing

    def submit_ready(ac=None):
        for name, waits in needs.items():
            if name in futures or not waits <= done:
                continue
            future = client.submit(
                run_stage, name, str(root), environment, slots, key=f"stage-{name}", pure=False, retries=args.retries
            )
            futures[name] = future
            if ac is not None:
                ac.add(future)
        return [futures[n] for n in futures if n not in done and n not in failed]

    pending = as_completed(submit_ready())
    try:
        for future in pending:
            name = next(n for n, f in futures.items() if f.key == future.key)
            try:
                result = future.result()
            except StageFailed as exc:
                failed[name] = str(exc)
            except Exception as exc:  # the task itself broke (worker lost too often, ...)
                failed[name] = f"stage {name} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            else:
                done.add(name)
                progress.finished(name, result.worker, result.seconds)
            if name in failed:
                progress.say(failed[name])
                skipped = dependants(steps, name) & set(needs)
                if skipped:
                    progress.say(f"not started (they depend on {name}): {', '.join(sorted(skipped))}")
            submit_ready(pending)
    except KeyboardInterrupt:
        client.cancel(list(futures.values()), force=True)
        raise
    if failed:
        print(f"failed: {', '.join(failed)}; not started: {len(needs) - len(done) - len(failed)}", flush=True)
        return "FAILED", 1
    print(f"all {len(done)} stages finished", flush=True)
    return "FINISHED", 0
