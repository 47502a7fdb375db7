"""End to end with DVC: a real `dvc repro` in a temporary git repository with a real MLflow sqlite store.

What reruns when (seeds, one variant's params, display settings, another data set's settings),
what `dvc exp show` and `dvc plots show` give, and that bad params cost no result.
"""

import re

import pytest

from conftest import tiny_params
from project import commit, dvc, env, make_project, mlflow_runs, ran, read_json, result_files, stage, write_params

pytestmark = pytest.mark.slow


def stages_of(*runs: str) -> set[str]:
    return {f"{stage}@{r}" for r in runs for stage in ("train", "evaluate")}


def test_seeds_reruns_and_report(tmp_path, default_params):
    params = tiny_params(default_params, seeds=(0, 1))
    repo = make_project(tmp_path / "repo", params)
    first = ran(dvc("repro", cwd=repo).stdout)
    assert set(first) == {"validate", "fetch", "draw_filters", "report"} | stages_of(
        "modulus-0", "modulus-1", "soft_threshold-0", "soft_threshold-1"
    )
    table = (repo / "results/report/table.md").read_text()
    assert re.search(r"\| modulus \| lscat \| mod \| [\d,]+ \| lr 0.01, 1 epoch \| 2 \| [\d.]+ ± [\d.]+ \|", table), (
        table
    )
    assert "soft_threshold minus modulus:" in table and "Student t over 2 paired seeds" in table
    report = read_json(repo / "results/report/table.json")
    assert report["comparisons"][0]["seeds"] == [0, 1] and report["comparisons"][0]["interval"]["low"] is not None
    # each seed drew its own split of the 96 images (32 test; 64 - 2 per class of 4 for validation = 56 train)
    split = read_json(repo / "results/evaluate/soft_threshold-1/metrics.json")["resampled_split"]
    assert split == {"n_train": 56, "n_test": 32} and report["resampling"] == pytest.approx(32 / 56)
    assert "Nadeau and Bengio's correction" in table and report["comparisons"][0]["interval"]["resampling"] > 0
    summary = read_json(repo / "results/report/summary.json")
    keys = ("test_error_pct", "test_error_sd", "test_error_low", "test_error_high", "n_seeds", "val_error_pct")
    assert {k: set(v) for k, v in summary.items()} == {k: {"modulus", "soft_threshold"} for k in keys}
    assert summary["n_seeds"] == {"modulus": 2, "soft_threshold": 2}
    assert ran(dvc("repro", cwd=repo).stdout) == []  # a second repro does nothing

    params["seeds"] = [0, 1, 2]  # a seed added: only that seed trains
    write_params(repo, params)
    assert set(ran(dvc("repro", cwd=repo).stdout)) == {"validate", "report"} | stages_of(
        "modulus-2", "soft_threshold-2"
    )
    params["models"]["soft_threshold"]["threshold_init"] = 0.2  # one variant's params: its seeds only
    write_params(repo, params)
    assert set(ran(dvc("repro", cwd=repo).stdout)) == {"validate", "report"} | stages_of(
        "soft_threshold-0", "soft_threshold-1", "soft_threshold-2"
    )
    params["runtime"]["progress"] = True  # display, another data set's root
    params["data"]["cifar10"]["root"] = "/somewhere/else"
    write_params(repo, params)
    assert ran(dvc("repro", cwd=repo).stdout) == ["validate"]

    runs, all_runs, client = mlflow_runs(repo)
    train = [r for r in all_runs if r.info.run_name.startswith("train@modulus-1 ")][0]
    assert train.data.params["seed"] == "1" and train.data.tags["seed"] == "1"
    assert train.data.tags["dvc.variant"] == "modulus" and len(train.data.tags["git.commit"]) == 40
    parents = [r for r in all_runs if r.data.tags.get("pcn.kind") == "pipeline"]  # the repros that ran stages
    assert len(parents) == 3 and len({p.info.run_name for p in parents}) == 3
    assert all(p.info.status == "FINISHED" for p in parents)
    assert all(p.data.params["seeds"] in ("[0, 1]", "[0, 1, 2]") for p in parents)  # the params it ran with
    assert all(
        p.data.params["train.lr"] == "0.01" and "`dvc repro`" in p.data.tags["mlflow.note.content"] for p in parents
    )
    assert train.data.tags["mlflow.user"] and train.data.tags["mlflow.source.name"] == "stages/train.py"
    assert train.data.tags["mlflow.note.content"].startswith("DVC stage train@modulus-1 on synthetic")
    children = [r for r in all_runs if r.data.tags.get("mlflow.parentRunId")]
    assert {r.data.tags["mlflow.parentRunId"] for r in children} <= {p.info.run_id for p in parents}
    assert len({r.info.run_name for r in all_runs if r.info.run_name.startswith("report ")}) == 3  # told apart
    report_run = [r for r in children if r.info.run_name.startswith("report ")][0]
    artifacts = {a.path for a in client.list_artifacts(report_run.info.run_id)}
    assert {"table.md", "table.json", "summary.json", "ncm_accuracy.png", "test_accuracy.png"} <= artifacts
    assert "test_error/modulus" in report_run.data.metrics and "difference/soft_threshold" in report_run.data.metrics


