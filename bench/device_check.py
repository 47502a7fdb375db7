"""Everything the GPU figures need, in one command sized for one lent GPU call (at most 8 minutes).

Each part runs in its own process under its own time box (:data:`PARTS`); the JSON is rewritten
after every part, so a part that fails or runs out of time leaves the others' figures (its entry
then says ``status: failed`` or ``timeout`` and why; a part that measures several rows prints them
as it goes, and a timed-out one keeps the rows it finished). The parts:

* ``environment``: GPU name and count, driver, CUDA and torch versions, memory;
* ``ceilings``: float32 and bf16 matrix-product rates and device-to-device copy bandwidth
  (``bench/ceilings.py``);
* ``throughput``: a training step (forward, backward, the train stage's fused SGD) of CIFAR-10 LScat
  and LScat+skip at the paper's batch 128, float32 and bf16 autocast, ours against the reference
  formulation (``bench/throughput.py``), with images/s, peak memory and the Pc products' FLOP rate
  (``pc_flop_rate``; the summary divides it by the matching ceiling);
* ``end_to_end``: CIFAR-10 LScat+skip end to end (in-memory batches with CIFAR augmentation on the
  device, then the step; ``bench/epoch.py``) in bf16, plain, with ``channels_last``, and with
  ``torch.compile``: the figure the 10,000 images/s goal is about;
* ``imagenet``: ImageNet LScat at the largest batch that fits (doubling until out of memory);
* ``input``: the in-memory input pipeline alone on the device;
* ``train_stage``: 2 epochs of random CIFAR-shaped data through ``stages/validate.py``,
  ``stages/fetch.py`` (synthetic data) and ``stages/train.py`` in a temporary copy of the project, on
  the device, with the NaN check and the checkpoint, tracking off (``PCN_TRACKING=off``: the GPU machine
  has no MLflow);
* ``ddp``: the same stage under torchrun with NCCL on every GPU, when more than one is present.

``--dry`` runs the same parts on the CPU at tiny sizes (seconds; a test runs it in CI, so that it
cannot rot). The output: ``--out``, by default ``$OUT/device_check.json`` when the device tool's
``$OUT`` is set, else ``bench/out/device_check.json``. bench/RESULTS.md says how to run it through the
device tool and what each field means.

    python bench/device_check.py              # on the GPU machine
    python bench/device_check.py --dry        # CPU, tiny sizes
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

#: A network of a few channels on 16-pixel images: what ``--dry`` measures in place of every preset.
TINY = dict(
    in_channels=3, image_size=16, num_classes=10, arch="lscat_skip", n_angles=4, factorize_from=0, widths=(8, 8)
)
#: The CIFAR-10 presets of the throughput part (bench/throughput.py, bench/epoch.py).
CIFAR_PRESETS = ("cifar10_lscat", "cifar10_lscat_skip")


def _device(dry: bool) -> str:
    return "cpu" if dry else "cuda"


def _presets(dry: bool, names: tuple[str, ...]) -> list[str]:
    """The presets to measure: ``names``, or the tiny network (registered under "tiny") in dry mode."""
    if not dry:
        return list(names)
    import epoch
    import throughput

    throughput.PRESETS["tiny"] = epoch.PRESETS["tiny"] = TINY
    return ["tiny"]


def part_environment(dry: bool) -> dict:
    import torch

    out = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "host": platform.node(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "gpus": [],
    }
    for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
        p = torch.cuda.get_device_properties(i)
        out["gpus"].append(
            {
                "name": p.name,
                "memory_bytes": p.total_memory,
                "capability": f"{p.major}.{p.minor}",
                "multiprocessors": p.multi_processor_count,
            }
        )
    smi = shutil.which("nvidia-smi")
    if smi:
        query = subprocess.run(
            [smi, "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True, timeout=20
        )
        out["driver"] = query.stdout.strip().splitlines()[0] if query.returncode == 0 and query.stdout else None
    if not dry and not out["gpus"]:
        raise RuntimeError("no CUDA device is visible to torch")
    return out


def part_ceilings(dry: bool) -> dict:
    import torch
    from ceilings import copy_bandwidth, matmul_flops

    device = _device(dry)
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
    n = 256 if dry else 8192
    return {
        "matmul_float32_flops": matmul_flops(device, torch.float32, n),
        "matmul_bfloat16_flops": matmul_flops(device, torch.bfloat16, n),
        "copy_bandwidth_bytes_per_s": copy_bandwidth(device, (8 << 20) if dry else (2 << 30)),
    }


def _progress(partial: dict) -> dict:
    """Print what a part has so far (one JSON line): a part stopped by its time box keeps these figures."""
    print(json.dumps(partial), flush=True)
    return partial


def part_throughput(dry: bool) -> dict:
    from throughput import check_equal, measure

    device, batch = _device(dry), 2 if dry else 128
    rows, checks = [], {}
    for preset in _presets(dry, CIFAR_PRESETS):
        checks[preset] = check_equal(preset, device)
        for impl in ("ours", "reference"):
            for amp in (False, True):
                rows.append(
                    measure(
                        preset,
                        impl,
                        batch,
                        1 if dry else 10,
                        device,
                        amp,
                        False,
                        False,
                        0,
                        device == "cpu",
                        1 if dry else 5,
                    )
                )
                _progress({"rows": rows, "max_relative_logit_difference": checks})
    return {"rows": rows, "max_relative_logit_difference": checks}


def part_end_to_end(dry: bool) -> dict:
    from epoch import measure_train

    device, batch = _device(dry), 2 if dry else 128
    (preset,) = _presets(dry, ("cifar10_lscat_skip",))
    settings = [(False, False, False), (True, False, False), (True, False, True)]  # (amp, compile, channels_last)
    if not dry:
        settings.append((True, True, True))
    out = {"rows": [], "skipped": ["torch.compile (dry mode: compiling takes minutes on a CPU)"] if dry else []}
    for amp, compile_model, channels_last in settings:
        out["rows"].append(
            measure_train(preset, 1 if dry else 20, 1 if dry else 5, batch, device, amp, compile_model, channels_last)
        )
        _progress(out)
    return out


def part_imagenet(dry: bool) -> dict:
    import torch
    from throughput import measure

    device = _device(dry)
    (preset,) = _presets(dry, ("imagenet_lscat",))
    batches = [1, 2] if dry else [32, 64, 128, 256, 512]
    rows, limit = [], None
    for batch in batches:
        try:
            rows.append(
                measure(
                    preset,
                    "ours",
                    batch,
                    1 if dry else 3,
                    device,
                    True,
                    False,
                    False,
                    0,
                    device == "cpu",
                    1 if dry else 2,
                )
            )
            _progress({"rows": rows, "largest_batch": batch, "out_of_memory_at": None})
        except torch.cuda.OutOfMemoryError:
            limit = batch
            break
        finally:
            if device == "cuda":
                torch.cuda.empty_cache()
    return {"rows": rows, "largest_batch": rows[-1]["batch"] if rows else None, "out_of_memory_at": limit}


def part_input(dry: bool) -> dict:
    from epoch import measure_input

    (preset,) = _presets(dry, ("cifar10_lscat_skip",))
    return measure_input(preset, 64 if dry else 50_000, 8 if dry else 128, _device(dry))


def _stage_project(dry: bool, nproc: int) -> Path:
    """A temporary copy of the project whose params train one CIFAR-shaped network on synthetic data."""
    import yaml

    project = Path(tempfile.mkdtemp(prefix="pcn-device-check-"))
    for name in ("pcn", "stages"):
        shutil.copytree(ROOT / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params.update(seeds=[0], variants=["check"])
    params["models"] = {"check": {"arch": "lscat_skip", "nonlinearity": "mod"}}
    params["data"].update(name="synthetic", resplit=False, augment="cifar")
    params["data"]["synthetic"] = (
        {"n_train": 64, "n_test": 32, "image_size": 16, "channels": 3, "classes": 10}
        if dry
        else {"n_train": 10_240, "n_test": 2_048, "image_size": 32, "channels": 3, "classes": 10}
    )
    params["filters"]["factorize_from"] = 0
    params["network"]["widths"] = list(TINY["widths"]) if dry else [64, 128, 256, 512, 512, 512, 512, 512]
    params["train"].update(
        epochs=2,
        batch_size=16 if dry else 128,
        device="cpu" if dry else "cuda",
        amp=not dry,
        launcher="torchrun" if nproc > 1 else "python",
        nproc=nproc,
    )
    params["runtime"].update(progress=False, log_models=False, system_metrics=False, num_workers=0)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return project


def _run_stage_check(dry: bool, nproc: int) -> dict:
    project = _stage_project(dry, nproc)
    env = {**os.environ, "PCN_TRACKING": "off"}
    steps = {}
    try:
        for script, args in (("validate", []), ("fetch", []), ("train", ["--variant", "check", "--seed", "0"])):
            start = time.perf_counter()
            done = subprocess.run(
                [sys.executable, f"stages/{script}.py", *args], cwd=project, env=env, capture_output=True, text=True
            )
            steps[script] = {
                "seconds": time.perf_counter() - start,
                "returncode": done.returncode,
                "output_tail": (done.stdout + done.stderr)[-1500:],
            }
            if done.returncode != 0:
                raise RuntimeError(f"stages/{script}.py failed: {done.stderr[-600:]}")
        metrics = json.loads((project / "results/train/check-0/metrics.json").read_text())
        history = (project / "results/train/check-0/history.csv").read_text().splitlines()
        checkpoints = sorted(p.name for p in (project / "checkpoints/check-0").iterdir())
        return {
            "steps": steps,
            "epochs": len(history) - 1,
            "final_test_error": metrics.get("final_test_error"),
            "model_saved": (project / "models/check-0/model.pt").is_file(),
            "checkpoint_files": checkpoints,
            "world_size": metrics.get("world_size"),
            "nproc": nproc,
        }
    finally:
        shutil.rmtree(project, ignore_errors=True)


def part_train_stage(dry: bool) -> dict:
    return _run_stage_check(dry, 1)


def part_ddp(dry: bool) -> dict:
    import torch

    count = 2 if dry else (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    if count < 2:
        return {"skipped": f"{count} GPU: DDP needs at least 2"}
    return _run_stage_check(dry, count)  # dry: 2 gloo processes on the CPU


#: name: (function, time box in seconds on the GPU machine; the sum stays under 8 minutes)
PARTS = {
    "environment": (part_environment, 20),
    "ceilings": (part_ceilings, 40),
    "throughput": (part_throughput, 110),
    "end_to_end": (part_end_to_end, 110),
    "imagenet": (part_imagenet, 60),
    "input": (part_input, 25),
    "train_stage": (part_train_stage, 70),
    "ddp": (part_ddp, 45),
}


def _text(output) -> str:
    """A timed-out child's captured output (always bytes, whatever ``text`` says) as text."""
    return output.decode(errors="replace") if isinstance(output, bytes) else (output or "")


