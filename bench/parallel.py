"""How much faster is ``pcn repro`` than ``dvc repro``, and what does a stage cost in scheduling?

Modes (one JSON file, ``--out``):

* ``pipeline``: the pipeline of params.yaml (``--scale default``) or a seconds-long synthetic one (``--scale
  tiny``) in fresh copies of this project, ``dvc repro`` and ``pcn repro --workers 2`` alternating over
  ``--rounds`` rounds (the machine's speed drifts); wall times, their medians and the speed-up.
* ``simulated``: an 8-device node simulated on this machine: a DVC project whose matrix of ``--stages``
  stages each sleep ``--seconds`` (the device's work, which takes no CPU here) and write one output, run by
  ``pcn repro`` with 1 and with 8 local workers. Reports the speed-up and the scheduling overhead per stage:
  (wall time - the ideal of the stages' sleeps) / stages.
* Both add ``paper_estimate``: CIFAR-10 Tables 1+2 on one 8-GPU node, from the assumptions it lists and the
  overhead per stage measured (``--overhead`` when the mode measured none).

Usage::

    python bench/parallel.py simulated --stages 16 --seconds 4
    python bench/parallel.py pipeline --rounds 2
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["pcn", "stages", "dvc.yaml", "params.yaml", "pyproject.toml", ".dvc/config", ".dvcignore"]
PROJECT_FILES += [".gitignore", "data/listing/README.md", "studies"]
GIT = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]

#: The paper's CIFAR-10 comparison and the throughput assumed for it (pcn's target on one GPU, not measured).
PAPER = {
    "networks": 12,  # Tables 1 and 2 with baselines
    "seeds": 5,
    "epochs": 300,
    "train_images": 50_000,
    "test_images": 10_000,
    "images_per_s_per_gpu": 10_000,  # assumption: pcn's aim for these small networks, not yet measured on a GPU
    "gpus": 8,
}


def environment() -> dict:
    env = dict(os.environ, DVC_NO_ANALYTICS="1", MLFLOW_DISABLE_TELEMETRY="true", PYTHONPATH=str(ROOT))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    for key in ("MLFLOW_TRACKING_URI", "PCN_PIPELINE_ID", "DVC_ROOT"):
        env.pop(key, None)
    return env


def git_init(folder: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=folder, check=True)
    subprocess.run(GIT + ["add", "-A"], cwd=folder, check=True)
    subprocess.run(GIT + ["commit", "-qm", "bench"], cwd=folder, check=True)


def copy_project(folder: Path, scale: str) -> Path:
    for name in PROJECT_FILES:
        src, dst = ROOT / name, folder / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, dst)
    if scale == "tiny":
        import yaml

        params = yaml.safe_load((ROOT / "params.yaml").read_text())
        params["data"].update(
            name="synthetic", synthetic={"n_train": 64, "n_test": 32, "image_size": 16, "channels": 1, "classes": 4}
        )
        params["filters"]["factorize_from"] = 0
        params["network"]["widths"] = [4, 8]
        params.update(variants=["modulus"], seeds=[0])
        params["train"].update(epochs=1, batch_size=16)
        params["runtime"].update(progress=False, log_models=False, system_metrics=False)
        (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    git_init(folder)
    return folder


def timed(cmd: list[str], cwd: Path, env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed in {cwd}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def pcn_repro(*args: str) -> list[str]:
    return [sys.executable, "-m", "pcn.cli.main", "repro", *args]


def pipeline(args, work: Path) -> dict:
    env = environment()
    times: dict[str, list[float]] = {"dvc repro": [], "pcn repro --workers 2": []}
    for r in range(args.rounds):
        for name, cmd in (("dvc repro", [sys.executable, "-m", "dvc", "repro"]), ("pcn repro --workers 2", None)):
            folder = copy_project(work / f"{r}-{len(times[name])}-{name.split()[0]}", args.scale)
            times[name].append(timed(cmd or pcn_repro("--workers", "2"), folder, env))
            print(f"round {r}: {name} {times[name][-1]:.1f} s", flush=True)
    medians = {k: statistics.median(v) for k, v in times.items()}
    return {"wall_s": times, "median_s": medians, "speedup": medians["dvc repro"] / medians["pcn repro --workers 2"]}


SLEEP_STAGE = """import sys, time
from pathlib import Path
time.sleep(float(sys.argv[1]))
Path("out").mkdir(exist_ok=True)
Path("out", sys.argv[2] + ".txt").write_text(sys.argv[2])
"""


def simulated_project(folder: Path, stages: int, seconds: float) -> Path:
    """A DVC project with a matrix of ``stages`` sleeping stages (and pcn's params.yaml, which pcn repro reads)."""
    import yaml

    folder.mkdir(parents=True)
    shutil.copy(ROOT / "params.yaml", folder / "params.yaml")
    (folder / "sleep.py").write_text(SLEEP_STAGE)
    dvc_yaml = {
        "stages": {
            "work": {
                "matrix": {"i": list(range(stages))},
                "cmd": f"python sleep.py {seconds} ${{item.i}}",
                "deps": ["sleep.py"],
                "outs": [{"out/${item.i}.txt": {"cache": False}}],
            }
        }
    }
    (folder / "dvc.yaml").write_text(yaml.safe_dump(dvc_yaml, sort_keys=False))
    (folder / ".gitignore").write_text("/out\n")
    subprocess.run(["git", "init", "-q"], cwd=folder, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=folder, check=True, env=environment())
    git_init(folder)
    return folder


def simulated(args, work: Path) -> dict:
    env = dict(environment(), PCN_TRACKING="off")
    wall, overhead = {}, {}
    for workers in (1, 8):
        folder = simulated_project(work / f"sim-{workers}", args.stages, args.seconds)
        wall[workers] = timed(pcn_repro("--workers", str(workers)), folder, env)
        ideal = math.ceil(args.stages / workers) * args.seconds
        overhead[workers] = (wall[workers] - ideal) / args.stages
        print(f"{workers} workers: {wall[workers]:.1f} s, {overhead[workers]:.2f} s/stage overhead", flush=True)
    return {
        "stages": args.stages,
        "seconds_per_stage": args.seconds,
        "wall_s": wall,
        "speedup_8_over_1": wall[1] / wall[8],
        "ideal_speedup": args.stages * args.seconds / (math.ceil(args.stages / 8) * args.seconds),
        "overhead_s_per_stage": overhead,
    }


def paper_estimate(overhead_s: float) -> dict:
    """CIFAR-10 Tables 1+2 on one node of ``PAPER["gpus"]`` GPUs: one training per GPU at a time."""
    p = PAPER
    train_s = p["epochs"] * p["train_images"] / p["images_per_s_per_gpu"]
    evaluate_s = p["test_images"] * 3 / p["images_per_s_per_gpu"]  # forward only: a generous 3 passes
    runs = p["networks"] * p["seeds"]
    per_run = train_s + evaluate_s + 2 * overhead_s
    serial = runs * per_run
    node = math.ceil(runs / p["gpus"]) * per_run
    return {
        "assumptions": p,
        "overhead_s_per_stage": overhead_s,
        "train_s_per_run": train_s,
        "runs": runs,
        "one_gpu_h": serial / 3600,
        "node_h": node / 3600,
        "speedup": serial / node,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", choices=["pipeline", "simulated"], default="pipeline")
    parser.add_argument("--rounds", type=int, default=2, help="pipeline: alternating rounds")
    parser.add_argument("--scale", choices=["default", "tiny"], default="default", help="pipeline: params")
    parser.add_argument("--stages", type=int, default=16, help="simulated: matrix size")
    parser.add_argument("--seconds", type=float, default=4.0, help="simulated: each stage's sleep")
    parser.add_argument("--overhead", type=float, default=1.5, help="s/stage for the estimate when not measured")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a new temporary one)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/out/parallel.json")
    args = parser.parse_args(argv)
    args.work = args.work or Path(tempfile.mkdtemp(prefix="pcn-parallel-"))
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    result = {
        "mode": args.mode,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    result[args.mode] = pipeline(args, args.work) if args.mode == "pipeline" else simulated(args, args.work)
    measured = result.get("simulated", {}).get("overhead_s_per_stage", {}).get(8)
    result["paper_estimate"] = paper_estimate(measured if measured is not None else args.overhead)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["paper_estimate"], indent=2))
    shutil.rmtree(args.work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
