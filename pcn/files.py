"""Files: atomic writes (a reader, or a crash, sees the previous file or the new one, never a torn one) and digests."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def current_umask() -> int:
    """The process's umask, read without changing it (``/proc/self/status`` on Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: read it by setting it, and put it back
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(f)`` on a temporary file beside ``path``, fsync it, then rename it over ``path``.

    The temporary file is removed if ``write`` raises (or the process is interrupted), and
    ``path`` keeps its previous content. The file gets the permissions a plain ``open`` would give it
    (``0o666`` less the process's umask), not the temporary file's private ``0o600``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~current_umask())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def write_json(path: Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_csv(path: Path, rows: list[dict]) -> None:
    """Rows of one dict each (the first row's keys are the header); floats with 6 significant digits."""

    def cell(v) -> str:
        return f"{v:.6g}" if isinstance(v, float) else str(v)

    keys = list(rows[0])
    lines = [",".join(keys)] + [",".join(cell(r[k]) for k in keys) for r in rows]
    write_text(path, "\n".join(lines) + "\n")


def torch_save(path: Path, obj) -> None:
    """``torch.save`` atomically."""
    import torch

    atomic_write(path, lambda f: torch.save(obj, f))


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes (``algorithm``: any :func:`hashlib.new` name)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_json(obj) -> str:
    """SHA-256 of ``obj`` as canonical JSON (sorted keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def save_png(fig, path: Path) -> None:
    """Write the matplotlib figure ``fig`` (a ``matplotlib.figure.Figure``) to ``path`` as a PNG atomically
    (a reader never sees a torn image)."""
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=90))
