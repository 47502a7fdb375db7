"""Stages are plain processes (no warm interpreter whose namespace, cgroup or priority they would inherit), and an
expected failure is one line (issue 32)."""

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_every_stage_command_is_a_plain_python_process():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        cmd = stage.get("do", stage)["cmd"]
        assert cmd == f"python stages/{name}.py", (name, cmd)
        assert (ROOT / "stages" / f"{name}.py").is_file()


def test_a_refused_link_in_a_stage_is_one_line_naming_it(tmp_path):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "m-0").symlink_to(tmp_path)
    probe = (
        "import sys; sys.path.insert(0, 'stages'); from process_defaults import set_process_defaults; "
        "set_process_defaults(); from pcn.files import write_text; "
        f"write_text(__import__('pathlib').Path({str(tmp_path / 'checkpoints' / 'm-0' / 'last.pt')!r}), 'x')"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'checkpoints' / 'm-0'} is a link (to {tmp_path}); pcn does not write through links: "
        "remove it"
    ]
