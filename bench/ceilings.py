"""Measured ceilings of a device: dense matrix-multiply rate and memory bandwidth.

These are the denominators of the "fraction of the ceiling" figures in ``bench/RESULTS.md``:

* matmul: median time of ``C = A B`` for square float32 matrices (``n = 2048`` on CPU,
  ``8192`` on CUDA, where bf16 is measured too), reported as :math:`2 n^3 / t` FLOP/s;
* bandwidth: median time of copying a large float32 tensor (256 MiB on CPU, 2 GiB on CUDA),
  reported as bytes read plus bytes written per second.

Usage::

    python bench/ceilings.py [--device cuda]      # prints and writes bench/out/ceilings_<device>.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def _median_seconds(fn, device: str, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_flops(device: str, dtype: torch.dtype, n: int, repeats: int = 5) -> float:
    """FLOP/s of an n x n x n matrix product."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    return 2 * n**3 / _median_seconds(lambda: a @ b, device, repeats)


def copy_bandwidth(device: str, n_bytes: int, repeats: int = 5) -> float:
    """Bytes per second (read + write) of a device-to-device copy."""
    src = torch.empty(n_bytes // 4, device=device, dtype=torch.float32).uniform_()
    dst = torch.empty_like(src)
    return 2 * n_bytes / _median_seconds(lambda: dst.copy_(src), device, repeats)


def measure(device: str) -> dict:
    cuda = device == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = False
    out = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": device,
        "device_name": torch.cuda.get_device_name() if cuda else f"cpu ({torch.get_num_threads()} threads)",
        "matmul_float32_flops": matmul_flops(device, torch.float32, 8192 if cuda else 2048),
        "copy_bandwidth_bytes_per_s": copy_bandwidth(device, (2 << 30) if cuda else (256 << 20)),
    }
    if cuda:
        out["matmul_bfloat16_flops"] = matmul_flops(device, torch.bfloat16, 8192)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --device cuda but no CUDA device is available")
    result = measure(args.device)
    for key, value in result.items():
        if key.endswith("flops"):
            print(f"{key}: {value / 1e9:.1f} GFLOP/s")
        elif key.endswith("per_s"):
            print(f"{key}: {value / 1e9:.1f} GB/s")
        else:
            print(f"{key}: {value}")
    out = Path(args.out or ROOT / "bench" / "out" / f"ceilings_{args.device}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
