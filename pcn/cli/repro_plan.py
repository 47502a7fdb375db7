"""What ``pcn repro`` would run: DVC's own graph and status for the targets, in ``dvc repro``'s order.

The stages come from :mod:`dvc.repo.reproduce` (the same collection, active graph and post-order as
``dvc repro``); a stage is to run when DVC reports it changed or when a stage it depends on is to run.
Nothing about the pipeline is written here.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Step:
    """One stage of the plan: its DVC name, the planned stages it waits for, and whether it is to run."""

    name: str
    needs: list[str] = field(default_factory=list)
    run: bool = True


def plan(root: Path, targets: list[str] | None = None, downstream: bool = False, force: bool = False) -> list[Step]:
    """The stages ``dvc repro [targets]`` would consider, dependencies first, each with ``run`` from DVC's status.

    Raises
    ------
    ValueError
        A target that names no stage (DVC's one-line message).
    """
    from dvc.exceptions import DvcException
    from dvc.repo import Repo
    from dvc.repo.reproduce import collect_stages, get_active_graph, plan_repro

    with Repo(str(root)) as repo, repo.lock:
        try:
            stages = collect_stages(repo, targets or ["dvc.yaml"])
        except DvcException as exc:
            raise ValueError(f"target {' '.join(targets or [])!r}: {exc}") from exc
        graph = get_active_graph(repo.index.graph)
        order = plan_repro(graph, stages, downstream=downstream)
        planned = set(order)
        steps, to_run = [], set()
        for stage in order:
            needs = [up for up in graph.successors(stage) if up in planned]  # DVC's edges point to dependencies
            run = force or stage.changed() or any(up in to_run for up in needs)
            if run:
                to_run.add(stage)
            steps.append(Step(stage.addressing, [up.addressing for up in needs], run))
    return steps


def waiting(steps: list[Step]) -> dict[str, set[str]]:
    """For each stage to run, the stages to run that it waits for."""
    running = {s.name for s in steps if s.run}
    return {s.name: {n for n in s.needs if n in running} for s in steps if s.run}


def dependants(steps: list[Step], failed: str) -> set[str]:
    """Every planned stage that depends, directly or not, on ``failed``."""
    found, grew = set(), True
    while grew:
        grew = False
        for s in steps:
            if s.name not in found and (failed in s.needs or found & set(s.needs)):
                found.add(s.name)
                grew = True
    return found


def kind(name: str) -> str:
    """``train`` for ``train@modulus-0``: the stage a matrix entry belongs to."""
    return name.split("@", 1)[0]


def estimate(steps: list[Step], durations: dict[str, float], workers: int) -> tuple[float | None, float | None]:
    """``(one worker, workers)`` wall-time estimates in seconds of the stages to run, by list scheduling in plan
    order; a stage's duration is its own past one, else the median of its kind's; None when nothing is known.

    ``durations`` maps stage names (``train@modulus-0``) to seconds.
    """
    by_kind: dict[str, list[float]] = {}
    for name, seconds in durations.items():
        by_kind.setdefault(kind(name), []).append(seconds)
    known = {k: statistics.median(v) for k, v in by_kind.items()}
    todo = [s for s in steps if s.run]
    if not todo:
        return 0.0, 0.0
    cost = {}
    for s in todo:
        seconds = durations.get(s.name, known.get(kind(s.name)))
        if seconds is None:
            return None, None
        cost[s.name] = seconds
    finish: dict[str, float] = {}
    free = [0.0] * max(1, workers)
    for s in todo:  # plan order is a topological order
        ready = max([finish[n] for n in s.needs if n in finish], default=0.0)
        slot = min(range(len(free)), key=lambda i: max(free[i], ready))
        finish[s.name] = max(free[slot], ready) + cost[s.name]
        free[slot] = finish[s.name]
    return sum(cost.values()), max(finish.values())
