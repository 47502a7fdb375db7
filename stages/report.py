"""Stage `report`: the paper-style comparison over seeds (Markdown, JSON, PNGs) and the summary metrics.

Reads every selected (variant, seed)'s training and evaluation results (:func:`pcn.pipeline.results.collect`,
which refuses results computed with other params than params.yaml holds), and writes results/report/: table.md
and table.json (test error mean, sd, min, max and n per variant; every ablation's paired difference to its
architecture's phase-collapse network with a Student-t interval and a sentence that follows from it; the trend
of each separation measure with depth), summary.json (mean test and validation error per variant: the metrics
DVC shows) and the figures. The report opens with the paper's claims, each with a verdict computed from
intervals (:mod:`pcn.analysis.claims`). When the execution completes, the registered models' aliases move to
the models it reports on.
"""

from process_defaults import set_process_defaults

set_process_defaults()  # before torch and pcn: stages/process_defaults.py

import sys
from dataclasses import asdict

from pcn.analysis.plots import plot_epoch_bands, plot_errors, plot_layer_bands
from pcn.analysis.report import LAYER_FIGURES, SUMMARY_KEYS, build_report, summary_metrics
from pcn.analysis.report_markdown import markdown
from pcn.analysis.report_studies import STUDIES_DIR, StudyNotFound, read_studies
from pcn.files import write_json, write_text
from pcn.pipeline.provenance import Provenance, ProvenanceChanged
from pcn.pipeline.results import ResultsError, collect

from mlflow_run import stage_run, tracking_uri
from stage_inputs import fail, load_params
from workspace import PARAMS_PATH, ROOT, WORKSPACE

FIGURES = ["test_error.png", "test_accuracy.png", *LAYER_FIGURES]


def write_figures(report: dict, variants: dict) -> None:
    """The report's figures: test error per variant, test accuracy by epoch, and the per-layer measures."""
    out = WORKSPACE.report_dir
    plot_errors(report["rows"], out / "test_error.png")
    plot_epoch_bands(
        {name: [r["history"] for r in v["seeds"].values()] for name, v in variants.items()}, out / "test_accuracy.png"
    )
    for name, (panels, log) in LAYER_FIGURES.items():
        plot_layer_bands(report["rows"], panels, out / name, log=log)


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


def move_aliases(params, run) -> None:
    """The pipeline completes: its models get the registry aliases (the report stands without them)."""
    from pcn.tracking.registry import move_aliases as move

    try:
        if not run.reachable():
            raise ConnectionError("the MLflow store does not answer")
        move(run.client, WORKSPACE, params.variants, params.seeds)
    except Exception as exc:
        print(f"warning: report: registry aliases not moved ({type(exc).__name__}: {exc})", file=sys.stderr)


def report(params, provenance: Provenance, run) -> str:
    run.log_params(
        {
            "seeds": params.seeds,
            "variants": params.variants,
            "confidence": params.report.confidence,
            "data.name": params.data.name,
        }
    )
    variants = collect(WORKSPACE, params)
    r = params.report
    studies = read_studies(ROOT, r.studies)
    built = build_report(params.data.name, variants, r.confidence, r.equivalence_margin, r.vanishing_share, studies)
    table = markdown(built)
    provenance.refuse_if_changed()
    out = WORKSPACE.report_dir
    write_text(out / "table.md", table)
    write_json(out / "table.json", built)
    summary = summary_metrics(built)
    write_json(out / "summary.json", summary)
    write_figures(built, variants)
    log_report_metrics(run, built, summary)
    for name in ["table.md", "table.json", "summary.json", *FIGURES]:
        run.log_artifact(out / name)
    for name in studies:  # the study's figure, which table.md links to in the repository
        run.log_artifact(ROOT / STUDIES_DIR / f"{name}.png", STUDIES_DIR)
    if params.runtime.log_models and run.run_id:
        move_aliases(params, run)
    return table


def main() -> None:
    params = load_params()
    provenance = Provenance.take(
        "report", ROOT, "stages/report.py", PARAMS_PATH,
        lambda p: {
            "seeds": p.seeds,
            "variants": p.variants,
            "data": p.data.name,
            "report": asdict(p.report),
            "models": {v: asdict(p.models[v]) for v in p.variants if v in p.models},
        },
        params,
    )  # fmt: skip
    try:
        with stage_run(params, "report") as run:
            table = report(params, provenance, run)
        provenance.refuse_if_changed(
            "Its outputs are written but not credited"
        )  # the last call: figures and aliases are written
        experiment_id = getattr(run, "experiment_id", None)  # None: tracking off
    except (ResultsError, ProvenanceChanged, StudyNotFound) as exc:
        fail(str(exc))
    print(table)
    if experiment_id is not None:
        from pcn.tracking.ui import runs_table_url, ui_base

        url = runs_table_url(ui_base(tracking_uri(params)), experiment_id)
        print(f"MLflow runs table (after `mlflow ui`, README): {url}")


if __name__ == "__main__":
    main()
