"""Stage `report`: the paper-style comparison over seeds (Markdown, JSON, PNGs) and the summary metrics.

Reads every selected (variant, seed)'s training and evaluation results, refuses results
computed with other params than params.yaml holds, and writes results/report/: table.md
and table.json (test error mean, sd, min, max and n per variant; every ablation's paired
difference to its architecture's phase-collapse network with a Student-t interval and a
sentence that follows from it; the trend of each separation measure with depth),
summary.json (mean test and validation error per variant: the metrics DVC shows) and the figures. The report opens
with the paper's claims, each with a verdict computed from intervals (:mod:`pcn.analysis.claims`).
"""

from __future__ import annotations

from process import prepare_stage

prepare_stage(__file__)  # before torch and pcn: stages/process.py

import sys
from dataclasses import asdict

from pcn.analysis.plots import plot_epoch_bands, plot_errors, plot_layer_bands
from pcn.analysis.report import LAYER_FIGURES, SUMMARY_KEYS, build_report, markdown, summary_metrics
from pcn.files import write_json, write_text

from common import EVAL_DIR, REPORT_DIR, TRAIN_DIR, Provenance, fail, load_params, read_csv, read_metrics, run_name
from registry import move_aliases
from tracked import stage_run

FIGURES = ["test_error.png", "test_accuracy.png", *LAYER_FIGURES]


def collect(params) -> dict[str, dict]:
    """Per variant: arch, non-linearity and, per seed, its train/evaluate metrics, separation and history."""
    variants = {}
    for name in params.variants:
        v = params.models[name]
        seeds = {}
        for seed in params.seeds:
            run = run_name(name, seed)
            expected = params.training_hash(name, seed)
            try:
                record = {
                    "train": read_metrics(TRAIN_DIR / run / "metrics.json"),
                    "evaluate": read_metrics(EVAL_DIR / run / "metrics.json"),
                    "separation": read_csv(EVAL_DIR / run / "separation.csv"),
                    "history": read_csv(TRAIN_DIR / run / "history.csv"),
                }
            except FileNotFoundError as exc:
                fail(f"results of {run} are missing ({exc.filename}); run train@{run} and evaluate@{run}")
            for stage in ("train", "evaluate"):
                if record[stage].get("params_hash") != expected:
                    fail(
                        f"results/{stage}/{run} come from a model trained with other params than params.yaml "
                        f"now holds; run dvc repro"
                    )
            seeds[seed] = record
        variants[name] = {"arch": v.arch, "nonlinearity": v.nonlinearity, "learned": v.learned, "seeds": seeds}
    return variants


def write_figures(report: dict, variants: dict) -> None:
    """The report's figures: test error per variant, test accuracy by epoch, and the per-layer measures."""
    plot_errors(report["rows"], REPORT_DIR / "test_error.png")
    plot_epoch_bands(
        {name: [r["history"] for r in v["seeds"].values()] for name, v in variants.items()},
        REPORT_DIR / "test_accuracy.png",
    )
    for name, (panels, log) in LAYER_FIGURES.items():
        plot_layer_bands(report["rows"], panels, REPORT_DIR / name, log=log)


def log_report_metrics(run, report: dict, summary: dict) -> None:
    """The report run's metrics and tags: mean errors (also on the parent run), spreads, paired differences
    with their interval, and each claim's verdict."""
    headline = {f"test_error/{name}": value for name, value in summary[SUMMARY_KEYS["test"]].items()}
    headline |= {f"val_error/{name}": value for name, value in summary[SUMMARY_KEYS["validation"]].items()}
    run.log_metrics(headline)
    spreads = {f"test_error_sd/{r['variant']}": r["test_error"]["sd"] for r in report["rows"]}
    run.log_metrics({k: v for k, v in spreads.items() if v is not None})
    for c in report["comparisons"]:
        i = c["interval"]
        bounds = (
            {}
            if i["low"] is None
            else {f"difference_low/{c['ablation']}": i["low"], f"difference_high/{c['ablation']}": i["high"]}
        )
        run.log_metrics({f"difference/{c['ablation']}": i["mean"], **bounds})
    run.log_metrics({f"claim_{c['claim']}_supported": float(c["verdict"] == "supported") for c in report["claims"]})
    run.set_tags({f"claim_{c['claim']}": c["verdict"] for c in report["claims"]})
    run.log_parent_metrics(headline)


def main() -> None:
    params = load_params()
    provenance = Provenance(
        "report",
        "stages/report.py",
        lambda p: {
            "seeds": p.seeds,
            "variants": p.variants,
            "data": p.data.name,
            "report": asdict(p.report),
            "models": {v: asdict(p.models[v]) for v in p.variants if v in p.models},
        },
        params,
    )
    with stage_run(params, "report") as run:
        run.log_params(
            {
                "seeds": params.seeds,
                "variants": params.variants,
                "confidence": params.report.confidence,
                "data.name": params.data.name,
            }
        )
        variants = collect(params)
        r = params.report
        report = build_report(params.data.name, variants, r.confidence, r.equivalence_margin, r.vanishing_share)
        table = markdown(report)
        provenance.refuse_if_changed()
        write_text(REPORT_DIR / "table.md", table)
        write_json(REPORT_DIR / "table.json", report)
        summary = summary_metrics(report)
        write_json(REPORT_DIR / "summary.json", summary)
        write_figures(report, variants)
        log_report_metrics(run, report, summary)
        for name in ["table.md", "table.json", "summary.json", *FIGURES]:
            run.log_artifact(REPORT_DIR / name)
        if params.runtime.log_models and run.run_id:  # the pipeline completes: its models get the aliases
            try:
                if not run.reachable():
                    raise ConnectionError("the MLflow store does not answer")
                move_aliases(run.client, params.variants, params.seeds)
            except Exception as exc:  # the report stands without them
                print(f"warning: report: registry aliases not moved ({type(exc).__name__}: {exc})", file=sys.stderr)
    print(table)


if __name__ == "__main__":
    main()
