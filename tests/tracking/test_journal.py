"""The pending MLflow journal is untrusted input: only what belongs to the current store, experiment and
repository is sent; the rest is quarantined, never blocks, and is reported."""

import json
import os
import subprocess
import sys

import pytest

from pcn.tracking.journal import append, quarantine_path, replay
from pcn.tracking.store import default_tracking_uri, ensure_experiment


@pytest.fixture
def store(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = default_tracking_uri(tmp_path)
    experiment = ensure_experiment(uri, "e", tmp_path / "art")
    client = MlflowClient(uri)
    tags = {"pcn.journal": "train@m-0.jsonl", "dvc.stage": "report"}  # as StageRun opens it
    run = client.create_run(experiment, run_name="train@m-0", tags=tags)
    return client, experiment, run.info.run_id


def entry(kind, run_id, args, uri):
    return {"kind": kind, "run_id": run_id, "args": args, "tracking_uri": uri}


def test_only_entries_for_this_store_experiment_and_repository_are_sent(tmp_path, store):
    client, experiment, run_id = store
    uri = client.tracking_uri
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "dvc.yaml").write_text("stages:\n  report:\n    cmd: x\n    outs: [table.md]\n")
    (repo / "table.md").write_text("ok")
    outside = tmp_path / "secret.txt"
    outside.write_text("not yours")
    other_store = tmp_path / "elsewhere" / "mlflow.db"
    other_experiment = client.create_experiment("other")
    other_run = client.create_run(other_experiment).info.run_id
    journal = tmp_path / "pending" / "train@m-0.jsonl"
    planted = [
        entry("metrics", run_id, [{"loss": 1.0}, 1, 1000], uri),
        entry("artifact", run_id, [str(outside), None], uri),  # a file from elsewhere
        entry("artifact", run_id, [str(repo / "table.md"), None], uri),
        entry("metrics", run_id, [{"loss": 9.0}, 2, 1000], f"sqlite:///{other_store}"),  # another store
        entry("tags", other_run, [{"owned": "yes"}], uri),  # another experiment
        entry("shell", run_id, ["rm -rf /"], uri),
        entry("metrics", run_id, [{"loss": 0.5}, 3, 1000], uri),
    ]
    for e in planted:
        append(journal, e)
    with open(journal, "a") as f:
        f.write('{"kind": "metrics", "run_id": "' + run_id + '", "args": [{"lo')  # truncated last line
    report = replay(journal, client, (repo,), experiment)
    assert report.sent == 3 and report.kept == 0 and len(report.quarantined) == 5
    assert [m.step for m in client.get_metric_history(run_id, "loss")] == [1, 3]
    assert [a.path for a in client.list_artifacts(run_id)] == ["table.md"]
    assert "owned" not in client.get_run(other_run).data.tags
    assert not other_store.parent.exists()  # no database made elsewhere
    assert not journal.exists()  # nothing blocks the next replay
    reasons = [json.loads(line)["reason"] for line in quarantine_path(journal).read_text().splitlines()]
    assert any("outside" in r for r in reasons) and any("another store" in r for r in reasons)
    assert any("belongs to experiment" in r for r in reasons) and any("truncated" in r for r in reasons)
    assert any("unknown entry kind 'shell'" in r for r in reasons)


def test_an_unreachable_store_keeps_the_entries_in_order(tmp_path, store):
    client, experiment, run_id = store
    journal = tmp_path / "train@m-0.jsonl"
    for step in (1, 2, 3):
        append(journal, entry("metrics", run_id, [{"loss": float(step)}, step, 1000], client.tracking_uri))
    real = client.log_batch
    calls = []

    def down_after_one(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise ConnectionError("server gone")
        return real(*args, **kwargs)

    client.log_batch = down_after_one
    report = replay(journal, client, (tmp_path,), experiment, answers=lambda c: False)
    assert (report.sent, report.kept, report.quarantined) == (1, 2, [])
    assert [json.loads(line)["args"][1] for line in journal.read_text().splitlines()] == [2, 3]
    client.log_batch = real
    assert replay(journal, client, (tmp_path,), experiment).sent == 2 and not journal.exists()
    assert [m.step for m in client.get_metric_history(run_id, "loss")] == [1, 2, 3]


def test_each_entry_is_written_in_one_call(tmp_path, monkeypatch):
    writes = []
    real = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: writes.append(data) or real(fd, data))
    append(tmp_path / "j.jsonl", entry("params", "r", [{"x": "y" * 100_000}], "sqlite:///x"))
    assert len(writes) == 1 and writes[0].endswith(b"\n")
    assert (tmp_path / "j.jsonl").stat().st_mode & 0o077 == 0


def test_resync_sends_what_it_may_and_reports_the_rest(tmp_path, store):
    client, experiment, run_id = store
    journal = tmp_path / "train@m-0.jsonl"
    append(journal, entry("metrics", run_id, [{"loss": 1.0}, 1, 1000], client.tracking_uri))
    append(journal, entry("metrics", run_id, [{"loss": 2.0}, 2, 1000], "http://127.0.0.1:9"))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pcn.cli.main",
            "resync",
            "--uri",
            client.tracking_uri,
            "--root",
            str(tmp_path),
            str(journal),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "1 entries sent, 1 quarantined" in done.stdout and "another store" in done.stderr
    assert [m.step for m in client.get_metric_history(run_id, "loss")] == [1]
