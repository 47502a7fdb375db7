"""The paper-style report over seeds: a table, paired comparisons, and the trend of separation with depth.

Published numbers: :mod:`pcn.analysis.paper`.

The reference network of an architecture is the selected variant with its phase collapse (the family
of :mod:`pcn.names`; the first listed, the plain one: ``mod`` for the scattering architectures, ``abs``
for the bias-free ResNet-18, not the thresholded ``absdead``). Every other variant of that architecture
is an ablation, compared with it seed by seed (:func:`pcn.analysis.statistics.paired_interval`).
"""

from __future__ import annotations

from pcn.analysis.claims import check_claims
from pcn.analysis.paper import PAPER_ERRORS, PAPER_TOP5_ERRORS, TABLE1_COLUMNS
from pcn.analysis.separation import MEASURES
from pcn.analysis.statistics import comparison_sentence, paired_interval, summary, trend
from pcn.names import ARCHITECTURES, PHASE_COLLAPSE, nonlinearities_of, of_family

#: The phase collapse of each architecture, whose network the ablations are compared with (module docstring).
#: The Table 1 baselines are their own reference (Scat: the modulus of kymatio's scattering; the
#: standard ResNet, which has no phase collapse: its ReLU).
REFERENCES = {arch: (of_family(arch, PHASE_COLLAPSE) or nonlinearities_of(arch))[0] for arch in ARCHITECTURES}


def _block_panels(measure: str, label: str) -> list[tuple[str, str, str]]:
    """Panels of ``measure`` on the flattened block outputs and on their spatial means."""
    return [
        ("block/flatten", measure, f"{label}, flattened block output"),
        ("block/spatial_mean", measure, f"{label}, spatial means"),
    ]


#: The report's per-layer figures: file -> (panels ``(view, measure, title)``, log scale).
LAYER_FIGURES = {
    "mechanism.png": (
        [
            ("rho/flatten", "class_mean_share", "share of energy in class means of ρ(x⋆ψ)"),
            ("rho/flatten", "between_share", "share of energy in class-mean differences of ρ(x⋆ψ)"),
        ],
        False,
    ),
    "probe_accuracy.png": (_block_panels("probe_accuracy", "linear probe test accuracy"), False),
    "ncm_accuracy.png": (_block_panels("ncm_accuracy", "NCM test accuracy"), False),
    "fisher.png": (_block_panels("fisher", "Fisher ratio (cross-fitted)"), True),
}
#: The measures whose trend with depth the report puts in words (held-out classifiers, invariant Fisher ratio).
DEPTH_MEASURES = ("ncm_accuracy", "probe_accuracy", "fisher")


def _view_rows(separation: list[dict], place: str, feature: str) -> list[dict]:
    """One view's rows by layer; the block outputs start with the input image (layer 0)."""
    places = ("input", "block") if place == "block" else (place,)
    return sorted((r for r in separation if r["place"] in places and r["feature"] == feature), key=lambda r: r["layer"])


def _view_curves(seeds: dict) -> dict:
    """Per view ``place/feature`` (input image folded into ``block``), per measure: every seed's curve over the
    layers, the mean and sd over seeds at every layer, the trend of the mean curve and per-seed trends."""
    out = {}
    runs = list(seeds.items())
    views = dict.fromkeys((r["place"], r["feature"]) for r in runs[0][1]["separation"] if r["place"] != "input")
    for place, feature in views:
        curves = {seed: _view_rows(r["separation"], place, feature) for seed, r in runs}
        n = min(len(c) for c in curves.values())
        view = {"layers": [row["layer"] for row in next(iter(curves.values()))[:n]]}
        for metric, info in MEASURES.items():
            by_seed = {seed: [row[metric] for row in c[:n]] for seed, c in curves.items()}
            stats = [summary([values[i] for values in by_seed.values()]) for i in range(n)]
            mean = [s["mean"] for s in stats]
            view[metric] = {
                "mean": mean,
                "sd": [s["sd"] for s in stats],
                "by_seed": by_seed,
                "trend": trend(mean),
                "rises_in_seeds": sum(trend(v)["rises"] for v in by_seed.values()),
                "seeds": len(by_seed),
                "higher_separates": info.higher_separates,
            }
        out[f"{place}/{feature}"] = view
    return out


