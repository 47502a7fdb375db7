"""The training device and the CPU allocator setting: chosen and applied only when asked."""

import subprocess
import sys


def test_retain_freed_memory_applies_on_glibc():
    import platform

    from pcn.train.device import retain_freed_memory

    applied = retain_freed_memory()
    assert applied is (platform.system() == "Linux" and platform.libc_ver()[0] == "glibc")


def test_choosing_a_device_changes_nothing_in_the_process():
    """select_device is pure: the allocator setting is the stages' explicit call (stages/train.py)."""
    probe = (
        "import pcn.train.device as d; called = []; d.retain_freed_memory = lambda: called.append(1); "
        "print(d.select_device('cpu'), called)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "cpu []"
