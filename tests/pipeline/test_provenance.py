"""What a stage's results follow from: the code its imports reach, and the params it reads, checked again
before its results are written."""

import pytest
import yaml

from pcn.pipeline.provenance import Provenance, ProvenanceChanged, code_dependencies, code_digest, source_files
from pcn.schema import load_params_file

from conftest import ROOT


def test_a_stage_refuses_to_write_when_its_params_changed_while_it_ran(tmp_path, default_params):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(default_params))
    view = lambda p: {"seeds": p.seeds, "confidence": p.report.confidence}  # noqa: E731
    provenance = Provenance.take("report", ROOT, "stages/report.py", path, view, load_params_file(path))
    provenance.refuse_if_changed()  # nothing changed: no objection
    changed = dict(default_params, report={**default_params["report"], "confidence": 0.9})
    path.write_text(yaml.safe_dump(changed))
    with pytest.raises(ProvenanceChanged, match="report: changed while it ran: params: confidence"):
        provenance.refuse_if_changed()
    path.write_text(yaml.safe_dump(dict(default_params, runtime={**default_params["runtime"], "progress": False})))
    provenance.refuse_if_changed()  # a setting it does not read: fine


def test_a_stage_refuses_to_write_when_its_code_changed_while_it_ran(tmp_path, default_params):
    import shutil

    for folder in ("pcn", "stages"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(default_params))
    provenance = Provenance.take("report", tmp_path, "stages/report.py", path, lambda p: {}, load_params_file(path))
    statistics = tmp_path / "pcn/analysis/statistics.py"
    statistics.write_text(statistics.read_text() + "\n# changed\n")
    with pytest.raises(ProvenanceChanged, match="code: pcn/analysis/statistics.py"):
        provenance.refuse_if_changed()


def test_the_code_identity_follows_imports_and_skips_what_only_reaches_mlflow():
    files = source_files(ROOT, "stages/report.py")
    assert {"stages/report.py", "pcn/analysis/report.py", "pcn/analysis/statistics.py", "pcn/schema.py"} <= set(files)
    assert {"stages/mlflow_run.py", "pcn/tracking/registry.py"} <= set(files)  # imported, but not followed:
    assert "pcn/tracking/journal.py" not in files  # reached only through them
    assert not [d for d in code_dependencies(ROOT, "stages/report.py") if "tracking" in d or "mlflow" in d]
    deps = code_dependencies(ROOT, "stages/train.py")
    assert "pcn/nn" in deps and "stages/mlflow_run.py" not in deps and "stages/process_defaults.py" not in deps
    digest = code_digest(ROOT, "stages/train.py")
    assert "pcn/nn/morlet.py" in digest and not [f for f in digest if "tracking" in f]
