"""Helpers of the end-to-end tests: a copy of the project as a fresh git repository, and ways to run it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from conftest import ROOT

PROJECT_FILES = [
    "pcn",
    "stages",
    "studies",
    "dvc.yaml",
    "pyproject.toml",
    ".dvc/config",
    ".dvcignore",
    ".gitignore",
    "data/listing/README.md",
]
GIT = ["git", "-c", "user.name=pcn-test", "-c", "user.email=pcn-test@example.invalid"]


def write_params(repo: Path, params: dict) -> None:
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def make_project(tmp: Path, params: dict) -> Path:
    """Copy the project (code and pipeline, no results) into ``tmp`` as a fresh git repo."""
    tmp.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, tmp / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, tmp / name)
    write_params(tmp, params)
    subprocess.run(["git", "init", "-q"], cwd=tmp, check=True)
    commit(tmp, "init")
    return tmp


def commit(repo: Path, message: str) -> None:
    subprocess.run(GIT + ["add", "-A"], cwd=repo, check=True)
    subprocess.run(GIT + ["commit", "-qm", message, "--allow-empty"], cwd=repo, check=True)


def env(**extra) -> dict:
    e = dict(os.environ)
    e["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{e['PATH']}"  # `python` = this interpreter
    for key in ("MLFLOW_TRACKING_URI", "DVC_ROOT", "PCN_PIPELINE_ID"):
        e.pop(key, None)
    e.update(DVC_NO_ANALYTICS="1", MLFLOW_DISABLE_TELEMETRY="true", OMP_NUM_THREADS="1")
    e.update(extra)
    return e


def run(
    cmd: list[str], cwd: Path, check: bool = True, environ: dict | None = None, timeout: int = 900
) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=environ or env(), capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def dvc(*args, cwd: Path, check: bool = True, environ: dict | None = None) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "dvc", *args], cwd, check, environ)


def stage(name: str, cwd: Path, *args, environ: dict | None = None, check: bool = True):
    """Run one stage script by hand (as DVC would, with DVC_ROOT set)."""
    e = dict(environ or env())
    e["DVC_ROOT"] = str(cwd)
    return run([sys.executable, f"stages/{name}.py", *args], cwd, check, environ=e)


def start_train_stage(repo: Path, environ: dict | None = None, capture: bool = True) -> subprocess.Popen:
    """``stages/train.py`` for modulus, seed 0, started in ``repo`` (as DVC would, with DVC_ROOT set) in a session
    of its own, without waiting (to be killed or watched); ``capture``: its output as text, else discarded."""
    e = dict(environ or env(), DVC_ROOT=str(repo))
    output = subprocess.PIPE if capture else subprocess.DEVNULL
    cmd = [sys.executable, "stages/train.py", "--variant", "modulus", "--seed", "0"]
    return subprocess.Popen(cmd, cwd=repo, env=e, stdout=output, stderr=output, text=True, start_new_session=True)


def wait_for_epoch(repo: Path, epoch: int, proc: subprocess.Popen, timeout: float = 300) -> dict:
    """The checkpoint of modulus-0 once it holds ``epoch`` completed epochs (fails if the process ends first)."""
    import torch

    ckpt = repo / "checkpoints/modulus-0/last.pt"
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if ckpt.is_file():
            try:
                saved = torch.load(ckpt, weights_only=True)
                if saved["state"]["epoch"] >= epoch:
                    return saved
            except Exception:  # being written
                pass
        time.sleep(0.1)
    raise AssertionError(f"no checkpoint of epoch {epoch} (process ended: {proc.poll()})")


def ran(output: str) -> list[str]:
    """Names of the stages a `dvc repro` output says it ran."""
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")]


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def mlflow_runs(repo: Path):
    """``(runs by name, all runs, client)`` of the project's MLflow store."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("phase-collapse")
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    return {r.info.run_name: r for r in runs}, runs, client


def result_files(repo: Path) -> dict[str, bytes]:
    """Every result file (models, results/) with its bytes (not the validation marker results/params.ok)."""
    files = {}
    for top in ("results", "models"):
        for path in sorted((repo / top).rglob("*")):
            if path.is_file() and ".gitignore" not in path.name and path.name != "params.ok":
                files[str(path.relative_to(repo))] = path.read_bytes()
    return files


def write_jpeg(path, size=(64, 48), color=(200, 30, 30), gradient=False):
    """A JPEG of one colour, or (``gradient``) with a ramp across it, so that crops and flips show."""
    import numpy as np
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    if not gradient:
        Image.new("RGB", size, color=color).save(path, quality=90)
        return
    ramp = np.linspace(0, 1, size[0])[None, :, None] * np.linspace(0.2, 1, size[1])[:, None, None]
    Image.fromarray((ramp * np.array(color)).astype(np.uint8)).save(path, quality=90)


class RunsCode:
    """A pickle payload that runs a command when unpickled (what an attacker would plant)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))