def variant_row(dataset: str, name: str, v: dict) -> dict:
    """Summary over seeds of one variant (``v``: arch, nonlinearity and per-seed results)."""
    seeds = dict(sorted(v["seeds"].items()))
    first = next(iter(seeds.values()))
    errors = [r["evaluate"]["test_error"] for r in seeds.values()]
    best = [r["train"]["best_test_error"] for r in seeds.values()]
    val = [r["train"].get("final_val_error") for r in seeds.values()]
    return {
        "variant": name,
        "arch": v["arch"],
        "nonlinearity": v["nonlinearity"],
        "learned": v.get("learned", True),
        "n_parameters": first["train"]["n_parameters"],
        "epochs": first["train"]["epochs"],
        "seeds": list(seeds),
        "test_error": summary(errors),
        "test_error_by_seed": dict(zip(seeds, errors)),
        "train_accuracy_by_seed": {seed: r["train"].get("final_train_acc") for seed, r in seeds.items()},
        "recipe": v.get("recipe"),
        "best_epoch_error": summary(best),
        "val_error": summary(val) if None not in val else None,
        "paper_error": PAPER_ERRORS.get(dataset, {}).get((v["arch"], v["nonlinearity"])),
        "paper_top5_error": PAPER_TOP5_ERRORS.get(dataset, {}).get((v["arch"], v["nonlinearity"])),
        "views": _view_curves(seeds),
        "resampled_split_by_seed": {seed: r["evaluate"].get("resampled_split") for seed, r in seeds.items()},
    }


def recorded_splits(rows: list[dict]) -> list[dict]:
    """Every run's split sizes ``{"n_train", "n_test"}`` when every run drew its own split and recorded them (the
    evaluate stage's ``resampled_split``), else ``[]``: a test split shared by every seed has no record, and a
    run written before the record existed gives none."""
    splits = [s for r in rows for s in r.get("resampled_split_by_seed", {}).values()]
    return [] if any(not s for s in splits) else splits


def resampling_ratio(rows: list[dict]) -> float:
    """Nadeau and Bengio's :math:`r = n_{test} / n_{train}` (mean over every run) of :func:`recorded_splits`,
    else 0: a test split shared by every seed needs no correction, and without the record there is no ratio."""
    splits = recorded_splits(rows)
    return sum(s["n_test"] / s["n_train"] for s in splits) / len(splits) if splits else 0.0


def test_size(rows: list[dict]) -> float | None:
    """The mean number of test images of a run's split (:func:`recorded_splits`), else None."""
    splits = recorded_splits(rows)
    return sum(s["n_test"] for s in splits) / len(splits) if splits else None


def comparisons(rows: list[dict], confidence: float, resampling: float = 0.0) -> tuple[list[dict], list[str]]:
    """Paired comparisons of every ablation with its architecture's phase-collapse network.

    Returns the comparisons and notes on ablations without a reference among the variants.
    """
    references = {}
    for r in rows:
        if REFERENCES.get(r["arch"]) == r["nonlinearity"]:
            references.setdefault(r["arch"], r)
    out, notes = [], []
    for r in rows:
        ref = references.get(r["arch"])
        if ref is r:
            continue
        if ref is None:
            notes.append(
                f"{r['variant']}: no {r['arch']} network with the phase collapse "
                f"({REFERENCES.get(r['arch'])}) is selected, so it is not compared."
            )
            continue
        common = sorted(set(r["test_error_by_seed"]) & set(ref["test_error_by_seed"]))
        if not common:
            notes.append(f"{r['variant']}: no seed in common with {ref['variant']}.")
            continue
        diffs = [r["test_error_by_seed"][s] - ref["test_error_by_seed"][s] for s in common]
        interval = paired_interval(diffs, confidence, resampling)
        out.append(
            {
                "ablation": r["variant"],
                "reference": ref["variant"],
                "arch": r["arch"],
                "seeds": common,
                "differences": diffs,
                "interval": interval,
                "sentence": comparison_sentence(r["variant"], ref["variant"], interval),
            }
        )
    return out, notes


def table1(rows: list[dict]) -> list[dict]:
    """The paper's Table 1 layout on our data: for each column of :data:`TABLE1_COLUMNS`, the first
    selected variant with that architecture and non-linearity (None if none is selected)."""
    out = []
    for label, arch, rho in TABLE1_COLUMNS:
        r = next((r for r in rows if r["arch"] == arch and r["nonlinearity"] == rho), None)
        out.append(
            {
                "column": label,
                "arch": arch,
                "variant": r["variant"] if r else None,
                "test_error": r["test_error"] if r else None,
                "n_parameters": r["n_parameters"] if r else None,
            }
        )
    return out


