"""Files: every file pcn creates or appends to goes through here.

* **No planted link is followed.** Files are opened with ``O_NOFOLLOW``; temporary files with
  ``O_CREAT | O_EXCL`` and a random name, in a folder checked not to be a link (nor any folder between it and the
  repository that holds it). A link in any of those places is refused by name (:class:`UnsafeFileError`).
* **Atomic writes** (:func:`atomic_write`): a reader, or a crash, sees the previous file or the new one, never a
  torn one. A temporary file left by a killed process (its pid is in the name) is removed by the next write in
  its folder.
* **Appends** (:func:`append_bytes`): one ``write`` on a file opened for appending (journals, quarantine).
* **A full disk** (or any other write failure) is one line naming the file (:class:`FileWriteError`); the
  previous file is left intact.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

#: Temporary files: ``.<name>.<pid>.<random>.tmp`` beside the file they become.
TEMP_SUFFIX = ".tmp"


class UnsafeFileError(OSError):
    """A file or folder that pcn writes is a link (planted, or not made by pcn): refused, nothing written."""

    expected = True  # a stage prints it as one line (stages/process_defaults.py)


class FileWriteError(OSError):
    """A file could not be written (disk full, ...); the previous file, if any, is intact."""

    expected = True


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


def _repository_of(folder: Path) -> Path | None:
    """The nearest folder at or above ``folder`` that holds ``dvc.yaml`` or ``.git`` (the repository), or None. A
    link is never the repository (a link to a repository inside one is a planted folder); stages name their files
    from resolved paths, so a repository reached through a link is not an issue for them."""
    for candidate in (folder, *folder.parents):
        if candidate.is_symlink():
            continue
        if (candidate / "dvc.yaml").exists() or (candidate / ".git").exists():
            return candidate
    return None


def safe_folder(folder: Path) -> Path:
    """Create ``folder`` (and its parents) and check that neither it nor any folder between it and its repository
    is a link; returns it. Raises :class:`UnsafeFileError` naming the link."""
    folder = Path(os.path.abspath(folder))
    existing = next(p for p in (folder, *folder.parents) if p.exists() or p.is_symlink())
    repository = _repository_of(existing)
    chain = [folder, *folder.parents]
    chain = chain[: chain.index(repository)] if repository is not None and repository in chain else chain[:1]
    for part in chain:
        if part.is_symlink():
            raise UnsafeFileError(
                errno.ELOOP,
                f"{part} is a link (to {os.readlink(part)}); pcn does not write through links: remove it",
                str(part),
            )
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _refuse_link(path: Path, exc: OSError) -> UnsafeFileError:
    return UnsafeFileError(
        errno.ELOOP, f"{path} is a link; pcn does not write through links: remove it ({exc.strerror})", str(path)
    )


def _write_failed(path: Path, exc: OSError) -> FileWriteError:
    why = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or str(exc))
    return FileWriteError(exc.errno, f"cannot write {path}: {why}; its previous content is intact", str(path))


def open_new(path: Path, mode: int = 0o600) -> int:
    """A file descriptor on a new file ``path``, opened for writing with ``O_CREAT | O_EXCL | O_NOFOLLOW``."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(folder: Path) -> list[Path]:
    """Remove the temporary files in ``folder`` left by processes that are gone (killed mid-write); returns them."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        parts = entry.name.split(".")
        if not (entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIX) and len(parts) >= 5):
            continue
        pid = parts[-3]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            try:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
            except OSError:
                pass
    return removed


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(f)`` on a new temporary file beside ``path``, fsync it, then rename it over ``path``.

    The temporary file is created with ``O_EXCL | O_NOFOLLOW`` and a random name in a folder checked by
    :func:`safe_folder`; it is removed if ``write`` raises (or the process is interrupted), and ``path`` keeps its
    previous content; a write failure raises :class:`FileWriteError` naming ``path``. The rename replaces a link
    at ``path`` itself, never its target. The file gets the permissions a plain ``open`` would give it
    (``0o666`` less the process's umask), not the temporary file's private ``0o600``.
    """
    path = Path(path)
    folder = safe_folder(path.parent)
    remove_stale_temps(folder)
    tmp = folder / f".{path.name}.{os.getpid()}.{secrets.token_hex(6)}{TEMP_SUFFIX}"
    fd = None
    try:
        fd = open_new(tmp)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~current_umask())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        if fd is not None:  # only a file this call created
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, (UnsafeFileError, FileWriteError)):
            raise _write_failed(path, exc) from exc
        raise


def append_bytes(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Append ``data`` to ``path`` in one ``write`` (created owner-only if absent), never through a link."""
    path = Path(path)
    safe_folder(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _refuse_link(path, exc) from exc
        raise _write_failed(path, exc) from exc
    try:
        os.write(fd, data)
    except OSError as exc:
        raise _write_failed(path, exc) from exc
    finally:
        os.close(fd)


def open_lock_file(path: Path, mode: int = 0o600) -> int:
    """A file descriptor on the lock file ``path`` (created owner-only if absent, never truncated), never through a
    link: a planted link is refused by name (:class:`UnsafeFileError`)."""
    path = Path(path)
    safe_folder(path.parent)
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _refuse_link(path, exc) from exc
        raise _write_failed(path, exc) from exc


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
