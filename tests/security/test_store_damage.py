"""A damaged tracking store stops the stage, naming the file and the recovery steps, with nothing written
(issue 32)."""

import sqlite3

import pytest

from pcn.files import file_digest
from pcn.tracking.store import (
    TrackingError,
    check_integrity,
    check_tracking_uri,
    default_tracking_uri,
    ensure_experiment,
)


def damaged_store(tmp_path):
    """An MLflow store whose header and schema are intact and one of whose metrics pages is garbage."""
    uri = default_tracking_uri(tmp_path)
    ensure_experiment(uri, "e", tmp_path / "art")
    path = tmp_path / "mlflow.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, "
            "start_time, end_time, source_version, lifecycle_stage, artifact_uri, experiment_id) VALUES "
            "('r', 'r', 'LOCAL', '', '', 'u', 'FINISHED', 0, 0, '', 'active', '', 1)"
        )
        db.executemany(
            "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, 'r', ?, 0)",
            ((f"m{i % 7}", i * 0.5, i, i) for i in range(20_000)),
        )
    page = 4096
    data = bytearray(path.read_bytes())
    last = len(data) // page - 2  # a late page: the metrics' rows, far from the header and the schema
    data[last * page : last * page + page] = b"\xa5" * page
    path.write_bytes(bytes(data))
    return uri, path


def test_a_damaged_store_is_named_with_its_recovery_and_left_as_it_is(tmp_path):
    uri, path = damaged_store(tmp_path)
    before = file_digest(path)
    with pytest.raises(TrackingError) as raised:
        check_tracking_uri(uri)
    message = str(raised.value)
    assert message.startswith(f"tracking database {path} is damaged (")
    assert ".recover" in message and "nothing was written" in message and "\n" not in message
    assert file_digest(path) == before


def test_the_check_is_bounded_in_time(tmp_path, capsys):
    uri, path = damaged_store(tmp_path)
    check_integrity(path, budget=0.0)  # stopped at once: a note, no verdict
    assert "integrity check stopped" in capsys.readouterr().err


def test_a_sound_store_passes(tmp_path):
    uri = default_tracking_uri(tmp_path)
    ensure_experiment(uri, "e", tmp_path / "art")
    check_tracking_uri(uri)