def trend_sentence(row: dict, view: str) -> str:
    """How the separation of one view (block outputs) moves from the input to the last layer, in words.

    Computed from the mean curves of :data:`DEPTH_MEASURES`; when they move in different directions the
    sentence says so and draws no conclusion.
    """
    curves = row["views"][view]
    moves = []
    for metric in DEPTH_MEASURES:
        c = curves[metric]
        t = c["trend"]
        verb = "is unchanged" if t["change"] == 0 else ("rises" if t["rises"] else "falls")
        moves.append(
            (
                metric,
                verb,
                f"{MEASURES[metric].label} {verb} ({t['first']:.3g} → {t['last']:.3g}; "
                f"last above input in {c['rises_in_seeds']} of {c['seeds']} seeds)",
            )
        )
    head = f"{row['variant']}, {view.replace('/', ' outputs, ').replace('_', ' ')} features: "
    details = "; ".join(m[2] for m in moves)
    verbs = {m[1] for m in moves}
    if verbs in ({"rises"}, {"falls"}):
        more = "more" if verbs == {"rises"} else "less"
        return (
            f"{head}{details}. All three measures agree: classes are {more} separated at the last layer than at "
            "the input."
        )
    return head + details + ". The measures disagree, so no conclusion on separation is drawn from them."


def interval_description(resampling: float) -> str:
    """table.json's ``interval``: how the paired comparisons' intervals are computed."""
    words = "two-sided Student t over paired seeds, ablation minus its architecture's phase-collapse network"
    return words + (f", Nadeau-Bengio corrected (r = {resampling:.4g})" if resampling else "")


def build_report(
    dataset: str,
    variants: dict[str, dict],
    confidence: float,
    margin: float = 0.2,
    vanishing_share: float = 0.01,
    studies: dict[str, dict] | None = None,
) -> dict:
    """Everything the report shows, as JSON-able data (``table.json``); claims first. ``studies``: the committed
    study tables it shows (:func:`pcn.analysis.report_studies.read_studies`)."""
    rows = [variant_row(dataset, name, v) for name, v in variants.items()]
    resampling, n_test = resampling_ratio(rows), test_size(rows)
    comps, notes = comparisons(rows, confidence, resampling)
    views = [v for v in ("block/spatial_mean", "block/flatten") if all(v in r["views"] for r in rows)]
    return {
        "dataset": dataset,
        "confidence": confidence,
        "resampling": resampling,
        "test_size": n_test,
        "claims": check_claims(rows, confidence, margin, vanishing_share, resampling, n_test),
        "interval": interval_description(resampling),
        "rows": rows,
        "table1": table1(rows),
        "comparisons": comps,
        "notes": notes,
        "trends": {view: [trend_sentence(r, view) for r in rows] for view in views},
        "studies": studies or {},
    }


#: The keys of summary.json (the metrics file DVC shows): mean over seeds, in percent.
SUMMARY_KEYS = {"test": "test_error_pct", "validation": "val_error_pct"}


def summary_metrics(report: dict) -> dict:
    """The metrics file DVC shows (``dvc exp show`` and ``dvc exp diff`` columns ``<key>.<variant>``), one
    mapping per key, each ``{variant: value}``:

    * ``test_error_pct``: the mean test error over the seeds, in percent;
    * ``test_error_sd``: its standard deviation over the seeds; ``n_seeds``: how many seeds;
    * ``test_error_low`` / ``test_error_high``: the two-sided Student-t interval of the mean at
      ``report.confidence``, :math:`\\bar e \\pm t_{n-1} s \\sqrt{1/n + r}` (``r``: the report's Nadeau-Bengio
      ratio, 0 with a shared test split), its low end clipped at 0 (an error rate
      is not negative; left out with one seed, or no spread);
    * ``val_error_pct``: the mean validation error (the model kept, on the validation split carved from the
      training part): what hyperparameter sweeps compare; left out for variants trained without one.

    Values are rounded to 4 decimals (hundredths of an image in a thousand)."""
    rows, confidence, r = report["rows"], report["confidence"], report.get("resampling", 0.0)
    intervals = {v["variant"]: paired_interval(list(v["test_error_by_seed"].values()), confidence, r) for v in rows}
    return {
        SUMMARY_KEYS["test"]: {r["variant"]: round(r["test_error"]["mean"], 4) for r in rows},
        "test_error_sd": {v: round(i["sd"], 4) for v, i in intervals.items() if i["sd"] is not None},
        "test_error_low": {v: round(max(0.0, i["low"]), 4) for v, i in intervals.items() if i["low"] is not None},
        "test_error_high": {v: round(i["high"], 4) for v, i in intervals.items() if i["high"] is not None},
        "n_seeds": {v: i["n"] for v, i in intervals.items()},
        SUMMARY_KEYS["validation"]: {
            r["variant"]: round(r["val_error"]["mean"], 4) for r in rows if r.get("val_error")
        },
    }