def run_part(name: str, dry: bool, box: float) -> dict:
    """One part in its own process, stopped after ``box`` seconds; its JSON, or why there is none."""
    start = time.perf_counter()
    cmd = [sys.executable, __file__, "--part", name] + ["--dry"] * dry
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=box)
    except subprocess.TimeoutExpired as exc:
        out = _text(exc.stdout).strip().splitlines()
        partial = {"result": json.loads(out[-1])} if out and out[-1].startswith("{") else {}
        return {"status": "timeout", "seconds": box, "detail": _text(exc.stderr)[-800:], **partial}
    seconds = time.perf_counter() - start
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"status": "failed", "seconds": seconds, "detail": done.stderr[-1500:]}
    return {"status": "ok", "seconds": seconds, "result": json.loads(lines[-1])}


def summary(results: dict) -> list[str]:
    """The short table printed last: the figures the goal and bench/RESULTS.md need."""
    lines = [f"{name:12s} {r['status']:8s} {r['seconds']:6.1f} s" for name, r in results["parts"].items()]
    ceilings = results["parts"].get("ceilings", {}).get("result", {})
    for part in ("throughput", "end_to_end", "imagenet"):
        for row in results["parts"].get(part, {}).get("result", {}).get("rows", []):
            ceiling = ceilings.get("matmul_bfloat16_flops" if row.get("amp") else "matmul_float32_flops")
            rate = row.get("pc_flop_rate") or (
                row.get("projection_flops", 0) / row["median_step_s"] if "median_step_s" in row else None
            )
            share = f"{rate / ceiling:6.1%}" if rate and ceiling else "     -"
            lines.append(
                f"{part:10s} {row['preset']:18s} {row.get('impl', 'ours'):9s} b{row['batch']:<4d} "
                f"amp={int(row['amp'])} compile={int(row.get('compile', False))} "
                f"cl={int(row.get('channels_last', False))} {row['images_per_s']:10.1f} img/s "
                f"{row['peak_memory_bytes'] / 2**20:8.0f} MiB  Pc/ceiling {share}"
            )
    return lines


def default_out() -> Path:
    folder = Path(os.environ["OUT"]) if os.environ.get("OUT") else ROOT / "bench/out"  # $OUT: the device tool's
    return folder / "device_check.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry", action="store_true", help="CPU, tiny sizes (seconds): the check of the check")
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=list(PARTS))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--part", choices=list(PARTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part:  # a child: one part, its JSON on the last line
        print(json.dumps(PARTS[args.part][0](args.dry)))
        return
    out = args.out or default_out()
    out.parent.mkdir(parents=True, exist_ok=True)
    results = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "dry": args.dry, "parts": {}}
    for name in args.parts:
        _, box = PARTS[name]
        results["parts"][name] = run_part(name, args.dry, box * (3 if args.dry else 1))
        out.write_text(json.dumps(results, indent=1))  # partial results survive a later failure
        print(f"{name}: {results['parts'][name]['status']} ({results['parts'][name]['seconds']:.1f} s)", flush=True)
    print("\n".join(summary(results)))
    print(f"written: {out}")
    if any(r["status"] != "ok" for r in results["parts"].values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