def test_exp_show_and_plots_for_people(tmp_path, default_params):
    repo = make_project(tmp_path / "repo", tiny_params(default_params, seeds=(0, 1)))
    dvc("repro", cwd=repo)
    commit(repo, "results")
    header = dvc("exp", "show", "--csv", cwd=repo).stdout.splitlines()[0].split(",")
    metrics = header[header.index("Created") + 1 : header.index("seeds")]
    metrics = [m for m in metrics if m not in ("rev", "typ", "parent", "State", "Executor")]
    keys = ("n_seeds", "test_error_high", "test_error_low", "test_error_pct", "test_error_sd", "val_error_pct")
    assert metrics == [f"{key}.{name}" for key in keys for name in ("modulus", "soft_threshold")]
    dvc("exp", "run", "-S", "train.lr=0.02", "-n", "lr002", cwd=repo)
    drop = "val_error|test_error_(sd|low|high)|n_seeds"  # DVC matches from the column name's start: docs/pipeline.md
    people = ("exp", "show", "--only-changed", "--drop", drop, "--no-pager")
    shown = dvc(*people, cwd=repo, environ=env(COLUMNS="120")).stdout
    lines = shown.splitlines()
    assert max(len(line) for line in lines) <= 120, shown
    assert "modulus" in lines[1] and "soft_threshold" in lines[1] and "train.lr" in lines[1], shown
    assert "lr002" in shown and "0.02" in shown
    dvc("plots", "show", cwd=repo)
    index = (repo / "dvc_plots" / "index.html").read_text()
    assert index.count("<img") >= 6 and "mechanism.png" in index and "test_accuracy.png" in index
    assert index.index("test_error.png") < index.index("filters.png")  # it opens on the results
    assert not re.search(r"<script[^>]+src=[\"']https?://", index)  # renders offline


def test_invalid_params_never_cost_a_result(tmp_path, default_params):
    params = tiny_params(default_params)
    repo = make_project(tmp_path / "repo", params)
    dvc("repro", cwd=repo)
    before = result_files(repo)
    assert any(name.startswith("results/train/") for name in before)
    bad = dict(params, train={**params["train"], "lr": "abc"})
    write_params(repo, bad)
    failed = dvc("repro", cwd=repo, check=False)
    assert failed.returncode != 0 and "train.lr: expected a finite number, got 'abc'" in failed.stderr + failed.stdout
    assert ran(failed.stdout) == ["validate"]
    assert result_files(repo) == before  # every previous result intact
    write_params(repo, params)
    commit(repo, "restore")
    exp = dvc("exp", "run", "-S", "train.lr=abc", cwd=repo, check=False)
    assert exp.returncode != 0 and "train.lr" in exp.stderr + exp.stdout
    assert result_files(repo) == before
    write_params(repo, params)
    assert set(ran(dvc("repro", cwd=repo).stdout)) <= {"validate"}  # nothing was lost: nothing reruns


def test_unsafe_names_reach_no_shell(tmp_path, default_params):
    params = tiny_params(default_params)
    name = "m;touch PWNED;#"
    params["models"][name] = {"arch": "lscat", "nonlinearity": "mod"}
    params["variants"] = [name]
    repo = make_project(tmp_path / "repo", params)
    result = dvc("repro", cwd=repo, check=False)
    assert result.returncode != 0 and "is not a safe variant name" in result.stderr + result.stdout
    assert ran(result.stdout) == ["validate"]
    assert not (repo / "PWNED").exists() and not list(tmp_path.rglob("PWNED"))


def test_a_name_reaches_no_shell_even_when_validate_is_skipped(tmp_path, default_params):
    """``--downstream --glob 'train@*'`` skips validate: the train stage itself refuses the name, and its
    command holds no name for a shell to run."""
    params = tiny_params(default_params, variants=("modulus",))
    repo = make_project(tmp_path / "repo", params)
    dvc("repro", "fetch", cwd=repo)
    name = "m';touch PWNED;echo '"
    params["models"][name] = {"arch": "lscat", "nonlinearity": "mod"}
    params["variants"] = [name]
    write_params(repo, params)
    result = dvc("repro", "--downstream", "--glob", "train@*", cwd=repo, check=False)
    assert "validate" not in ran(result.stdout)
    assert f"Running stage 'train@{name}-0':\n> python stages/train.py\n" in result.stdout  # it ran, nameless
    assert result.returncode != 0 and "invalid parameters" in result.stdout + result.stderr  # every stage checks
    assert not (repo / "PWNED").exists() and not list(tmp_path.rglob("PWNED"))


