"""pcn repro's plan is DVC's: the stages and order of `dvc repro --dry`, the status DVC reports, and the stages
a failure holds back; the wall-time estimate schedules the known durations."""

import sys

import pytest

from pcn.cli.repro_plan import Step, dependants, estimate, plan, waiting

from conftest import tiny_params
from project import dvc, env, make_project, ran, run


def test_estimate_schedules_in_dependency_order():
    steps = [Step("a"), Step("b", ["a"]), Step("c", ["a"]), Step("d", ["b", "c"])]
    durations = {"a": 1.0, "b": 4.0, "c": 4.0, "d": 2.0}
    assert estimate(steps, durations, 1) == (11.0, 11.0)
    assert estimate(steps, durations, 2) == (11.0, 7.0)  # b and c side by side
    assert estimate(steps, {"a": 1.0, "b": 4.0}, 2) == (None, None)  # c and d never ran: no guess
    matrix = [Step("train@m-0"), Step("train@m-1")]
    assert estimate(matrix, {"train@m-0": 3.0}, 2) == (6.0, 3.0)  # a matrix entry takes its kind's median


def test_a_failure_holds_back_only_its_dependants():
    steps = [Step("a"), Step("b", ["a"]), Step("c", ["a"]), Step("d", ["b"]), Step("e", ["c"], run=False)]
    assert dependants(steps, "b") == {"d"}
    assert dependants(steps, "a") == {"b", "c", "d", "e"}
    assert waiting(steps) == {"a": set(), "b": {"a"}, "c": {"a"}, "d": {"b"}}


@pytest.mark.slow
def test_the_plan_is_dvc_repro_order_and_status(tmp_path, default_params, monkeypatch):
    repo = make_project(tmp_path / "repo", tiny_params(default_params))
    expected = ran(dvc("repro", "--dry", "--force", cwd=repo).stdout)  # plain --dry stops at missing inputs
    monkeypatch.chdir(repo)  # targets are read as dvc repro reads them: from the current folder
    steps = plan(repo)
    assert [s.name for s in steps] == expected and all(s.run for s in steps)
    assert next(s for s in steps if s.name == "evaluate@modulus-0").needs == ["validate", "fetch", "train@modulus-0"]
    dvc("repro", "fetch", cwd=repo)
    after = plan(repo)
    assert {s.name for s in after if not s.run} == {"validate", "fetch"}
    assert [s.name for s in plan(repo, ["train@modulus-0"])] == ["validate", "fetch", "train@modulus-0"]
    dry = run([sys.executable, "-m", "pcn.cli.main", "repro", "--dry", "--workers", "2"], repo, environ=env())
    assert "up to date  fetch (after validate)" in dry.stdout and "6 of 8 stages to run" in dry.stdout
    assert not (repo / ".dvc/tmp/pcn-repro").exists()  # nothing ran
    bad = run([sys.executable, "-m", "pcn.cli.main", "repro", "nosuchstage"], repo, check=False, environ=env())
    assert bad.returncode == 1 and "nosuchstage" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
