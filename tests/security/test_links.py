"""No write through a planted link, and a write that fails says which file (issue 32)."""

import errno
import json
import os

import pytest

from pcn.files import FileWriteError, UnsafeFileError, append_bytes, atomic_write, remove_stale_temps, write_text
from pcn.tracking.journal import append, quarantine_path, replay


@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "repo"
    (root / "checkpoints" / "mlflow_pending").mkdir(parents=True)
    (root / "dvc.yaml").write_text("stages: {}\n")
    victim = tmp_path / "profile"
    victim.write_text("# a shell profile\n")
    return root, victim


def test_a_planted_quarantine_link_is_refused_and_its_target_untouched(repo):
    """The issue's case: a link at report.quarantined.jsonl and a journal with one non-JSON line."""
    root, victim = repo
    journal = root / "checkpoints" / "mlflow_pending" / "report.jsonl"
    journal.write_text('$(touch /tmp/owned)"\n')
    quarantine_path(journal).symlink_to(victim)

    class Client:
        tracking_uri = "sqlite:///x"

    with pytest.raises(UnsafeFileError, match="report.quarantined.jsonl is a link"):
        replay(journal, Client(), (root,))
    assert victim.read_text() == "# a shell profile\n"


def test_a_planted_journal_link_is_refused(repo):
    root, victim = repo
    journal = root / "checkpoints" / "mlflow_pending" / "train@m-0.jsonl"
    journal.symlink_to(victim)
    with pytest.raises(UnsafeFileError, match=r"train@m-0.jsonl is a link"):
        append(journal, {"kind": "metrics"})
    assert victim.read_text() == "# a shell profile\n"


def test_a_planted_link_in_place_of_a_folder_is_refused_by_name(repo, tmp_path):
    """checkpoints/<run> as a link to a folder outside the repository is not followed."""
    root, _ = repo
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "checkpoints" / "modulus-0").symlink_to(outside)
    with pytest.raises(UnsafeFileError, match=r"checkpoints/modulus-0 is a link"):
        write_text(root / "checkpoints" / "modulus-0" / "last.pt", "x")
    with pytest.raises(UnsafeFileError, match=r"checkpoints/modulus-0 is a link"):
        append_bytes(root / "checkpoints" / "modulus-0" / "j.jsonl", b"x")
    assert list(outside.iterdir()) == []


def test_a_link_at_the_file_itself_is_replaced_not_followed(repo):
    root, victim = repo
    target = root / "results" / "summary.json"
    target.parent.mkdir()
    target.symlink_to(victim)
    write_text(target, "{}")
    assert not target.is_symlink() and target.read_text() == "{}"
    assert victim.read_text() == "# a shell profile\n"


def test_a_full_disk_names_the_file_and_keeps_the_old_one(repo):
    root, _ = repo
    target = root / "checkpoints" / "modulus-0" / "last.pt"
    write_text(target, "old")

    def full(f):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(FileWriteError) as raised:
        atomic_write(target, full)
    assert str(target) in raised.value.strerror and "disk is full" in raised.value.strerror
    assert target.read_text() == "old" and os.listdir(target.parent) == ["last.pt"]


def test_temporary_files_of_a_killed_writer_are_removed(repo):
    root, _ = repo
    folder = root / "results" / "report"
    folder.mkdir(parents=True)
    stale = folder / ".test_error.png.999999999.abcdef012345.tmp"  # no such pid
    stale.write_bytes(b"")
    mine = folder / f".table.md.{os.getpid()}.abcdef012345.tmp"
    mine.write_bytes(b"")
    assert remove_stale_temps(folder) == [stale]
    write_text(folder / "table.md", "x")
    assert not stale.exists() and mine.exists()


def test_temporary_files_are_created_exclusively(repo, monkeypatch):
    """A temporary name that exists already (planted) is never opened: O_EXCL."""
    import secrets

    root, victim = repo
    monkeypatch.setattr(secrets, "token_hex", lambda n: "fixed")
    planted = root / "results" / f".x.json.{os.getpid()}.fixed.tmp"
    planted.parent.mkdir()
    planted.symlink_to(victim)
    with pytest.raises(FileWriteError, match="x.json"):
        write_text(root / "results" / "x.json", json.dumps({}))
    assert victim.read_text() == "# a shell profile\n"


def test_a_planted_store_lock_link_is_refused_and_its_target_untouched(repo):
    from pcn.tracking.store import exclusive_lock

    root, victim = repo
    lock = root / "mlflow.db.lock"
    lock.symlink_to(victim)
    with pytest.raises(UnsafeFileError, match="mlflow.db.lock is a link"):
        with exclusive_lock(lock):
            pass
    assert victim.read_text() == "# a shell profile\n"


def test_prepared_arrays_replace_a_planted_link(repo):
    import numpy as np

    from pcn.data.datasets import ArraySplit, _write_arrays

    root, victim = repo
    out = root / "data" / "prepared"
    out.mkdir(parents=True)
    (out / "train_images.npy").symlink_to(victim)
    split = ArraySplit(np.zeros((1, 1, 2, 2), np.uint8), np.zeros(1, np.int64))
    _write_arrays(out, split, split)
    assert not (out / "train_images.npy").is_symlink()
    assert victim.read_text() == "# a shell profile\n"
