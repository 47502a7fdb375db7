"""Training throughput of our implementation against the reference's FFT formulation.

For each preset (CIFAR-10 LScat+skip, ImageNet LScat by default) and each implementation
(``ours``: split real/complex features, real-channel savings in Pc, filtering backend
chosen per block; ``reference``: :class:`pcn.nn.reference.ReferenceFFTNet`, native complex
tensors, FFT filtering and 4-multiplication complex Pc for every channel), one training
step (forward + backward + SGD step) on random data is timed after warm-up. Every
measurement runs in its own subprocess so that the peak memory (max RSS on CPU, peak
allocated on CUDA) belongs to it alone; the two implementations alternate over ``--rounds``
rounds so that drifts in the speed of a shared machine hit both, and the table reports the
median over rounds. Before timing, the two implementations are checked to give the same
logits on the same batch. Both run with :func:`pcn.train.device.retain_freed_memory` (what the
train stage does on CPU) unless ``--default-malloc`` is given.

Usage::

    python bench/throughput.py                       # CPU, both presets
    python bench/throughput.py --device cuda --batch 128 --amp

Prints a table and writes bench/out/throughput.json. The device's matmul and copy-bandwidth
ceilings are measured first (``bench/ceilings.py``); "of mm" is the useful FLOP rate of the
Pc matrix products (:func:`projection_flops`) over the whole step, as a fraction of the
matmul ceiling.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from networks import NETWORKS  # noqa: E402

#: ``ours``: pcn's network (fused Pc(Std)); ``reference``: the authors' formulation (pcn/nn/reference.py);
#: ``plain``: pcn's network with the readable Std -> Pc modules instead of the fused function.
IMPLEMENTATIONS = ("ours", "reference", "plain")
#: Every network a measurement may name (the device check measures both CIFAR-10 ones).
PRESETS = dict(NETWORKS)
#: What the command measures when ``--presets`` is not given.
DEFAULT_PRESETS = ("cifar10_lscat_skip", "imagenet_lscat")


def true_float32() -> None:
    """Float32 products in float32 on a GPU, for both implementations: cuDNN's default TF32 convolutions would
    run the reference's ``conv2d`` Pc in lower precision than pcn's matrix products (on an H200 the logits
    then differed by 5.6e-3 relative, against 5e-6 on a CPU; bench/RESULTS.md, GPU)."""
    import torch

    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def build(preset: str, impl: str, device: str, compile_model: bool):
    """The config, the network (``ours``/``plain``: pcn's; ``reference``: the authors' formulation wrapping the
    same weights) and what a step calls (compiled for ``ours`` with ``compile_model``)."""
    import torch

    from pcn.nn.phase_collapse import PhaseCollapseConfig, PhaseCollapseNet
    from pcn.nn.reference import ReferenceFFTNet

    true_float32()
    torch.manual_seed(0)
    cfg = PhaseCollapseConfig(**PRESETS[preset], fused_projection=impl != "plain")
    model = PhaseCollapseNet(cfg).to(device).train()
    net = ReferenceFFTNet(model) if impl == "reference" else model
    if compile_model and impl == "ours":
        net = torch.compile(net)
    return cfg, model, net


def measure(
    preset: str,
    impl: str,
    batch: int,
    steps: int,
    device: str,
    amp: bool,
    channels_last: bool,
    compile_model: bool,
    threads: int,
    retain_memory: bool,
    warmup: int,
) -> dict:
    import torch

    from pcn.nn.phase_collapse import count_parameters
    from pcn.train.device import retain_freed_memory
    from pcn.train.epoch import build_optimizer

    retained = retain_freed_memory() if retain_memory else False  # before the first allocation
    if threads:
        torch.set_num_threads(threads)
    cfg, model, net = build(preset, impl, device, compile_model)
    opt = build_optimizer(model, lr=1e-3, momentum=0.9, weight_decay=1e-4)  # the train stage's (fused) SGD
    x = torch.randn(batch, cfg.in_channels, cfg.image_size, cfg.image_size, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, cfg.num_classes, (batch,), device=device)
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=amp)

    def step():
        with autocast:
            logits = net(x)
        loss = torch.nn.functional.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    times, cpu_times, peak = timed_steps(step, steps, warmup, device)
    median = statistics.median(times)
    return {
        "preset": preset,
        "impl": impl,
        "batch": batch,
        "steps": steps,
        "warmup": warmup,
        "median_step_s": median,
        "median_step_cpu_s": statistics.median(cpu_times),
        "images_per_s": batch / median,
        "peak_memory_bytes": peak,
        "peak_memory_kind": "cuda_max_allocated" if device == "cuda" else "process_max_rss",
        "n_parameters": count_parameters(model),
        "projection_flops": projection_flops(model, batch, impl, amp),
        "device": device,
        "amp": amp,
        "compile": compile_model,
        "retain_freed_memory": retained,
        "backends": [b.wavelet.backend_name for b in model.blocks],
    }


def timed_steps(step, steps: int, warmup: int, device: str) -> tuple[list[float], list[float], int]:
    """Wall and CPU seconds of each of ``steps`` calls of ``step`` after ``warmup`` untimed ones, and the peak
    memory in bytes (CUDA: the allocator's peak over the timed steps; CPU: the process's maximum RSS)."""
    import torch

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):  # the first steps page-fault while the allocator's pools grow
        step()
    sync()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times, cpu_times = [], []
    for _ in range(steps):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        sync()
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.process_time() - c0)
    return times, cpu_times, peak_memory(device)


def peak_memory(device: str) -> int:
    """Peak memory in bytes: CUDA's allocator peak since its last reset, or the process's maximum RSS."""
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def projection_flops(model, batch: int, impl: str, amp: bool = False) -> int:
    """Real FLOPs of the Pc matrix products in one training step (forward + 2 backward products).

    Per output channel, pixel and sample: ``3 Cc + 2 Cr`` real multiply-adds for ours in float32
    (Gauss's form, real channels at half cost), ``4 (Cc + Cr)`` for the reference formulation and
    under autocast (bf16: the 4-multiplication form, pcn/nn/fused_projection.py).
    """
    total = 0
    for block in model.blocks:
        proj, pixels = block.proj, block.out_size**2
        per_output = (
            3 * proj.n_complex + 2 * proj.n_real if impl == "ours" and not amp else 4 * (proj.n_complex + proj.n_real)
        )
        total += 3 * 2 * batch * pixels * proj.out_channels * per_output
    return total


def check_equal(preset: str, device: str) -> float:
    """Max relative difference of logits between the two implementations on a small batch."""
    import torch

    from pcn.nn.phase_collapse import PhaseCollapseConfig, PhaseCollapseNet
    from pcn.nn.reference import ReferenceFFTNet

    true_float32()
    torch.manual_seed(0)
    model = PhaseCollapseNet(PhaseCollapseConfig(**PRESETS[preset])).to(device).train()
    x = torch.randn(2, 3, model.cfg.image_size, model.cfg.image_size, device=device)
    with torch.no_grad():
        a, b = model(x), ReferenceFFTNet(model)(x)
    return float((a - b).abs().max() / b.abs().max())


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=list(DEFAULT_PRESETS), choices=list(PRESETS))
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batch", type=int, default=0, help="images per step (default: 8 CPU CIFAR, 2 CPU ImageNet)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=4, help="untimed steps before them")
    parser.add_argument("--amp", action="store_true", help="bf16 autocast of the Pc matrix products")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true", help="torch.compile our model")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of the implementations")
    parser.add_argument(
        "--impls",
        nargs="+",
        default=["ours", "reference"],
        choices=IMPLEMENTATIONS,
        help="ours, the reference formulation, and/or ours with the plain Std -> Pc modules",
    )
    parser.add_argument("--default-malloc", action="store_true", help="do not call retain_freed_memory")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "throughput.json"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    return parser.parse_args()


def run_rounds(args) -> tuple[list[dict], dict]:
    """Every (preset, implementation) measurement, alternating implementations over rounds."""
    rows, checks = [], {}
    for preset in args.presets:
        checks[preset] = check_equal(preset, args.device)
        batch = args.batch or (8 if preset.startswith("cifar") else 2) * (16 if args.device == "cuda" else 1)
        for round_index in range(args.rounds):
            for impl in args.impls:
                cmd = [
                    sys.executable,
                    __file__,
                    "--worker",
                    f"{preset}:{impl}:{batch}",
                    "--steps",
                    str(args.steps),
                    "--warmup",
                    str(args.warmup),
                    "--device",
                    args.device,
                    "--threads",
                    str(args.threads),
                ]
                cmd += ["--amp"] * args.amp + ["--channels-last"] * args.channels_last + ["--compile"] * args.compile
                cmd += ["--default-malloc"] * args.default_malloc
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                rows.append({**json.loads(out.strip().splitlines()[-1]), "round": round_index})
    return rows, checks


def summarize_preset(preset: str, rows: list[dict], ceilings: dict, result: dict) -> list[str]:
    """Medians over rounds per implementation, and the ratio of each to ours; printed lines."""
    lines, medians, cpu_medians = [], {}, {}
    impls = list(dict.fromkeys(r["impl"] for r in rows if r["preset"] == preset))
    for impl in impls:
        runs = [r for r in rows if r["preset"] == preset and r["impl"] == impl]
        step = statistics.median(r["median_step_s"] for r in runs)
        cpu = statistics.median(r["median_step_cpu_s"] for r in runs)
        peak = max(r["peak_memory_bytes"] for r in runs)
        medians[impl], cpu_medians[impl] = step, cpu
        # Pc products' useful FLOP rate over the whole step, as a fraction of the matmul ceiling
        matmul_fraction = runs[0]["projection_flops"] / step / ceilings["matmul_float32_flops"]
        result["summary"].append(
            {
                "preset": preset,
                "impl": impl,
                "batch": runs[0]["batch"],
                "median_step_s": step,
                "median_step_cpu_s": cpu,
                "images_per_s": runs[0]["batch"] / step,
                "peak_memory_bytes": peak,
                "projection_flops": runs[0]["projection_flops"],
                "projection_matmul_fraction": matmul_fraction,
            }
        )
        lines.append(
            f"{preset:22s} {impl:10s} {runs[0]['batch']:5d} {runs[0]['batch'] / step:9.2f} {step:8.3f} "
            f"{cpu:8.3f} {peak / 2**20:9.0f} {runs[0]['projection_flops'] / 1e9:8.1f} {matmul_fraction:7.0%}"
        )
    for other in (i for i in impls if i != "ours" and "ours" in impls):
        per_round = [
            o["median_step_s"] / ours["median_step_s"]
            for ours, o in zip(
                *[[r for r in rows if r["preset"] == preset and r["impl"] == impl] for impl in ("ours", other)]
            )
        ]
        wall, cpu = medians[other] / medians["ours"], cpu_medians[other] / cpu_medians["ours"]
        result["speedup"].setdefault(preset, {})[other] = wall
        result["speedup_cpu_time"].setdefault(preset, {})[other] = cpu
        lines.append(
            f"{preset}: ours / {other} = {wall:.2f}x wall (per round: "
            f"{', '.join(f'{x:.2f}' for x in per_round)}), {cpu:.2f}x CPU time"
        )
    lines.append(
        f"{preset}: logits max rel. difference ours vs reference {result['max_relative_logit_difference'][preset]:.1e}"
    )
    return lines


def main() -> None:
    args = parse_args()
    if args.worker:
        preset, impl, batch = args.worker.split(":")
        print(
            json.dumps(
                measure(
                    preset,
                    impl,
                    int(batch),
                    args.steps,
                    args.device,
                    args.amp,
                    args.channels_last,
                    args.compile,
                    args.threads,
                    not args.default_malloc,
                    args.warmup,
                )
            )
        )
        return
    from ceilings import measure as measure_ceilings

    ceilings = measure_ceilings(args.device)
    rows, checks = run_rounds(args)
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "processor": platform.processor() or platform.machine(),
        "rows": rows,
        "max_relative_logit_difference": checks,
        "speedup": {},
        "speedup_cpu_time": {},
        "summary": [],
        "ceilings": ceilings,
    }
    print(
        f"matmul ceiling {ceilings['matmul_float32_flops'] / 1e9:.0f} GFLOP/s, copy bandwidth "
        f"{ceilings['copy_bandwidth_bytes_per_s'] / 1e9:.1f} GB/s ({ceilings['device_name']})"
    )
    print(
        f"{'preset':22s} {'impl':10s} {'batch':>5s} {'img/s':>9s} {'step s':>8s} {'cpu s':>8s} {'peak MiB':>9s}"
        f" {'Pc GFLOP':>8s} {'of mm':>7s}  (median of rounds)"
    )
    for preset in args.presets:
        print("\n".join(summarize_preset(preset, rows, ceilings, result)))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
