"""Training images per second end to end (data + step), of the input pipeline alone, and under CPU contention.

Per preset (random data of the preset's image size and classes, the preset's architecture):

* ``input``: :class:`pcn.data.batches.DeviceBatches` alone (index, CIFAR augmentation of the
  whole batch on the device, normalization) over one epoch of ``--images`` images;
* ``train``: :func:`pcn.train.epoch.train_one_epoch` fed by those batches (data + forward + backward +
  SGD), after warm-up steps, as images/s, with the Pc products' FLOP rate as a fraction of the
  device's measured matmul ceiling (``bench/ceilings.py``);
* ``contention`` (``--contention``, CPU): ``train`` beside a competing process (a one-thread busy
  loop, always or half of each 10 ms; or another pcn training with the same OpenMP setting), for
  several OpenMP settings, alternating over ``--rounds`` rounds;
* ``decode`` (``--decode``): the ImageNet loader (JPEG decode, RandomResizedCrop, flip, tensor) on
  synthetic 500x375 JPEGs, in loader worker processes.

Each measurement runs in its own process (so thread settings apply from the start). Results
are printed and written as JSON (``--out``, default ``bench/results/<date>-<device>.json``) with
the date, device, torch version and host.

    python bench/epoch.py                                  # CPU: every preset, input + train
    python bench/epoch.py --presets cifar10_lscat_skip --contention
    python bench/epoch.py --device cuda --amp --compile --channels-last
"""

from __future__ import annotations

import argparse
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
sys.path.insert(0, str(ROOT / "bench"))
from networks import NETWORKS  # noqa: E402

PRESETS = dict(NETWORKS)
#: Competing loads of ``--contention``: none, a one-thread busy loop half or all of the time, another pcn training.
LOADS = ("idle", "busy_half", "busy_full", "pcn_pair")
#: OpenMP settings compared under contention (environment of the measuring process).
THREAD_SETTINGS = {
    "default": {},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "spin3000": {"GOMP_SPINCOUNT": "3000"},
    "threads1": {"PCN_BENCH_THREADS": "1"},
}


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _batches(preset: str, images: int, batch: int, device: str):
    import numpy as np
    import torch

    from pcn.data.batches import DeviceBatches

    cfg = PRESETS[preset]
    rng = np.random.default_rng(0)
    shape = (images, cfg["in_channels"], cfg["image_size"], cfg["image_size"])
    data = rng.integers(0, 256, shape, dtype=np.uint8)
    labels = rng.integers(0, cfg["num_classes"], images).astype(np.int64)
    return DeviceBatches(
        data,
        labels,
        [0.5] * cfg["in_channels"],
        [0.25] * cfg["in_channels"],
        batch,
        torch.device(device),
        shuffle=True,
        augment=cfg["image_size"] == 32,
        seed=0,
    )


def measure_input(preset: str, images: int, batch: int, device: str) -> dict:
    batches = _batches(preset, images, batch, device)
    for _ in batches.epoch(0):  # warm-up epoch
        pass
    _sync(device)
    start = time.perf_counter()
    total = 0
    for x, _ in batches.epoch(1):
        total += x.shape[0]
    _sync(device)
    seconds = time.perf_counter() - start
    return {
        "kind": "input",
        "preset": preset,
        "batch": batch,
        "images": total,
        "seconds": seconds,
        "images_per_s": total / seconds,
        "augment": batches.augment,
    }


