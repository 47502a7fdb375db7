"""Checkpoints: written atomically, read with ``weights_only=True`` so that a file can never run code.

A training checkpoint holds plain data only (tensors, numbers, strings, lists and dicts):
the model and optimizer states, the :class:`~pcn.train.loop.TrainingState`, the torch random
states as byte tensors, and the **resume key** with its parts. The key identifies
everything the run depends on (the stage's params, the source files it imports, the data
card, the filter bank); a checkpoint is resumed only under the same key, and
:func:`pcn.mappings.differences` says what changed otherwise.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch

from pcn.files import sha256_json, torch_save


class CheckpointError(RuntimeError):
    """A checkpoint or model file cannot be used (unreadable, or refused as unsafe)."""


def resume_key(parts: dict[str, object]) -> str:
    """SHA-256 of the parts (each JSON-able: a params dict, ``{file: sha256}``, a digest...)."""
    return sha256_json(parts)


def rng_state() -> dict:
    """The torch CPU (and CUDA) random states, as tensors."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(path: Path, obj: dict) -> None:
    """``torch.save`` atomically (see :func:`pcn.files.atomic_write`)."""
    torch_save(path, obj)


def load(path: Path, what: str = "checkpoint") -> dict | None:
    """The plain-data file at ``path`` (None if there is none).

    Raises :class:`CheckpointError` naming the file if it is unreadable, or if it holds
    anything but plain data (a pickle that would import or call code is refused unread).
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"(?:unsupported|Unsupported global:) GLOBAL (\S+)", str(exc))
        if found:
            raise CheckpointError(
                f"{what} {path} was refused: it is not a plain weights file, and loading it "
                f"would import and call {found.group(1)}. Nothing was run; delete it if you did "
                f"not create it (rm '{path}')."
            ) from exc
        lines = [line for line in str(exc).splitlines() if line.strip() and "documentation" not in line]
        raise CheckpointError(
            f"{what} {path} is unreadable ({lines[-1].strip()[:200]}); delete it to start over"
        ) from exc
    except Exception as exc:  # truncated zip, not a torch file, ...
        raise CheckpointError(
            f"{what} {path} is unreadable ({type(exc).__name__}: {exc}); delete it to start over"
        ) from exc
    if not isinstance(obj, dict):
        raise CheckpointError(f"{what} {path} holds a {type(obj).__name__}, not a mapping; delete it to start over")
    return obj
