"""The report as Markdown (``table.md``): the claims table first, then the committed studies it shows
(:mod:`pcn.analysis.report_studies`), the errors per variant, Table 1 in the paper's layout, the paired comparisons
and the separation with depth (:func:`markdown`), all from the data of :func:`pcn.analysis.report.build_report`."""

from __future__ import annotations

from pcn.analysis.paper import PAPER_ERRORS, PAPER_TABLE1
from pcn.analysis.report_studies import studies_markdown
from pcn.analysis.statistics import interval_words
from pcn.analysis.verdicts import difference_name


def _table1_markdown(dataset: str, columns: list[dict]) -> list[str]:
    def ours(c):
        return "—" if c["test_error"] is None else f"{_pm(c['test_error'])} (n = {c['test_error']['n']})"

    lines = [
        "### Table 1, in the paper's layout",
        "",
        "| | " + " | ".join(c["column"] for c in columns) + " |",
        "|---|" + "---|" * len(columns),
        f"| ours, {dataset}: test error % (mean ± sd) | " + " | ".join(ours(c) for c in columns) + " |",
        "| ours: variant | " + " | ".join(c["variant"] or "not selected" for c in columns) + " |",
        "| ours: parameters | " + " | ".join(_cell(c["n_parameters"], "{:,}") for c in columns) + " |",
    ]
    lines += [
        f"| paper, {name} | " + " | ".join(f"{v:.1f}" for v in values) + " |" for name, values in PAPER_TABLE1.items()
    ]
    return lines + [
        "",
        "Scat: kymatio's scattering (order 2), predefined projections, then the LScat classifier; "
        "ResNet: torchvision's ResNet-18 with biases (ours), ResNet-20 / ResNet-18 quoted by the paper.",
        "",
    ]


def _pm(s: dict, fmt: str = "{:.2f}") -> str:
    return fmt.format(s["mean"]) + ("" if s["sd"] is None else " ± " + fmt.format(s["sd"]))


def _cell(v, fmt: str = "{:.2f}") -> str:
    return "—" if v is None else fmt.format(v)


def _comparison_cell(c: dict) -> str:
    """One comparison of a claim: the premise share, or ``a − b: mean [low, high] (n seeds)``, with the seeds an
    undecided one would need."""
    if "premise_share" in c:
        return f"premise: class-mean share of the wavelet coefficients {c['premise_share']:.3g}"
    i = c["interval"]
    ci = "no interval" if i["low"] is None else f"[{i['low']:+.3g}, {i['high']:+.3g}]"
    cell = f"{difference_name(c)}: {i['mean']:+.3g} {ci} ({len(c['seeds'])} seeds) → {c['verdict']}"
    if c.get("role") == "control":
        cell = f"control (not deciding): {cell}"
    if c.get("ratio") and c["ratio"]["low"] is not None:  # claim 3: the size, as a ratio of errors
        cell += f"; ratio {c['ratio']['mean']:.3g}× [{c['ratio']['low']:.3g}, {c['ratio']['high']:.3g}]"
    if "margin" in c:  # an equivalence: its margin, and one test split's counting noise at B's error
        cell += f"; margin +{c['margin']:.3g} points"
        if c.get("binomial_noise"):
            cell += f" (one test split's binomial noise at {c['b']}'s error: {c['binomial_noise']:.2g})"
    if c.get("seeds_to_decide"):
        cell += f" (about {c['seeds_to_decide']} seeds would decide it at this mean and spread)"
    elif "seeds_to_decide" in c:
        cell += " (no number of seeds decides it at this mean and spread)"
    return cell


