"""What MLflow's UI (3.17) opens on for the pipeline's experiment: model-training mode and a runs table of numbers.

* **Mode.** 3.17's UI shows an experiment in the mode of its global "GenAI | Model training" switch: the URL's
  ``workflowType`` (``genai`` or ``machine_learning``), else the browser's local storage ``mlflow.workflowType``,
  else GenAI (side bar of traces, sessions, judges, agent versions; the runs page is "Training runs"). With that
  switch on (it is in 3.17's build), the experiment tag ``mlflow.experimentKind`` is not read for the mode, so
  :func:`runs_table_url` carries ``workflowType=machine_learning``. The tag is still set
  (``custom_model_development``: the kind of the "Model training" mode, the enum of ``mlflow/server/js/build``:
  ``GENAI_DEVELOPMENT``, ``CUSTOM_MODEL_DEVELOPMENT``, ``FINETUNING``, ...), which the UI reads where the switch is
  off. ``bench/ui_browser.py`` checks all this in a headless browser.
* **The runs table on the numbers.** A runs-table URL with ``?viewStateShareKey=<key>`` makes the UI read the
  experiment tag ``mlflow.sharedViewState.<key>`` (a JSON view: search facets and table state) and open on it.
  The pipeline's experiment carries the view :data:`NUMBERS_VIEW`: the train runs only (``train@<variant>-<seed>
  #<id>``: one per model; a filter or a metric sort shows them flat, not folded under their parent), sorted by
  the headline metric ``test_error`` (ascending), with the columns ``test_error``, ``val_error``, the variant
  and the seed. ``best_test_error`` and the other test-selected metrics are not among them.
"""

from __future__ import annotations

import json

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"
SHARED_VIEW_TAG_PREFIX = "mlflow.sharedViewState."
VIEW_KEY = "pcn-numbers"
#: The URL parameter, and its value, of the UI's "Model training" mode (its global GenAI / Model training switch).
WORKFLOW_PARAM = "workflowType=machine_learning"
HEADLINE = "test_error"
#: The runs the view lists: one train run per model (the stage runs' names are ``train@<variant>-<seed> #<id>``).
TRAIN_RUNS_FILTER = "attributes.run_name LIKE 'train@%'"


def column(kind: str, key: str) -> str:
    """A runs-table column (and sort key) as the UI names it: ``metrics.`test_error```."""
    return f"{kind}.`{key}`"


#: The runs table a user should see first (module docstring), as the UI's shared view state.
NUMBERS_VIEW = {
    "searchFilter": TRAIN_RUNS_FILTER,
    "orderByKey": column("metrics", HEADLINE),
    "orderByAsc": True,
    "selectedColumns": [
        column("metrics", HEADLINE),
        column("metrics", "val_error"),
        column("tags", "dvc.variant"),
        column("params", "seed"),
        column("tags", "dvc.exp_name"),
    ],
}


def experiment_ui_tags() -> dict[str, str]:
    """The tags that make the UI open the pipeline's experiment in model-training mode, on its numbers."""
    return {EXPERIMENT_KIND_TAG: MODEL_TRAINING, SHARED_VIEW_TAG_PREFIX + VIEW_KEY: json.dumps(NUMBERS_VIEW)}


def runs_table_url(base: str, experiment_id: str) -> str:
    """The URL of the experiment's runs table opened on :data:`NUMBERS_VIEW`, in "Model training" mode, under the
    UI at ``base``."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?viewStateShareKey={VIEW_KEY}&{WORKFLOW_PARAM}"


def ui_base(tracking_uri: str) -> str:
    """Where the UI of the store ``tracking_uri`` answers: a tracking server serves it itself; for a database,
    README's ``mlflow ui`` command (port 5000 on loopback)."""
    return tracking_uri.rstrip("/") if tracking_uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
