"""dvc.yaml against the code: each stage depends on exactly what it imports, commands quote names, every
stage waits for the params check, and settings that change no result are tracked by no stage."""
import re
import sys

import pytest
import yaml
from conftest import ROOT

sys.path.insert(0, str(ROOT / "stages"))
from common import source_files  # noqa: E402

PIPELINE = yaml.safe_load((ROOT / "dvc.yaml").read_text())
STAGES = PIPELINE["stages"]


def definition(name: str) -> dict:
    stage = STAGES[name]
    return stage.get("do", stage)


@pytest.mark.parametrize("name", list(STAGES))
def test_code_dependencies_are_what_the_stage_imports(name):
    d = definition(name)
    script = re.search(r"stages/\w+\.py", d["cmd"]).group(0)
    declared = {dep for dep in d["deps"] if dep.endswith(".py")}
    assert declared == set(source_files(script)), (
        f"{name}: missing {sorted(set(source_files(script)) - declared)}, "
        f"extra {sorted(declared - set(source_files(script)))}")


def test_the_import_closure_follows_imports():
    files = source_files("stages/report.py")
    assert {"stages/report.py", "stages/common.py", "pcn/report.py", "pcn/statistics.py", "pcn/config.py"} <= set(files)
    assert "pcn/input_pipeline.py" not in files                          # imported by train/evaluate only
    assert "pcn/report.py" not in source_files("stages/train.py")


@pytest.mark.parametrize("name", list(STAGES))
def test_commands_quote_every_name(name):
    cmd = definition(name)["cmd"]
    for match in re.finditer(r"\$\{item[^}]*\}", cmd):
        assert cmd[match.start() - 1] == "'" and cmd[match.end()] == "'", f"{name}: {match.group(0)} is unquoted"


@pytest.mark.parametrize("name", [n for n in STAGES if n != "validate"])
def test_every_stage_waits_for_the_params_check(name):
    assert "results/params.ok" in definition(name)["deps"]
    assert {"results/params.ok": {"cache": False}} in STAGES["validate"]["outs"]


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
            expanded.add(key.replace("${item.variant}", variant).replace("${data.name}", default_params["data"]["name"])
                         .replace("${item}", "imagenet"))
    for key in expanded:
        lookup(key)                                                      # raises KeyError if DVC would miss it
    assert not any(k.startswith(("runtime", "tracking")) for k in expanded)
    assert "train" in expanded and "data.augment" in expanded and "evaluate" in expanded
