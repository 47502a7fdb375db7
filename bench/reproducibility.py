"""Are the trained bytes the same whatever the thread count and the instruction set? And what does it cost?

Each measurement runs in its own subprocess with one environment (:data:`SETTINGS`): it builds a variant of
params.yaml's networks (seed 0), takes ``--steps`` SGD steps on a fixed random batch of 28x28 digits-sized
images, and prints the SHA-256 of every parameter's bytes after the steps and the median step time. Settings:

* threads: ``OMP_NUM_THREADS`` 1 and 2 (``pcn repro --workers 2`` gives each stage one thread of a 2-core
  machine, ``dvc repro`` both);
* ``MKL_NUM_THREADS=1``: MKL's own routines (the Pc products' sgemm, the FFTs) single-threaded, ATen's
  intra-op parallelism (OpenMP) unchanged;
* instruction sets: ``ATEN_CPU_CAPABILITY=avx2`` (ATen's vectorized kernels capped at AVX2, as on a host
  without AVX-512), ``MKL_ENABLE_INSTRUCTIONS=AVX2`` (the same for MKL), ``MKL_CBWR=AVX2`` (MKL's conditional
  numerical reproducibility, one code path on every AVX2 host).

Two settings "agree" when every variant's bytes are identical. Step times alternate over ``--rounds`` rounds
(the machine's speed drifts) and the JSON reports each setting's median and its ratio to the default.

Usage::

    python bench/reproducibility.py                        # writes bench/out/reproducibility.json
    python bench/reproducibility.py --variants modulus --steps 2 --rounds 1
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: name -> environment (on top of ``OMP_WAIT_POLICY=PASSIVE``, the stages' default)
SETTINGS = {
    "2 threads": {"OMP_NUM_THREADS": "2"},
    "1 thread": {"OMP_NUM_THREADS": "1"},
    "2 threads, MKL 1": {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "1"},
    "1 thread, MKL 1": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
    "2 threads, MKL 1, ATen AVX2": {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "1", "ATEN_CPU_CAPABILITY": "avx2"},
    "2 threads, MKL 1, MKL AVX2": {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "1", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "2 threads, MKL 1, MKL_CBWR AVX2": {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "1", "MKL_CBWR": "AVX2"},
}


def measure(variant: str, steps: int, batch: int) -> dict:
    """In this process: ``steps`` SGD steps of ``variant``; the digest of its parameters and the step times."""
    import torch

    from pcn.pipeline.build import InputSpec, build_model
    from pcn.schema import load_params_file
    from pcn.train.epoch import build_optimizer

    params = load_params_file(ROOT / "params.yaml")
    torch.manual_seed(0)
    model = build_model(params.network, params.filters, params.models[variant], InputSpec(1, 28, 10))
    optimizer = build_optimizer(model, 0.01, 0.9, 1e-4)
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(batch, 1, 28, 28, generator=generator)  # (B, 1, 28, 28)
    labels = torch.randint(0, 10, (batch,), generator=generator)  # (B,)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    state = b"".join(t.detach().contiguous().numpy().tobytes() for t in model.state_dict().values())
    return {
        "sha256": hashlib.sha256(state).hexdigest(),
        "step_seconds": statistics.median(times[1:] or times),
        "capability": torch.backends.cpu.get_cpu_capability(),
    }


def run_setting(setting: str, variant: str, steps: int, batch: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_NUM", "MKL_", "ATEN_"))}
    env.update({"OMP_WAIT_POLICY": "PASSIVE", **SETTINGS[setting]})
    cmd = [sys.executable, __file__, "--worker", variant, "--steps", str(steps), "--batch", str(batch)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def summarize(results: dict) -> dict:
    """Per setting: its digests, whether they agree with each other setting, its median step time and ratio."""
    digests = {s: {v: r[0]["sha256"] for v, r in per.items()} for s, per in results.items()}
    base = next(iter(results))
    seconds = {s: statistics.median(t["step_seconds"] for r in per.values() for t in r) for s, per in results.items()}
    return {
        s: {
            "digests": digests[s],
            "capability": next(iter(per.values()))[0]["capability"],
            "agrees_with": [o for o in results if o != s and digests[o] == digests[s]],
            "median_step_seconds": seconds[s],
            "time_ratio_to_default": seconds[s] / seconds[base],
        }
        for s, per in results.items()
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=["modulus", "modulus_skip", "soft_threshold"])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--steps", type=int, default=4, help="SGD steps per measurement")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds over the settings")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "reproducibility.json"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(args.worker, args.steps, args.batch)))
        return
    results = {s: {v: [] for v in args.variants} for s in args.settings}
    for _ in range(args.rounds):
        for setting in args.settings:
            for variant in args.variants:
                results[setting][variant].append(run_setting(setting, variant, args.steps, args.batch))
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "steps": args.steps,
        "batch": args.batch,
        "rounds": args.rounds,
        "settings": {s: SETTINGS[s] for s in args.settings},
        "results": summarize(results),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    for setting, r in report["results"].items():
        same = ", ".join(r["agrees_with"]) or "none"
        time_taken = f"{r['median_step_seconds']:.3f} s/step ({r['time_ratio_to_default']:.2f}x)"
        print(f"{setting:32s} {time_taken}  same bytes as: {same}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
