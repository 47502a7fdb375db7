"""The benchmark commands cannot rot: the device check's CPU dry mode, and every command bench/RESULTS.md documents.

Each command runs for real, at the smallest sizes its options allow, on the CPU where the document
says ``--device cuda``, without ``--compile`` (minutes of compilation on a CPU; compiled training is
tested in tests/train) and with one competing load for ``--contention``; the device check by its own
test below, in its dry mode. The figures are not checked, the commands and their JSON are.
"""

import json
import re
import shlex
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow

#: Options that shrink a documented command to a smoke test: option -> value (None: a flag).
SHRINK = {"--steps": "1", "--warmup": "1", "--rounds": "1", "--images": "64", "--batch": "2", "--decode": "4"}
SHRINK.update({"--scale": "tiny", "--stages": "2", "--seconds": "0.1"})  # parallel.py: a seconds-long pipeline
SHRINK.update({"--batches": "2", "--profile-batch": "2", "--profile-steps": "1", "--top": "3"})  # profile_step.py
#: What each script accepts (its argparse options), so that only accepted options are added.
ACCEPTS = {
    "throughput.py": {"--steps", "--warmup", "--rounds", "--batch"},
    "epoch.py": {"--steps", "--warmup", "--rounds", "--images", "--batch"},
    "ceilings.py": set(),
    "parallel.py": {"--rounds", "--scale", "--stages", "--seconds"},
    "profile_step.py": {"--steps", "--batches", "--profile-batch", "--profile-steps", "--top"},
}


def documented_commands() -> list[str]:
    """Every ``python bench/...`` command of bench/RESULTS.md (in code blocks and inline code)."""
    text = (ROOT / "bench/RESULTS.md").read_text()
    found = re.findall(r"(?m)^(python bench/[^\n#`]+)", text) + re.findall(r"`(python bench/[^`]+)`", text)
    return sorted({c.strip() for c in found})


def shrunk(command: str, out: str) -> list[str]:
    words = shlex.split(command)[1:]
    script = words[0].split("/")[-1]
    args, i = [], 1
    while i < len(words):
        word = words[i]
        if word in SHRINK and word != "--decode":
            i += 2  # replaced below
            continue
        if word == "--decode":
            args += [word, SHRINK[word]]
            i += 2
            continue
        if word != "--compile":
            args.append("cpu" if word == "cuda" else word)
        i += 1
    if "--contention" in args:
        args += ["--loads", "busy_half"]
    for option in sorted(ACCEPTS[script]):
        args += [option, SHRINK[option]]
    if script != "ceilings.py":
        args += ["--out", out]
    return [sys.executable, str(ROOT / "bench" / script), *args]


def test_results_documents_the_commands_it_runs():
    commands = documented_commands()
    scripts = {shlex.split(c)[1].split("/")[-1] for c in commands}
    assert {"throughput.py", "epoch.py", "ceilings.py", "device_check.py"} <= scripts, commands


@pytest.mark.parametrize("command", [c for c in documented_commands() if "device_check" not in c])
def test_documented_command_runs(command, tmp_path):
    cmd = shrunk(command, str(tmp_path / "out.json"))
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}"
    if "--out" in cmd:
        json.loads((tmp_path / "out.json").read_text())


def test_device_check_dry_mode_runs_every_part(tmp_path):
    out = tmp_path / "check.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench/device_check.py"), "--dry", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    parts = json.loads(out.read_text())["parts"]
    assert {name: p["status"] for name, p in parts.items()} == {
        name: "ok"
        for name in ("environment", "ceilings", "throughput", "end_to_end", "imagenet", "input", "train_stage", "ddp")
    }
    result = {name: p["result"] for name, p in parts.items()}
    assert {"matmul_float32_flops", "matmul_bfloat16_flops", "copy_bandwidth_bytes_per_s"} <= set(result["ceilings"])
    combos = {(r["impl"], r["amp"]) for r in result["throughput"]["rows"]}
    assert combos == {("ours", False), ("ours", True), ("reference", False), ("reference", True)}
    for stage in ("train_stage", "ddp"):  # the stage's own code path: 2 epochs, checkpoint, model
        r = result[stage]
        assert r["epochs"] == 2 and r["model_saved"] and "last.pt" in r["checkpoint_files"], r
    assert result["ddp"]["world_size"] == 2 and result["imagenet"]["largest_batch"] == 2
    assert "summary" not in done.stderr and "Pc/ceiling" in done.stdout


def test_a_part_out_of_time_keeps_the_others():
    sys.path.insert(0, str(ROOT / "bench"))
    import device_check

    results = {
        "parts": {
            "input": device_check.run_part("input", True, 0.001),
            "environment": device_check.run_part("environment", True, 60),
        }
    }
    assert results["parts"]["input"]["status"] == "timeout" and results["parts"]["environment"]["status"] == "ok"
    assert any(line.startswith("input        timeout") for line in device_check.summary(results))


def test_a_part_out_of_time_keeps_the_rows_it_finished(monkeypatch):
    sys.path.insert(0, str(ROOT / "bench"))
    import device_check

    def timed_out(cmd, **kwargs):
        raise subprocess.TimeoutExpired(
            cmd,
            1.0,
            output=b'{"rows": [{"batch": 32}]}\n{"rows": [{"batch": 32}, {"batch": 64}]}\n',
            stderr=b"still measuring batch 128",
        )

    monkeypatch.setattr(device_check.subprocess, "run", timed_out)
    r = device_check.run_part("imagenet", False, 1.0)
    assert r["status"] == "timeout" and r["result"]["rows"] == [{"batch": 32}, {"batch": 64}]
    assert "batch 128" in r["detail"]
