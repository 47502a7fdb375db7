"""Stage `report`: one paper-style table (Markdown + JSON) of all variants, with plots."""
from __future__ import annotations

import csv
import json

from common import EVAL_DIR, REPORT_DIR, TRAIN_DIR, load_params, run_tags, start_tracking, write_json

from pcn.plots import plot_errors, plot_layer_curves
from pcn.report import build_rows, markdown_table

METRICS = {"ncm_accuracy": False, "fisher_ratio": True, "cdnv": True, "mean_energy_ratio": False}


def read_separation(path) -> list[dict]:
    with open(path) as f:
        return [{k: (int(v) if k == "layer" else float(v)) for k, v in row.items()} for row in csv.DictReader(f)]


def main() -> None:
    params = load_params()
    experiment_id = start_tracking(params)
    variants = {}
    for name in params.variants:
        v = params.models[name]
        try:
            variants[name] = {
                "arch": v.arch, "nonlinearity": v.nonlinearity,
                "train": json.loads((TRAIN_DIR / name / "metrics.json").read_text()),
                "evaluate": json.loads((EVAL_DIR / name / "metrics.json").read_text()),
                "separation": read_separation(EVAL_DIR / name / "separation.csv")}
        except FileNotFoundError as exc:
            raise SystemExit(f"error: results of variant {name!r} are missing ({exc.filename}); "
                             f"run train@{name} and evaluate@{name}")
    rows = build_rows(params.data.name, variants)
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    (REPORT_DIR / "table.md").write_text(markdown_table(params.data.name, rows))
    write_json({"dataset": params.data.name, "rows": rows}, REPORT_DIR / "table.json")
    plot_errors(rows, REPORT_DIR / "test_error.png")
    curves = {name: v["separation"] for name, v in variants.items()}
    for metric, log in METRICS.items():
        plot_layer_curves(curves, metric, REPORT_DIR / f"{metric}.png", log=log)

    import mlflow
    with mlflow.start_run(experiment_id=experiment_id, run_name="report", tags=run_tags(params, "report", None)):
        for r in rows:
            mlflow.log_metric(f"{r['variant']}.test_error", r["test_error"])
        mlflow.log_artifacts(str(REPORT_DIR))
    print((REPORT_DIR / "table.md").read_text())


if __name__ == "__main__":
    main()