def measure_train(
    preset: str, steps: int, warmup: int, batch: int, device: str, amp: bool, compile_model: bool, channels_last: bool
) -> dict:
    import torch
    from throughput import peak_memory, projection_flops

    from pcn.nn.phase_collapse import PhaseCollapseConfig, PhaseCollapseNet
    from pcn.train.device import retain_freed_memory
    from pcn.train.epoch import build_optimizer, train_one_epoch

    if device == "cpu":
        retain_freed_memory()
    if os.environ.get("PCN_BENCH_THREADS"):
        torch.set_num_threads(int(os.environ["PCN_BENCH_THREADS"]))
    torch.manual_seed(0)
    model = PhaseCollapseNet(PhaseCollapseConfig(**PRESETS[preset])).to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    net = torch.compile(model) if compile_model else model
    opt = build_optimizer(model, 1e-3, 0.9, 1e-4)
    batches = _batches(preset, batch * (warmup + steps), batch, device)
    dev = torch.device(device)

    class Slice:  # the first n batches of an epoch
        def __init__(self, n, epoch):
            self.n, self.e = n, epoch

        def __iter__(self):
            for i, b in enumerate(batches.epoch(self.e)):
                if i == self.n:
                    return
                yield b

    train_one_epoch(net, Slice(warmup, 0), opt, dev, 0, warmup, amp, channels_last)
    _sync(device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    stats = train_one_epoch(net, Slice(steps, 1), opt, dev, 1, steps, amp, channels_last)
    _sync(device)
    seconds = time.perf_counter() - start
    peak = peak_memory(device)
    flops = projection_flops(model, batch, "ours", amp) * steps
    return {
        "kind": "train",
        "preset": preset,
        "batch": batch,
        "steps": steps,
        "seconds": seconds,
        "images_per_s": stats.samples / seconds,
        "peak_memory_bytes": peak,
        "pc_flop_rate": flops / seconds,
        "amp": amp,
        "compile": compile_model,
        "channels_last": channels_last,
        "threads": torch.get_num_threads(),
        "backends": [b.wavelet.backend_name for b in model.blocks],
    }


def measure_decode(images: int, workers: int) -> dict:
    """ImageNet loader throughput on synthetic JPEGs (decode + RandomResizedCrop + flip + ToTensor)."""
    import tempfile

    import numpy as np
    from PIL import Image

    from pcn.data.imagenet import default_workers, image_folders, image_loader

    workers = default_workers(1) if workers < 0 else workers
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        for split in ("train", "val"):
            for i in range(images if split == "train" else 2):
                folder = Path(tmp) / split / f"c{i % 4}"
                folder.mkdir(parents=True, exist_ok=True)
                pixels = rng.integers(0, 256, (375, 500, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.jpg", quality=90)
        train, _ = image_folders(tmp, "imagenet")
        loader = image_loader(train, 32, train=True, seed=0, rank=0, world=1, workers=workers, pin_memory=False)
        loader.sampler.set_epoch(0)
        for _ in loader:  # warm-up (starts the workers)
            pass
        loader.sampler.set_epoch(1)
        start = time.perf_counter()
        total = sum(x.shape[0] for x, _ in loader)
        seconds = time.perf_counter() - start
    return {"kind": "decode", "images": total, "workers": workers, "seconds": seconds, "images_per_s": total / seconds}


def run_worker(spec: dict, env_extra: dict | None = None) -> dict:
    """One measurement in a fresh process."""
    env = dict(os.environ, **(env_extra or {}))
    out = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)], env=env, capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def worker(spec: dict) -> dict:
    kind = spec.pop("kind")
    if kind == "input":
        return measure_input(**spec)
    if kind == "train":
        return measure_train(**spec)
    return measure_decode(**spec)


def contention(preset: str, args) -> list[dict]:
    """``train`` with a busy process beside it, for every OpenMP setting, alternating over rounds."""
    rows = []
    busy = (
        "import time\nwhile True:\n    t = time.perf_counter()\n"
        "    while time.perf_counter() - t < {d} * 0.01: pass\n"
        "    time.sleep((1 - {d}) * 0.01) if {d} < 1 else None\n"
    )
    spec = {
        "kind": "train",
        "preset": preset,
        "steps": args.steps,
        "warmup": args.warmup,
        "batch": args.batch or default_batch(preset, args.device),
        "device": args.device,
        "amp": False,
        "compile_model": False,
        "channels_last": False,
    }
    for load in args.loads:
        for round_index in range(args.rounds):
            for name, env_extra in THREAD_SETTINGS.items():
                competitor = None
                if load == "pcn_pair":  # another pcn training with the same setting, started first
                    long_spec = {**spec, "steps": 10_000}
                    competitor = subprocess.Popen(
                        [sys.executable, __file__, "--worker", json.dumps(long_spec)],
                        env=dict(os.environ, **env_extra),
                        stdout=subprocess.DEVNULL,
                    )
                    time.sleep(8)
                elif load != "idle":
                    duty = 0.5 if load == "busy_half" else 1.0
                    competitor = subprocess.Popen([sys.executable, "-c", busy.format(d=duty)])
                    time.sleep(1)
                try:
                    rows.append(
                        {**run_worker(dict(spec), env_extra), "load": load, "setting": name, "round": round_index}
                    )
                finally:
                    if competitor is not None:
                        competitor.kill()
                        competitor.wait()
    return rows


def default_batch(preset: str, device: str) -> int:
    if device == "cuda":
        return 128
    return {"mnist5k": 128, "imagenet_lscat": 2}.get(preset, 8)


def summarize(rows: list[dict], ceilings: dict) -> list[str]:
    lines = []
    for r in rows:
        if r["kind"] == "train" and "load" not in r:
            lines.append(
                f"train   {r['preset']:20s} batch {r['batch']:4d}: {r['images_per_s']:9.1f} img/s, peak "
                f"{r['peak_memory_bytes'] / 2**20:7.0f} MiB, "
                f"Pc {r['pc_flop_rate'] / ceilings['matmul_float32_flops']:.0%} of matmul ceiling"
            )
        elif r["kind"] == "input":
            lines.append(
                f"input   {r['preset']:20s} batch {r['batch']:4d}: {r['images_per_s']:9.0f} img/s "
                f"(augment {r['augment']})"
            )
        elif r["kind"] == "decode":
            lines.append(f"decode  imagenet {r['workers']} workers: {r['images_per_s']:.1f} img/s")
    groups = {}
    for r in rows:
        if "load" in r:
            groups.setdefault((r["preset"], r["load"], r["setting"]), []).append(r["images_per_s"])
    for (preset, load, setting), values in sorted(groups.items()):
        lines.append(
            f"contention {preset:18s} {load:9s} {setting:9s}: {statistics.median(values):8.2f} img/s "
            f"(rounds: {', '.join(f'{v:.2f}' for v in values)})"
        )
    return lines


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batch", type=int, default=0, help="images per step (default: per preset and device)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--images", type=int, default=50_000, help="images of the input-pipeline epoch")
    parser.add_argument("--amp", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--contention", action="store_true")
    parser.add_argument("--decode", type=int, default=0, help="measure the ImageNet loader on this many JPEGs")
    parser.add_argument("--workers", type=int, default=-1, help="loader workers for --decode (-1: auto)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--loads", nargs="+", default=list(LOADS), choices=list(LOADS), help="competing loads for --contention"
    )
    parser.add_argument("--out")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    return parser.parse_args()


def measure_presets(args) -> list[dict]:
    """One row per measurement of every preset: input pipeline and training steps, or the contention grid."""
    rows = []
    for preset in args.presets:
        batch = args.batch or default_batch(preset, args.device)
        if args.contention:
            rows += contention(preset, args)
            continue
        rows.append(
            run_worker({"kind": "input", "preset": preset, "images": args.images, "batch": 128, "device": args.device})
        )
        rows.append(
            run_worker(
                {
                    "kind": "train",
                    "preset": preset,
                    "steps": args.steps,
                    "warmup": args.warmup,
                    "batch": batch,
                    "device": args.device,
                    "amp": args.amp,
                    "compile_model": args.compile,
                    "channels_last": args.channels_last,
                }
            )
        )
    return rows


def main() -> None:
    args = parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    import torch
    from ceilings import measure as measure_ceilings

    ceilings = measure_ceilings(args.device)
    rows = measure_presets(args)
    if args.decode:
        rows.append(run_worker({"kind": "decode", "images": args.decode, "workers": args.workers}))
    lines = summarize(rows, ceilings)
    print("\n".join(lines))
    date = datetime.now(timezone.utc)
    out = Path(args.out or ROOT / "bench" / "results" / f"{date:%Y-%m-%dT%H%M}-{args.device}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "date": date.isoformat(timespec="seconds"),
                "device": ceilings["device_name"],
                "torch": torch.__version__,
                "host": platform.node(),
                "cpus": os.cpu_count(),
                "args": {k: v for k, v in vars(args).items() if k != "worker"},
                "ceilings": ceilings,
                "rows": rows,
                "summary": lines,
            },
            indent=2,
        )
    )
    print(f"written: {out}")


if __name__ == "__main__":
    main()
