"""Where a training step's time goes: images/s against the batch size, and the operators that take the time.

Two questions about a step that runs below its goal (CIFAR-10 LScat+skip: 1,453 images/s on an H200 at
batch 128 in float32, bench/RESULTS.md), answered in one call:

* ``scaling``: :func:`epoch.measure_train` (forward, backward, the train stage's fused SGD) at each
  ``--batches`` size, in float32 with and without TF32 matrix products (``torch.backends.cuda.matmul``)
  and in bf16 autocast. Images/s that grow with the batch mean a step bound by launches and fixed costs;
  flat images/s mean a step bound by arithmetic or memory traffic.
* ``operators``: :mod:`torch.profiler` over ``--profile-steps`` steps at ``--profile-batch`` in float32
  (the model, its data and two warm-up steps outside the profiled region): on a GPU the kernels and,
  apart, the operators that launch them, each by own device time; on a CPU the operators by own CPU
  time. Per row: name, calls, own time in ms and its share of its list's total.

Usage::

    python bench/profile_step.py --device cuda                 # on the GPU machine
    python bench/profile_step.py --device cpu --batches 2 4 --profile-batch 2 --profile-steps 1 --top 5

Writes ``--out`` (default ``$OUT/profile_step.json`` when the device tool's ``$OUT`` is set, else
``bench/out/profile_step.json``) and prints a short table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from epoch import PRESETS, measure_train  # noqa: E402


def scaling(preset: str, batches: list[int], device: str, steps: int) -> list[dict]:
    """Images/s of a training step at each batch size: float32, float32 with TF32 products, bf16 autocast."""
    import torch

    rows = []
    for batch in batches:
        for precision in ("float32", "tf32", "bf16") if device == "cuda" else ("float32",):
            if device == "cuda":
                torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
            row = measure_train(preset, steps, 3, batch, device, precision == "bf16", False, False)
            rows.append({**row, "precision": precision})
            print(f"{preset} b{batch:<5} {precision:8} {row['images_per_s']:9.1f} img/s", flush=True)
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
    return rows


def operators(preset: str, batch: int, device: str, steps: int, top: int) -> dict:
    """The ``top`` operators of ``steps`` float32 training steps by their own device (or CPU) time; the model,
    its data and two warm-up steps are made outside the profiled region."""
    import torch
    from epoch import _batches
    from torch.profiler import ProfilerActivity, profile

    from pcn.nn.phase_collapse import PhaseCollapseConfig, PhaseCollapseNet
    from pcn.train.epoch import build_optimizer, train_one_epoch

    torch.manual_seed(0)
    model = PhaseCollapseNet(PhaseCollapseConfig(**PRESETS[preset])).to(device)
    opt = build_optimizer(model, 1e-3, 0.9, 1e-4)
    warm, timed = _batches(preset, batch * 2, batch, device), _batches(preset, batch * steps, batch, device)
    train_one_epoch(model, warm.epoch(0), opt, torch.device(device), 0, 2)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities) as prof:
        train_one_epoch(model, timed.epoch(0), opt, torch.device(device), 0, steps)
        if device == "cuda":
            torch.cuda.synchronize()
    if device == "cuda":  # kernels alone (an operator's device time is its kernels': counting both doubles it)
        kernels = [e for e in prof.key_averages() if e.device_type == torch.autograd.DeviceType.CUDA]
        operators_ = [e for e in prof.key_averages() if e.device_type != torch.autograd.DeviceType.CUDA]
        return {
            "batch": batch,
            "steps": steps,
            "clock": "self_device_time_total",
            "kernels": _ranked(kernels, "self_device_time_total", top),
            "operators": _ranked(operators_, "self_device_time_total", top),
        }
    ops = _ranked(prof.key_averages(), "self_cpu_time_total", top)
    return {"batch": batch, "steps": steps, "clock": "self_cpu_time_total", "kernels": ops, "operators": ops}


def _ranked(events, attr: str, top: int) -> dict:
    """The ``top`` events by ``attr`` (microseconds), with their calls, milliseconds and share of all events."""
    events = sorted((e for e in events if getattr(e, attr) > 0), key=lambda e: -getattr(e, attr))
    total = sum(getattr(e, attr) for e in events)
    rows = [
        {"name": e.key, "calls": e.count, "self_ms": getattr(e, attr) / 1e3, "share": getattr(e, attr) / total}
        for e in events[:top]
    ]
    return {"total_ms": total / 1e3, "rows": rows}


def main() -> None:
    default_out = Path(os.environ["OUT"]) if os.environ.get("OUT") else ROOT / "bench" / "out"
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="cifar10_lscat_skip", choices=list(PRESETS))
    parser.add_argument("--device", default="cuda", choices=["cpu", "cuda"])
    parser.add_argument("--batches", type=int, nargs="+", default=[128, 512, 2048])
    parser.add_argument("--steps", type=int, default=10, help="timed steps per scaling row")
    parser.add_argument("--profile-batch", type=int, default=128)
    parser.add_argument("--profile-steps", type=int, default=5)
    parser.add_argument("--top", type=int, default=25, help="operators kept")
    parser.add_argument("--out", type=Path, default=default_out / "profile_step.json")
    args = parser.parse_args()

    result = {"date": datetime.now(timezone.utc).isoformat(), "preset": args.preset, "device": args.device}
    result["scaling"] = scaling(args.preset, args.batches, args.device, args.steps)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    result["operators"] = operators(args.preset, args.profile_batch, args.device, args.profile_steps, args.top)
    args.out.write_text(json.dumps(result, indent=1))
    ops = result["operators"]
    for kind in ("kernels", "operators") if args.device == "cuda" else ("operators",):
        print(f"{kind} at batch {ops['batch']}, {ops['steps']} steps: {ops[kind]['total_ms']:.1f} ms ({ops['clock']})")
        for row in ops[kind]["rows"]:
            print(f"{row['share']:6.1%} {row['self_ms']:9.2f} ms {row['calls']:6d}  {row['name'][:70]}")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
