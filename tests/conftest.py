import copy
import os
import signal
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "stages"))  # the stage helpers (common, preset, ...) for the tests
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# A suite started in the background by a non-interactive shell (`cmd &`, nohup) inherits SIGINT ignored, and so
# would every stage it starts: the Ctrl-C tests need the default disposition, whatever launched pytest.
signal.signal(signal.SIGINT, signal.default_int_handler)


def read_yaml(path: Path):
    """A params file as DVC and the stages read it (YAML 1.2)."""
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True).load(Path(path).read_text())


@pytest.fixture
def default_params() -> dict:
    return read_yaml(ROOT / "params.yaml")


def tiny_params(base: dict, variants=("modulus", "soft_threshold"), epochs: int = 1, seeds=(0,)) -> dict:
    """A seconds-long configuration: synthetic 16x16 gratings, 2 small blocks."""
    p = copy.deepcopy(base)
    p["data"].update(
        name="synthetic", synthetic={"n_train": 64, "n_test": 32, "image_size": 16, "channels": 1, "classes": 4}
    )
    p["filters"]["factorize_from"] = 0
    p["network"]["widths"] = [4, 8]
    p["variants"] = list(variants)
    p["seeds"] = list(seeds)
    p["train"].update(epochs=epochs, batch_size=16)
    p["evaluate"]["batch_size"] = 32
    p["runtime"].update(progress=False, log_models=False, system_metrics=False)
    return p
