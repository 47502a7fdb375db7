"""The default DVC remote is private to its user and what is pulled is checked (issue 32)."""

import configparser
import shutil
import subprocess
from pathlib import Path

from pcn.remote import DEFAULT_REMOTE, private_remote_parent

from project import GIT, dvc, env

ROOT = Path(__file__).resolve().parents[2]


def remote_config() -> dict:
    config = configparser.ConfigParser()
    config.read(ROOT / ".dvc" / "config")
    default = config["core"]["remote"]
    return dict(config[f"'remote \"{default}\"'"])


def test_the_default_remote_is_the_users_own_and_verified():
    remote = remote_config()
    assert remote["url"] == DEFAULT_REMOTE and remote["url"].startswith("~/")  # not ../ (shared by checkouts)
    assert remote["verify"] == "true"


def test_the_remote_folder_is_made_private(tmp_path):
    (tmp_path / ".cache" / "pcn").mkdir(parents=True, mode=0o755)
    parent = private_remote_parent(tmp_path)
    assert parent.stat().st_mode & 0o777 == 0o700


def test_a_swapped_remote_object_is_not_pulled(tmp_path):
    """An object of the remote replaced by another file's bytes: `dvc pull` refuses it, nothing is checked out."""
    home = env(HOME=str(tmp_path / "home"))
    first = tmp_path / "first"
    first.mkdir()
    shutil.copytree(ROOT / ".dvc", first / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache", "config.local"))
    subprocess.run(["git", "init", "-q"], cwd=first, check=True)
    (first / "model.pt").write_bytes(b"the trained model")
    dvc("add", "model.pt", cwd=first, environ=home)
    subprocess.run(GIT + ["add", "-A"], cwd=first, check=True)
    subprocess.run(GIT + ["commit", "-qm", "x"], cwd=first, check=True)
    dvc("push", cwd=first, environ=home)
    [stored] = [p for p in (tmp_path / "home/.cache/pcn/dvc-storage").rglob("*") if p.is_file()]
    stored.chmod(0o644)
    stored.write_bytes(b"another model's file")
    second = tmp_path / "second"
    subprocess.run(GIT + ["clone", "-q", str(first), str(second)], check=True)
    pulled = dvc("pull", cwd=second, environ=home, check=False)
    assert pulled.returncode != 0 and not (second / "model.pt").exists()
