"""Paper-style comparison table of trained variants.

Published numbers (test error in %, from the ICLR 2022 poster; see
shared/reference/paper-spec.md section 5). Only these cells could be read; the rest
of Tables 2 and 3 is unknown and is left blank rather than guessed.
"""
from __future__ import annotations

PAPER_ERRORS = {
    "cifar10": {("lscat", "mod"): 11.7, ("lscat_skip", "mod"): 7.7, ("lscat_skip", "cst"): 22.5},
    "imagenet": {("lscat", "mod"): 35.9, ("lscat_skip", "mod"): 30.1},
}
PAPER_TOP5_ERRORS = {"imagenet": {("lscat", "mod"): 15.2, ("lscat_skip", "mod"): 11.0}}
PAPER_BASELINES = {
    "cifar10": {"Scat (predefined P)": 27.7, "ResNet-20 (quoted by the paper)": 8.8},
    "imagenet": {"Scat (predefined P)": 73.0, "ResNet-18 (quoted by the paper)": 30.2},
}


def paper_error(dataset: str, arch: str, nonlinearity: str) -> float | None:
    return PAPER_ERRORS.get(dataset, {}).get((arch, nonlinearity))


def build_rows(dataset: str, variants: dict[str, dict]) -> list[dict]:
    """One row per variant.

    ``variants`` maps a variant name to ``{"arch", "nonlinearity", "train": train metrics,
    "evaluate": evaluate metrics, "separation": per-layer rows}``.
    """
    rows = []
    for name, v in variants.items():
        sep = v["separation"]
        first, last = sep[1] if len(sep) > 1 else sep[0], sep[-1]
        rows.append({
            "variant": name, "arch": v["arch"], "nonlinearity": v["nonlinearity"],
            "n_parameters": v["train"]["n_parameters"], "epochs": v["train"]["epochs"],
            "test_error": v["evaluate"]["test_error"], "best_epoch_error": v["train"]["best_test_error"],
            "paper_error": paper_error(dataset, v["arch"], v["nonlinearity"]),
            "ncm_accuracy_first": first["ncm_accuracy"], "ncm_accuracy_last": last["ncm_accuracy"],
            "fisher_ratio_last": last["fisher_ratio"], "mean_energy_ratio_last": last["mean_energy_ratio"],
        })
    return rows


def _cell(v, fmt="{:.2f}") -> str:
    if v is None:
        return "—"
    return fmt.format(v) if isinstance(v, float) else str(v)


def markdown_table(dataset: str, rows: list[dict]) -> str:
    """The table as Markdown, with the paper's baselines as context lines."""
    head = ("| variant | block | ρ | parameters | epochs | test error (%) | best-epoch error (%) | paper error (%) "
            "| NCM acc. block 1 | NCM acc. last | Fisher ratio last | class-mean energy last |")
    lines = [f"## {dataset}", "", head, "|" + "---|" * 12]
    for r in rows:
        lines.append("| " + " | ".join([
            r["variant"], r["arch"], r["nonlinearity"], f"{r['n_parameters']:,}", str(r["epochs"]),
            _cell(r["test_error"]), _cell(r["best_epoch_error"]), _cell(r["paper_error"], "{:.1f}"),
            _cell(r["ncm_accuracy_first"], "{:.3f}"), _cell(r["ncm_accuracy_last"], "{:.3f}"),
            _cell(r["fisher_ratio_last"], "{:.3g}"), _cell(r["mean_energy_ratio_last"], "{:.3g}")]) + " |")
    baselines = PAPER_BASELINES.get(dataset)
    lines.append("")
    if baselines:
        lines.append("Paper baselines (not trained here): " +
                     "; ".join(f"{k}: {v:.1f}%" for k, v in baselines.items()) + ".")
    else:
        lines.append(f"The paper reports no numbers on {dataset}; the 'paper error' column is empty.")
    lines.append("Test error: the model kept by train.select, on the test split. Best-epoch error selects the "
                 "epoch on the test set (optimistic; it is what the reference code logs).")
    return "\n".join(lines) + "\n"
