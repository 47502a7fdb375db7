"""A journal cannot rewrite history (issue 32): a planted journal that names the right store changes no finished
run, no other stage's run, no protected tag, and uploads no file that is not its stage's output."""

import json

import pytest

from pcn.tracking.journal import append, quarantine_path, replay
from pcn.tracking.runs import StageRun
from pcn.tracking.store import default_tracking_uri, ensure_experiment


@pytest.fixture
def finished(tmp_path):
    """A repository whose store holds a finished evaluate run and a finished train run."""
    from mlflow.tracking import MlflowClient

    repo = tmp_path / "repo"
    (repo / ".dvc").mkdir(parents=True)
    (repo / ".dvc" / "config").write_text("[core]\n")
    (repo / "dvc.yaml").write_text(
        "stages:\n  report:\n    cmd: x\n    outs: [results/report/table.md]\n"
        "  evaluate:\n    matrix: {v: [m]}\n    cmd: x\n    outs: ['results/evaluate/${item.v}-0']\n"
    )
    uri = default_tracking_uri(repo)
    experiment = ensure_experiment(uri, "e", repo / "mlartifacts")
    client = MlflowClient(uri)
    runs = {}
    for stage in ("evaluate@m-0", "train@m-0"):
        with StageRun(client, experiment, stage, {"dvc.stage": stage.split("@")[0]}, repo / f"{stage}.jsonl") as run:
            run.log_metrics({"test_error": 15.625})
        runs[stage] = run.run_id
    return repo, client, experiment, runs


def test_a_planted_journal_changes_no_finished_run(finished):
    repo, client, experiment, runs = finished
    uri = client.tracking_uri
    journal = repo / "checkpoints" / "mlflow_pending" / "report.jsonl"
    evaluate, train = runs["evaluate@m-0"], runs["train@m-0"]
    for kind, run_id, args in [
        ("metrics", evaluate, [{"test_error": 0.01}, None, 1000]),
        ("terminate", train, [train, "FAILED"]),
        ("tags", evaluate, [{"dvc.variant": "relabelled"}]),
        ("artifact", evaluate, [str(repo / ".dvc" / "config"), None]),
    ]:
        append(journal, {"kind": kind, "run_id": run_id, "args": args, "tracking_uri": uri})
    report = replay(journal, client, (repo,), experiment)
    assert report.sent == 0 and len(report.quarantined) == 4
    assert client.get_run(evaluate).data.metrics["test_error"] == 15.625
    assert client.get_run(train).info.status == "FINISHED"
    assert "dvc.variant" not in client.get_run(evaluate).data.tags
    assert client.list_artifacts(evaluate) == []
    reasons = [json.loads(line)["reason"] for line in quarantine_path(journal).read_text().splitlines()]
    assert all("was not opened by the stage of journal report.jsonl" in r for r in reasons)


def test_even_its_own_journal_cannot_change_a_finished_run(finished):
    repo, client, experiment, runs = finished
    evaluate = runs["evaluate@m-0"]
    journal = repo / "evaluate@m-0.jsonl"
    append(
        journal,
        {
            "kind": "metrics",
            "run_id": evaluate,
            "args": [{"test_error": 0.01}, None, 1000],
            "tracking_uri": client.tracking_uri,
        },
    )
    report = replay(journal, client, (repo,), experiment)
    assert report.sent == 0 and "is FINISHED" in report.quarantined[0]
    assert client.get_run(evaluate).data.metrics["test_error"] == 15.625


def test_an_open_run_takes_only_its_stage_outputs_and_no_protected_tag(finished):
    repo, client, experiment, _ = finished
    out = repo / "results" / "evaluate" / "m-0"
    out.mkdir(parents=True)
    (out / "metrics.json").write_text("{}")
    journal = repo / "evaluate@m-0.jsonl"
    run = StageRun(client, experiment, "evaluate@m-0", {"dvc.stage": "evaluate"}, journal).__enter__()
    for kind, args in [
        ("artifact", [str(repo / ".dvc" / "config"), None]),
        ("tags", [{"pcn.journal": "report.jsonl"}]),
        ("artifact", [str(out / "metrics.json"), None]),
    ]:
        append(journal, {"kind": kind, "run_id": run.run_id, "args": args, "tracking_uri": client.tracking_uri})
    report = replay(journal, client, (repo,), experiment)
    assert report.sent == 1 and len(report.quarantined) == 2
    assert "not an output that dvc.yaml declares for stage 'evaluate'" in report.quarantined[0]
    assert "protected tag" in report.quarantined[1]
    assert [a.path for a in client.list_artifacts(run.run_id)] == ["metrics.json"]
