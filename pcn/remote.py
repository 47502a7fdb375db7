"""The default DVC remote: private to its user, and checked on every pull.

``.dvc/config`` names ``~/.cache/pcn/dvc-storage`` (DVC expands ``~``): one folder per user, never a folder that
other checkouts under the same parent (``/tmp``) share by accident, and ``verify = true``, so that ``dvc pull``
recomputes each object's hash and refuses one that was swapped. :func:`private_remote_parent` makes its parent
``~/.cache/pcn`` owner-only (mode 0700), so what DVC writes below it is readable by no one else.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

#: The default remote, as .dvc/config names it.
DEFAULT_REMOTE = "~/.cache/pcn/dvc-storage"


def private_remote_parent(home: Path | None = None) -> Path:
    """Create ``~/.cache/pcn`` with mode 0700, or make it 0700 if it is the user's and open to others; returns it.
    A link there is refused (:class:`pcn.files.UnsafeFileError`)."""
    from pcn.files import safe_folder

    parent = (Path(home) if home else Path.home()) / ".cache" / "pcn"
    if not parent.exists() and not parent.is_symlink():
        parent.parent.mkdir(parents=True, exist_ok=True)
        os.mkdir(parent, 0o700)
    safe_folder(parent)
    info = os.lstat(parent)
    if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(parent, 0o700)
    return parent
