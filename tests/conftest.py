import copy
import os
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture
def default_params() -> dict:
    with open(ROOT / "params.yaml") as f:
        return yaml.safe_load(f)


def tiny_params(base: dict, variants=("modulus", "soft_threshold"), epochs: int = 1) -> dict:
    """A seconds-long configuration: synthetic 16x16 gratings, 2 small blocks."""
    p = copy.deepcopy(base)
    p["data"].update(name="synthetic", synthetic={"n_train": 64, "n_test": 32, "image_size": 16, "channels": 1,
                                                  "classes": 4})
    p["filters"]["factorize_from"] = 0
    p["network"]["widths"] = [4, 8]
    p["variants"] = list(variants)
    p["train"].update(epochs=epochs, batch_size=16, progress=False)
    p["evaluate"]["batch_size"] = 32
    return p
