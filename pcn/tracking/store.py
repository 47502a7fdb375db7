"""The MLflow store: where it is, whether it can be used, and the pipeline's experiment in it.

* The default store is an **absolute** ``sqlite:///<repo>/mlflow.db``: relative paths
  break in ``dvc exp run --queue`` temporary copies.
* :func:`check_tracking_uri` fails fast (seconds), naming the file or server, on an
  unreachable server, a database that is not SQLite or not MLflow's, one that cannot be
  written (tried, not read from mode bits), or one that is damaged (:func:`check_integrity`:
  SQLite's ``quick_check``, bounded in time), with the recovery steps; nothing is written to it.
* :func:`ensure_experiment` creates the database and experiment once, under an exclusive
  file lock, so concurrent stages never race on the sqlite schema creation; a deleted
  experiment of that name is named, with the command that restores it.
* A repository copied with its store (``cp -r``, an archive) keeps artifacts in itself:
  :func:`ensure_experiment` moves the experiment's artifact location from the original's
  ``mlartifacts/<experiment>`` to the copy's, and says so (runs logged before the copy keep theirs).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import stat
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from pcn.tracking.ui import experiment_ui_tags

SQLITE_HEADER = b"SQLite format 3\x00"


class TrackingError(RuntimeError):
    """The MLflow tracking store cannot be used."""


def default_tracking_uri(repo_root: Path) -> str:
    return f"sqlite:///{Path(repo_root).resolve() / 'mlflow.db'}"


def pipeline_tracking_uri(repo_root: Path, params_uri: str | None, environ_uri: str | None) -> str:
    """The store the pipeline writes to, in order: ``MLFLOW_TRACKING_URI`` (``environ_uri``, read by the caller),
    ``tracking.uri`` of params.yaml (``params_uri``), the project's ``mlflow.db``."""
    return environ_uri or params_uri or default_tracking_uri(repo_root)


def sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def _check_server(uri: str, timeout: float) -> None:
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            if response.status != 200:
                raise TrackingError(f"MLflow server {uri} answered {response.status} on /health")
    except (urllib.error.URLError, OSError) as exc:
        raise TrackingError(
            f"MLflow tracking server {uri} is unreachable ({exc}); start it or unset MLFLOW_TRACKING_URI / tracking.uri"
        ) from exc


def _check_sqlite_file(path: Path) -> None:
    """An existing store must be a writable SQLite database that is empty or MLflow's."""
    if path.is_dir():
        raise TrackingError(f"tracking database {path} is a directory, not an SQLite file")
    with open(path, "rb") as f:
        header = f.read(len(SQLITE_HEADER))
    if header and header != SQLITE_HEADER:
        raise TrackingError(
            f"tracking database {path} is not an SQLite database (it starts with {header[:8]!r}); "
            "move it away or point tracking.uri elsewhere"
        )
    try:  # tried, not read from the mode bits: root ignores them, a read-only mount does not
        with open(path, "r+b"):
            pass
        _check_writable_folder(path.parent)
    except OSError as exc:
        raise TrackingError(
            f"tracking database {path} is read-only ({exc.strerror or exc}; mode "
            f"{stat.filemode(path.stat().st_mode)}); make it and its folder writable or point tracking.uri elsewhere"
        ) from exc
    if not header:
        return  # empty file: MLflow creates the schema
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise TrackingError(f"tracking database {path} cannot be read as SQLite ({exc})") from exc
    if tables and not {"experiments", "runs"} <= tables:
        raise TrackingError(
            f"tracking database {path} is an SQLite database of another application (tables: "
            f"{', '.join(sorted(tables)[:5])}); MLflow would add its tables to it. Point "
            "tracking.uri elsewhere"
        )
    check_integrity(path)


#: The most seconds :func:`check_integrity` spends; a larger store is checked in part (said on stderr).
QUICK_CHECK_SECONDS = 20.0


def check_integrity(path: Path, budget: float = QUICK_CHECK_SECONDS) -> None:
    """Raise :class:`TrackingError` naming ``path`` and the recovery steps if SQLite's ``PRAGMA quick_check`` finds
    damage (a corrupt page behind an intact header and schema). Bounded: after ``budget`` seconds the check stops,
    with a note, and the store is used."""
    import time

    deadline = time.monotonic() + budget
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)) as db:
            db.set_progress_handler(lambda: time.monotonic() > deadline, 100_000)
            rows = [row[0] for row in db.execute("PRAGMA quick_check(5)")]
    except sqlite3.OperationalError as exc:
        if "interrupted" in str(exc):
            print(f"note: tracking database {path}: integrity check stopped after {budget:.0f} s", file=sys.stderr)
            return
        rows = [str(exc)]
    except sqlite3.DatabaseError as exc:
        rows = [str(exc)]
    if rows != ["ok"]:
        raise TrackingError(
            f"tracking database {path} is damaged ({' '.join('; '.join(rows).split())[:200]}); nothing was written to "
            "it. Recover: "
            f"stop every process using it, keep a copy (cp {path} {path}.damaged), then "
            f"sqlite3 {path}.damaged .recover | sqlite3 {path}.recovered and move {path}.recovered to {path} "
            "(or point tracking.uri elsewhere)"
        )


