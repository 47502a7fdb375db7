"""MLflow helpers that take every location explicitly (no global MLflow state is read here).

* The default store is an **absolute** ``sqlite:///<repo>/mlflow.db``: relative paths
  break in ``dvc exp run --queue`` temporary copies.
* :func:`check_tracking_uri` fails fast (seconds) on an unreachable server or an
  unwritable database, before any training.
* :func:`ensure_experiment` creates the database and experiment once, under an
  exclusive file lock, so concurrent stages never race on the sqlite schema creation.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import subprocess
import urllib.error
import urllib.request
from pathlib import Path


class TrackingError(RuntimeError):
    """The MLflow tracking store cannot be used."""


def default_tracking_uri(repo_root: Path) -> str:
    return f"sqlite:///{Path(repo_root).resolve() / 'mlflow.db'}"


def sqlite_path(uri: str) -> Path | None:
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def check_tracking_uri(uri: str, timeout: float = 5.0) -> None:
    """Raise :class:`TrackingError` unless ``uri`` is a usable MLflow store."""
    if uri.startswith(("http://", "https://")):
        url = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                if response.status != 200:
                    raise TrackingError(f"MLflow server {uri} answered {response.status} on /health")
        except (urllib.error.URLError, OSError) as exc:
            raise TrackingError(f"MLflow tracking server {uri} is unreachable ({exc}); start it or unset "
                                "MLFLOW_TRACKING_URI / tracking.uri") from exc
        return
    path = sqlite_path(uri)
    if path is None:
        raise TrackingError(f"unsupported tracking URI {uri!r}: use sqlite:///<absolute path> or http(s)://host:port "
                            "(the MLflow file store is disabled in MLflow >= 3.13)")
    if not path.is_absolute():
        raise TrackingError(f"tracking URI {uri!r} must use an absolute path (relative paths break under "
                            "dvc exp run --queue)")
    if not path.parent.is_dir():
        raise TrackingError(f"tracking database folder {path.parent} does not exist")
    probe = path.parent / f".{path.name}.write-test"
    try:
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise TrackingError(f"tracking database folder {path.parent} is not writable ({exc})") from exc


@contextlib.contextmanager
def exclusive_lock(lock_path: Path):
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_experiment(uri: str, name: str, artifact_root: Path) -> str:
    """Create (once, under a lock) and return the id of experiment ``name``."""
    from mlflow.tracking import MlflowClient
    path = sqlite_path(uri)
    lock = path.with_suffix(path.suffix + ".lock") if path else Path(artifact_root) / ".experiment.lock"
    with exclusive_lock(lock):
        client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        location = Path(artifact_root).resolve() / name
        return client.create_experiment(name, artifact_location=location.as_uri())


def flatten(d: dict, prefix: str = "") -> dict[str, object]:
    """``{"a": {"b": 1}} -> {"a.b": 1}``; lists become JSON strings."""
    out = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        elif isinstance(value, (list, tuple)):
            out[name] = json.dumps(value)
        else:
            out[name] = value
    return out


def git_commit(repo_root: Path) -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_root, capture_output=True, text=True,
                              timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"