def test_a_scalar_where_a_list_is_expected(tmp_path, default_params):
    """DVC itself fails to read `variants: modulus` (before running anything); our check names the key."""
    params = tiny_params(default_params)
    repo = make_project(tmp_path / "repo", params)
    dvc("repro", cwd=repo)
    before = result_files(repo)
    write_params(repo, dict(params, variants="modulus"))
    assert dvc("repro", cwd=repo, check=False).returncode != 0
    assert result_files(repo) == before
    checked = stage("validate", repo, check=False)
    assert "variants: expected a list of str, got the scalar 'modulus' (write [modulus])" in checked.stderr


def test_queued_experiment_logs_to_the_origin_store(tmp_path, default_params):
    """`dvc exp run --queue` runs in .dvc/tmp/exps/<copy>: outputs stay there, MLflow runs land in
    the origin repository's database (an in-copy relative store would be deleted with the copy)."""
    import time

    repo = make_project(tmp_path / "repo", tiny_params(default_params, variants=("modulus",)))
    dvc("exp", "run", "--queue", "-S", "train.lr=0.02", "-n", "lr002", cwd=repo)
    dvc("queue", "start", "-j", "1", cwd=repo)
    deadline = time.time() + 600
    status = ""
    while time.time() < deadline:
        time.sleep(3)
        status = dvc("queue", "status", cwd=repo).stdout
        if "Running" not in status and "Queued" not in status:
            break
    assert "Success" in status, status + dvc("queue", "logs", "lr002", cwd=repo, check=False).stdout
    assert not (repo / "data" / "prepared").exists()  # outputs stayed in the copy
    _, runs, _ = mlflow_runs(repo)
    train = [r for r in runs if r.info.run_name.startswith("train@modulus-0 ")]
    assert len(train) == 1 and train[0].data.tags["dvc.exp_name"] == "lr002"
    assert train[0].data.params["train.lr"] == "0.02" and train[0].info.status == "FINISHED"
    parent = [r for r in runs if r.data.tags.get("pcn.kind") == "pipeline"][0]
    assert parent.info.run_name.startswith("exp lr002 #") and parent.data.params["train.lr"] == "0.02"
    assert "experiment lr002" in parent.data.tags["mlflow.note.content"]
    assert "lr002" in dvc("exp", "show", "--no-pager", "--csv", cwd=repo).stdout


def test_ddp_two_gloo_processes_equal_single_process(tmp_path, default_params):
    import torch

    params = tiny_params(default_params, variants=("modulus_skip",), epochs=2)
    single = make_project(tmp_path / "single", params)
    dvc("repro", "fetch", cwd=single)
    stage("train", single, "--variant", "modulus_skip", "--seed", "0")
    params["train"].update(launcher="torchrun", nproc=2)
    ddp = make_project(tmp_path / "ddp", params)
    dvc("repro", "fetch", cwd=ddp)
    stage("train", ddp, "--variant", "modulus_skip", "--seed", "0")
    a = read_json(single / "results/train/modulus_skip-0/metrics.json")
    b = read_json(ddp / "results/train/modulus_skip-0/metrics.json")
    assert b["world_size"] == 2 and a["world_size"] == 1
    assert b["final_test_acc"] == pytest.approx(a["final_test_acc"], abs=1 / 32 + 1e-9)
    wa = torch.load(single / "models/modulus_skip-0/model.pt", weights_only=True)["state_dict"]
    wb = torch.load(ddp / "models/modulus_skip-0/model.pt", weights_only=True)["state_dict"]
    for key in wa:
        assert torch.allclose(wa[key].float(), wb[key].float(), rtol=1e-3, atol=1e-4), key
    history = "results/train/modulus_skip-0/history.csv"
    ha = [line.split(",")[:5] for line in (single / history).read_text().splitlines()]
    hb = [line.split(",")[:5] for line in (ddp / history).read_text().splitlines()]
    assert [r[:2] for r in ha] == [r[:2] for r in hb]
    for ra, rb in zip(ha[1:], hb[1:]):
        assert float(ra[2]) == pytest.approx(float(rb[2]), rel=1e-3)  # train loss per epoch


def test_train_stage_with_bf16_autocast_and_compile_on_cpu(tmp_path, default_params):
    """train.amp and train.compile run on CPU too (CPU autocast, inductor): the code paths are exercised."""
    params = tiny_params(default_params, variants=("modulus_skip",))
    params["train"].update(amp=True, compile=True)
    repo = make_project(tmp_path / "repo", params)
    dvc("repro", "fetch", cwd=repo)
    stage("train", repo, "--variant", "modulus_skip", "--seed", "0")
    metrics = read_json(repo / "results/train/modulus_skip-0/metrics.json")
    assert 0 <= metrics["final_test_error"] <= 100 and metrics["epochs"] == 1
