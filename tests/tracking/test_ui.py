"""What MLflow's UI opens on, checked without a browser: the experiment's tags, against the installed UI bundle
(the values and URL keys its JavaScript reads) and against the store (the view's filter and sort run there).
What only a browser shows (the rendered columns) is not checked here."""

import json
from pathlib import Path

import pytest

from pcn.tracking.store import ensure_experiment
from pcn.tracking.ui import (
    EXPERIMENT_KIND_TAG,
    MODEL_TRAINING,
    NUMBERS_VIEW,
    SHARED_VIEW_TAG_PREFIX,
    VIEW_KEY,
    runs_table_url,
    ui_base,
)


@pytest.fixture(scope="module")
def bundle() -> str:
    """The JavaScript of the installed MLflow UI."""
    import mlflow

    folder = Path(mlflow.__file__).parent / "server/js/build/static/js"
    return "\n".join(path.read_text(errors="replace") for path in sorted(folder.glob("*.js")))


def test_the_ui_reads_the_values_the_experiment_is_tagged_with(bundle):
    assert f'CUSTOM_MODEL_DEVELOPMENT="{MODEL_TRAINING}"' in bundle  # the "Model training" kind
    assert f'"{EXPERIMENT_KIND_TAG}"===' in bundle
    assert f'"{SHARED_VIEW_TAG_PREFIX}"' in bundle and '"viewStateShareKey"' in bundle
    assert 'get("workflowType")' in bundle and 'key:"mlflow.workflowType"' in bundle  # the mode's URL parameter
    assert '"machine_learning"' in bundle
    facets = '["searchFilter","orderByKey","orderByAsc","startTime","lifecycleFilter","modelVersionFilter"'
    assert facets in bundle and '["selectedColumns","columnOrder"' in bundle  # the keys a shared view may set
    assert set(NUMBERS_VIEW) <= {"searchFilter", "orderByKey", "orderByAsc", "selectedColumns"}
    assert 'e+".`"+t+"`"' in bundle  # the UI's column / sort key: metrics.`test_error`
    assert NUMBERS_VIEW["orderByKey"] == "metrics.`test_error`" and NUMBERS_VIEW["orderByAsc"] is True
    assert "metrics.`val_error`" in NUMBERS_VIEW["selectedColumns"]
    assert not any("best_" in c for c in NUMBERS_VIEW["selectedColumns"])


def test_the_experiment_is_tagged_when_created_and_when_found_untagged(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    made = client.get_experiment(ensure_experiment(uri, "phase-collapse", tmp_path / "artifacts"))
    assert made.tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING
    assert json.loads(made.tags[SHARED_VIEW_TAG_PREFIX + VIEW_KEY]) == NUMBERS_VIEW
    older = client.create_experiment("older", artifact_location=(tmp_path / "artifacts/older").as_uri())
    assert ensure_experiment(uri, "older", tmp_path / "artifacts") == older
    assert client.get_experiment(older).tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING

    # the view's filter and sort, as the store runs them: the train runs, best first, no parent and no other stage
    for name, error in (("repro #ab12", 1.0), ("train@modulus-0 #ab12", 3.0), ("train@modulus-1 #ab12", 2.0)):
        run = client.create_run(older, run_name=name)
        client.log_metric(run.info.run_id, "test_error", error)
    client.create_run(older, run_name="evaluate@modulus-0 #ab12")
    found = client.search_runs(
        [older], NUMBERS_VIEW["searchFilter"], order_by=[NUMBERS_VIEW["orderByKey"].replace("`", "") + " ASC"]
    )
    assert [r.info.run_name for r in found] == ["train@modulus-1 #ab12", "train@modulus-0 #ab12"]


def test_the_url_opens_the_view_of_the_experiment():
    url = runs_table_url(ui_base("sqlite:////repo/mlflow.db"), "1")
    assert (
        url == f"http://127.0.0.1:5000/#/experiments/1/runs?viewStateShareKey={VIEW_KEY}&workflowType=machine_learning"
    )
    assert runs_table_url(ui_base("http://10.0.0.5:8080/"), "7").startswith("http://10.0.0.5:8080/#/experiments/7/")