def check_tracking_uri(uri: str, timeout: float = 5.0) -> None:
    """Raise :class:`TrackingError`, naming the file or server, unless ``uri`` is a usable MLflow store."""
    if uri.startswith(("http://", "https://")):
        _check_server(uri, timeout)
        return
    path = sqlite_path(uri)
    if path is None:
        raise TrackingError(
            f"unsupported tracking URI {uri!r}: use sqlite:///<absolute path> or http(s)://host:port "
            "(the MLflow file store is disabled in MLflow >= 3.13)"
        )
    if not path.is_absolute():
        raise TrackingError(
            f"tracking URI {uri!r} must use an absolute path (relative paths break under dvc exp run --queue)"
        )
    if not path.parent.is_dir():
        raise TrackingError(f"tracking database folder {path.parent} does not exist")
    if path.exists():
        _check_sqlite_file(path)
        return
    try:
        _check_writable_folder(path.parent)
    except OSError as exc:
        raise TrackingError(f"tracking database folder {path.parent} is not writable ({exc})") from exc


def _check_writable_folder(folder: Path) -> None:
    """Raise OSError unless a file can be created in ``folder`` (SQLite writes its journal beside the database)."""
    fd, probe = tempfile.mkstemp(prefix=".mlflow-write-test-", dir=folder)
    os.close(fd)
    os.unlink(probe)


@contextlib.contextmanager
def exclusive_lock(lock_path: Path):
    """Hold an exclusive ``flock`` on ``lock_path`` (never opened through a planted link: :mod:`pcn.files`)."""
    from pcn.files import open_lock_file

    fd = open_lock_file(lock_path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def store_lock(uri: str, artifact_root: Path) -> Path:
    path = sqlite_path(uri)
    return path.with_suffix(path.suffix + ".lock") if path else Path(artifact_root) / ".experiment.lock"


def _keep_artifacts_here(uri: str, experiment, location: Path) -> None:
    """Point ``experiment``'s artifacts at ``location`` if the store is this repository's own ``mlflow.db`` and the
    experiment's artifacts are in another folder's ``mlartifacts/<experiment>`` (the store was copied from there).
    A store outside the repository, or an artifact location the user chose, is left as it is."""
    store = sqlite_path(uri)
    current = urllib.parse.urlparse(experiment.artifact_location or "")
    if store is None or store.resolve() != location.parent.parent / "mlflow.db" or current.scheme != "file":
        return
    old = Path(urllib.parse.unquote(current.path))
    if old == location or (old.name, old.parent.name) != (location.name, location.parent.name):
        return
    with contextlib.closing(sqlite3.connect(store, timeout=30)) as db, db:
        db.execute(
            "UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?",
            (location.as_uri(), int(experiment.experiment_id)),
        )
    print(
        f"note: MLflow experiment {experiment.name!r} kept its artifacts in {old} (this repository's store was "
        f"copied from there); new runs keep them in {location}",
        file=sys.stderr,
    )


def ensure_experiment(uri: str, name: str, artifact_root: Path) -> str:
    """Create (once, under a lock) and return the id of experiment ``name``, tagged for the UI
    (:func:`pcn.tracking.ui.experiment_ui_tags`: model-training mode, the runs table on the numbers).

    Store errors (a locked, corrupted or read-only database) become :class:`TrackingError`
    naming the store.
    """
    from mlflow.tracking import MlflowClient

    try:
        with exclusive_lock(store_lock(uri, artifact_root)):
            client = MlflowClient(tracking_uri=uri)
            experiment = client.get_experiment_by_name(name)
            if experiment is not None and experiment.lifecycle_stage == "deleted":
                raise TrackingError(
                    f"MLflow experiment {name!r} (id {experiment.experiment_id}) is deleted in {uri}: restore it "
                    f"(mlflow experiments restore --experiment-id {experiment.experiment_id}) or set "
                    "tracking.experiment to another name"
                )
            location = Path(artifact_root).resolve() / name
            if experiment is None:
                return client.create_experiment(name, artifact_location=location.as_uri(), tags=experiment_ui_tags())
            _keep_artifacts_here(uri, experiment, location)
            for key, value in experiment_ui_tags().items():  # a store made before the tags, or a view edited
                if experiment.tags.get(key) != value:
                    client.set_experiment_tag(experiment.experiment_id, key, value)
            return experiment.experiment_id
    except TrackingError:
        raise
    except Exception as exc:  # SQLAlchemy / MLflow errors, reduced to one line
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise TrackingError(f"MLflow store {uri} cannot be used: {first}") from exc
