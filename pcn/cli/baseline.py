"""``pcn baseline``: commit what ``dvc repro`` computed on this machine as the clone's baseline.

Why: the trained bytes depend on the CPU (its instruction set changes the float rounding of MKL and ATen;
docs/reliability.md has the measurement), so on another CPU model than the committer's, ``dvc repro`` writes
other model hashes than the committed ``dvc.lock``. Left uncommitted, that baseline is lost at the first
experiment: after ``dvc exp run -S ...``, ``git checkout .`` brings back the *committed* ``dvc.lock``, whose
outputs were never computed here, and ``dvc checkout`` fails for them ("Is your cache up to date?").

This command commits ``dvc.lock`` and the outputs git keeps (``cache: false`` in dvc.yaml: the report's
``summary.json`` and figures), with the ``.gitignore`` files DVC maintains, as one commit naming the CPU.
Then ``git checkout . && dvc checkout`` after an experiment restores this machine's own results from DVC's
cache, with no stage run. It refuses, and commits nothing, when the workspace's outputs are not those of
``dvc.lock`` (``dvc status`` not clean: run ``dvc repro`` first) or when other tracked files differ from
HEAD (params, code: the lock would credit what HEAD does not hold). With nothing to commit (the same CPU
as the committer's), it says so and exits 0. README's command 1 ends with it.
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

EXAMPLE = """examples:
  dvc repro && pcn baseline     # commit dvc.lock and the report's files computed here
  pcn baseline --dry            # what would be committed"""

#: The identity of the commit when git has none configured (a fresh machine): git would refuse to commit.
FALLBACK_IDENTITY = ["-c", "user.name=pcn baseline", "-c", "user.email=pcn-baseline@localhost"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry", action="store_true", help="print what would be committed; commit nothing")


def git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``git args`` in ``root`` (an argument list: no shell sees a path)."""
    from pcn.cli.project import fail

    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if check and done.returncode != 0:
        fail(f"git {' '.join(args[:2])} failed in {root}: {(done.stderr or done.stdout).strip()[-500:]}")
    return done


def dvc_state(root: Path) -> tuple[bool, list[str]]:
    """``(up to date, kept)`` from one look at DVC's repository: whether ``dvc status`` lists nothing, and the
    outputs of dvc.yaml that git keeps (``cache: false``), as project-relative paths."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:  # status() takes DVC's lock itself
        kept = sorted({out.def_path for stage in repo.index.stages for out in stage.outs if not out.use_cache})
        return not repo.status(), kept


def changed_paths(root: Path) -> list[tuple[str, str]]:
    """``(status, path)`` of every path ``git status`` lists (untracked files one by one)."""
    out = git(root, "status", "--porcelain", "--untracked-files=all", "-z").stdout
    entries = [e for e in out.split("\0") if e]
    return [(e[:2], e[3:]) for e in entries]


def split_changes(changes: list[tuple[str, str]], kept: list[str]) -> tuple[list[str], list[str]]:
    """``(baseline, other)``: the changed paths this command commits (dvc.lock, the git-kept outputs and files
    under them, ``.gitignore`` files) and the tracked changes it refuses to commit around (untracked files that
    are neither are left alone)."""
    baseline, other = [], []
    for status, path in changes:
        ours = path == "dvc.lock" or Path(path).name == ".gitignore"
        ours = ours or any(path == k or path.startswith(f"{k.rstrip('/')}/") for k in kept)
        if ours:
            baseline.append(path)
        elif status != "??":
            other.append(path)
    return sorted(baseline), sorted(other)


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from pcn.cli.project import fail, find_root
    from pcn.tracking.runs import cpu_model

    root = find_root()
    up_to_date, kept = dvc_state(root)
    if not up_to_date:
        fail(
            "the workspace's outputs are not those of dvc.lock (`dvc status` lists changes): run `dvc repro` first; "
            "nothing committed"
        )
    baseline, other = split_changes(changed_paths(root), kept)
    if other:
        listed = ", ".join(other[:5]) + (f" and {len(other) - 5} more" if len(other) > 5 else "")
        fail(
            f"tracked files differ from HEAD besides the results: {listed}. dvc.lock would credit them; commit or "
            "revert them first (git status); nothing committed"
        )
    if not baseline:
        print("dvc.lock and the results git keeps already match HEAD: nothing to commit")
        return 0
    print("baseline files:", ", ".join(baseline))
    if args.dry:
        return 0
    identity = [] if git(root, "config", "user.email", check=False).stdout.strip() else FALLBACK_IDENTITY
    message = f"pcn baseline: dvc repro on {cpu_model()}\n\nCommitted by `pcn baseline` (docs/pipeline.md)."
    git(root, "add", "--", *baseline)
    git(root, *identity, "commit", "-q", "-m", message, "--", *baseline)
    head = git(root, "rev-parse", "--short", "HEAD").stdout.strip()
    print(f"committed {head}: after an experiment, `git checkout . && dvc checkout` comes back to these results")
    return 0
