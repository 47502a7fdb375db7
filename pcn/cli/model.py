"""``pcn model load <name>@<alias>``: load a registered model only after verifying it is the one pcn registered.

Every file of the model version is checked against the SHA-256 digests recorded when it was registered, and its
``MLmodel`` and the files it names against pcn's format (:mod:`pcn.tracking.verified`), before torch or MLflow's
loader reads any of them. A mismatch, a missing or added file, another format or loader is refused by name.
``--predict images.npy`` then runs the model on uint8 pixels (N, C, H, W) and prints the predicted classes.
The Python form is ``pcn.tracking.verified.load_model("pcn-modulus@current").predict(images)``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pcn.cli.project import find_root

SUMMARY = "load a registered model after verifying its files (pcn model load pcn-modulus@current)"
EXAMPLE = """examples:
  pcn model load pcn-modulus@current
  pcn model load pcn-modulus/3 --predict images.npy
  pcn model load pcn-modulus@current --uri http://127.0.0.1:5000"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["load"], help="load: verify, then load (and optionally predict)")
    parser.add_argument("model", help="<name>@<alias> or <name>/<version>")
    parser.add_argument("--uri", default=None, help="the tracking store (default: the project's mlflow.db)")
    parser.add_argument("--predict", type=Path, help="a .npy file of images to classify (loaded without pickle)")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    import numpy as np

    from pcn.tracking.model_input import ModelInputError
    from pcn.tracking.store import default_tracking_uri
    from pcn.tracking.verified import ModelVerificationError, load_model

    uri = args.uri or default_tracking_uri(find_root())
    try:
        model = load_model(args.model, uri)
        print(f"{model.label}: every file verified; takes {model.dtype} {model.shape}")
        if args.predict:
            logits = np.asarray(model.predict(np.load(args.predict, allow_pickle=False)))
            print(" ".join(str(int(k)) for k in logits.argmax(1)))
    except (ModelVerificationError, ModelInputError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
