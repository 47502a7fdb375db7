"""dvc.yaml against the code: each stage depends on the parts of the code it imports (packages as folders),
commands hold no names, every stage waits for the params check, and settings that change no result are tracked
by no stage."""

import re

import pytest
import yaml

from pcn.pipeline import provenance

from conftest import ROOT


def code_dependencies(script: str) -> list[str]:
    return provenance.code_dependencies(ROOT, script)


def source_files(script: str) -> list[str]:
    return provenance.source_files(ROOT, script)


PIPELINE = yaml.safe_load((ROOT / "dvc.yaml").read_text())
STAGES = PIPELINE["stages"]


def definition(name: str) -> dict:
    stage = STAGES[name]
    return stage.get("do", stage)


@pytest.mark.parametrize("name", list(STAGES))
def test_code_dependencies_are_what_the_stage_imports(name):
    d = definition(name)
    script = re.search(r"stages/\w+\.py", d["cmd"]).group(0)
    declared = {dep for dep in d["deps"] if dep.startswith(("pcn", "stages/"))}
    assert declared == set(code_dependencies(script)), (
        f"{name}: missing {sorted(set(code_dependencies(script)) - declared)}, "
        f"extra {sorted(declared - set(code_dependencies(script)))}"
    )


def test_the_import_closure_follows_imports():
    files = source_files("stages/report.py")
    assert {
        "stages/report.py",
        "stages/stage_inputs.py",
        "pcn/analysis/report.py",
        "pcn/analysis/statistics.py",
        "pcn/schema.py",
        "pcn/__init__.py",
        "pcn/analysis/__init__.py",
    } <= set(files)
    assert "pcn/data/batches.py" not in files  # imported by train/evaluate only
    assert "pcn/analysis/report.py" not in source_files("stages/train.py")


def test_stages_depend_on_packages_not_on_the_whole_library():
    """What each stage does not use is not its dependency: a change there reruns nothing of it."""
    assert set(definition("validate")["deps"]) == {
        "stages/validate.py",
        "stages/stage_inputs.py",
        "stages/workspace.py",
        "pcn/layout.py",
        "pcn/names.py",
        "pcn/__init__.py",
        "pcn/mappings.py",  # stage_inputs names the params dvc.lock credits wrongly
        "pcn/remote.py",  # the default remote's folder is made private
        "pcn/files.py",
        "pcn/schema.py",
        "pcn/typed_params.py",
    }
    fetch = set(definition("fetch")["deps"])
    assert "pcn/data" in fetch and not fetch & {"pcn/nn", "pcn/train", "pcn/analysis", "pcn/pipeline"}
    assert "pcn/train" not in definition("report")["deps"]
    assert not [
        d
        for d in (dep for stage in STAGES for dep in definition(stage)["deps"])
        if d.startswith("pcn/") and d.count("/") > 1
    ], "a file inside a pcn package listed alone"


def test_process_and_mlflow_helpers_are_no_dependency():
    for stage in STAGES:
        assert not {"stages/process_defaults.py", "stages/mlflow_run.py"} & set(definition(stage)["deps"])
        assert "pcn/tracking" not in definition(stage)["deps"]


@pytest.mark.parametrize("name", list(STAGES))
def test_commands_hold_no_name(name):
    """No interpolated value reaches a shell: stages read their variant and seed from DVC_STAGE."""
    assert "${" not in definition(name)["cmd"] and re.fullmatch(r"python stages/\w+\.py", definition(name)["cmd"])


@pytest.mark.parametrize("name", [n for n in STAGES if n != "validate"])
def test_every_stage_waits_for_the_params_check(name):
    assert "results/params.ok" in definition(name)["deps"]
    assert "results/params.ok" in STAGES["validate"]["outs"]


@pytest.mark.parametrize("name", list(STAGES))
def test_every_output_git_keeps_is_a_metric_or_a_plot(name):
    """DVC keeps no run cache for a stage with another git-kept output (dvc/stage/__init__.py, ``no_cache_outs``):
    such a stage would run again for an experiment already run."""
    if definition(name).get("always_changed"):
        return  # never restored anyway (scan looks at the data folder each time)
    for out in definition(name).get("outs", []):
        assert isinstance(out, str) or next(iter(out.values())).get("cache", True), out


def test_tracked_params_exist_and_exclude_runtime_settings(default_params):
    def lookup(key: str):
        node = default_params
        for part in key.split("."):
            node = node[part]
        return node

    tracked = set()
    for name in STAGES:
        for entry in definition(name).get("params", []):
            if isinstance(entry, str):
                tracked.add(entry)
    expanded = set()
    for key in tracked:
        for variant in default_params["variants"]:
            expanded.add(
                key.replace("${item.variant}", variant)
                .replace("${data.name}", default_params["data"]["name"])
                .replace("${item}", "imagenet")
            )
    for key in expanded:
        lookup(key)  # raises KeyError if DVC would miss it
    assert not any(k.startswith(("runtime", "tracking")) for k in expanded)
    assert "train" in expanded and "data.augment" in expanded and "evaluate" in expanded