def claims_markdown(report: dict) -> list[str]:
    """The claims table: the paper's evidence, ours with intervals, the computed verdict and what decided it."""
    lines = [
        f"## The paper's claims on {report['dataset']}",
        "",
        f"Verdicts are computed from {interval_words(report)} (rules: pcn/analysis/verdicts.py and claims.py); "
        "none is written by hand.",
        "",
        "| # | claim | paper | measure | ours | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for c in report["claims"]:
        ours = "<br>".join(_comparison_cell(x) for x in c["comparisons"]) or "—"
        lines.append(
            f"| {c['claim']} | {c['statement']} | {c['paper']} | {c['measure']} | {ours} | "
            f"**{c['verdict']}**: {c['reason']} |"
        )
    return lines + [""]


def _budget(row: dict) -> str:
    """The training budget of a variant: its learning rate and epochs, and the decay (lr times lr_gamma every
    lr_step epochs) when one happens within them."""
    recipe = row.get("recipe")
    if not recipe:  # a report written before rows recorded their recipe
        return _epochs(row["epochs"])
    decays = recipe["lr_step"] < recipe["epochs"] and recipe.get("lr_gamma", 1.0) != 1.0
    step = f", ×{recipe['lr_gamma']:g} every {recipe['lr_step']}" if decays else ""
    return f"lr {recipe['lr']:g}, {_epochs(recipe['epochs'])}{step}"


def _epochs(n: int) -> str:
    return f"{n} epoch" if n == 1 else f"{n} epochs"


def _train_accuracy(row: dict) -> str:
    values = [a for a in (row.get("train_accuracy_by_seed") or {}).values() if a is not None]
    return f"{min(values):.3f} – {max(values):.3f}" if values else "—"


def _variant_table(rows: list[dict]) -> list[str]:
    """One line per variant: errors over seeds and the separation of its last block (mean over seeds)."""
    lines = [
        "| variant | block | ρ | parameters | budget: lr, epochs | n | test error % (mean ± sd) | min – max | "
        "best-epoch error % | paper error % | train acc. last epoch (min – max) | probe acc. last (flattened) | "
        "NCM acc. last (spatial mean) | class-mean-difference share of ρ, block 1 (claim 6) |",
        "|" + "---|" * 14,
    ]
    for r in rows:
        te, views = r["test_error"], r["views"]
        paper = _cell(r["paper_error"], "{:.1f}")
        if r["paper_top5_error"] is not None:
            paper += f" (top-5 {r['paper_top5_error']:.1f})"
        rho = views.get("rho/flatten")
        lines.append(
            "| "
            + " | ".join(
                [
                    r["variant"],
                    r["arch"],
                    r["nonlinearity"],
                    f"{r['n_parameters']:,}",
                    _budget(r),
                    str(te["n"]),
                    _pm(te),
                    f"{te['min']:.2f} – {te['max']:.2f}",
                    _pm(r["best_epoch_error"]),
                    paper,
                    _train_accuracy(r),
                    f"{views['block/flatten']['probe_accuracy']['mean'][-1]:.3f}",
                    f"{views['block/spatial_mean']['ncm_accuracy']['mean'][-1]:.3f}",
                    "—" if rho is None else f"{rho['between_share']['mean'][0]:.3g}",
                ]
            )
            + " |"
        )
    return lines


def markdown(report: dict) -> str:
    """The report as Markdown (``table.md``): the claims table first, then the committed studies it shows."""
    dataset, rows = report["dataset"], report["rows"]
    seeds = sorted({s for r in rows for s in r["seeds"]})
    lines = claims_markdown(report) + studies_markdown(report.get("studies") or {})
    lines += [f"## {dataset}: test error over {len(seeds)} seeds ({', '.join(map(str, seeds))})", ""]
    lines += _variant_table(rows)
    level = f"{100 * report['confidence']:.0f}%"
    lines += [""] + _table1_markdown(dataset, report["table1"])
    lines += [
        "### Ablations against the phase-collapse network of the same architecture",
        "",
        f"Paired by seed: test error of the ablation minus that of the reference, in percentage points, with "
        f"a two-sided {level} Student-t interval over the seeds"
        + (f" (Nadeau and Bengio's correction, r = {report['resampling']:.4g})." if report.get("resampling") else "."),
        "",
        f"| ablation | reference | seeds | mean difference | {level} interval |",
        "|---|---|---|---|---|",
    ]
    for c in report["comparisons"]:
        i = c["interval"]
        ci = "—" if i["low"] is None else f"[{i['low']:+.2f}, {i['high']:+.2f}]"
        lines.append(f"| {c['ablation']} | {c['reference']} | {len(c['seeds'])} | {i['mean']:+.2f} | {ci} |")
    lines += [""] + [f"- {c['sentence']}" for c in report["comparisons"]] + [f"- {n}" for n in report["notes"]]
    lines += [
        "",
        "### Separation with depth",
        "",
        "From the mean curves over seeds of the held-out measures of pcn/analysis/separation.py (layer 0 is "
        "the input image, the last layer the last block's output); the figures show the curves with a band "
        "of one standard deviation.",
        "",
    ]
    for view, sentences in report["trends"].items():
        lines += [f"#### {view}", ""] + [f"- {s}" for s in sentences] + [""]
    lines.append("")
    if dataset not in PAPER_ERRORS:
        lines.append(f"The paper reports no numbers on {dataset}; the 'paper error' column is empty.")
    lines.append(
        "Test error: the model kept by train.select, on the test split; sd is the sample standard "
        "deviation over seeds. Best-epoch error selects the epoch on the test set (optimistic; it is what "
        "the reference code logs)."
    )
    return "\n".join(lines) + "\n"
