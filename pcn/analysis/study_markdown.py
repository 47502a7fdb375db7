"""A study's table (:mod:`pcn.analysis.study`) as markdown: one line per value, then the growth verdicts."""

from __future__ import annotations

from pcn.analysis.statistics import interval_words


def _interval(i: dict) -> str:
    if i["low"] is None:
        return f"{i['mean']:+.2f} (no interval)"
    return f"{i['mean']:+.2f} [{i['low']:+.2f}, {i['high']:+.2f}]"


def _error(i: dict) -> str:
    return f"{i['mean']:.2f}" + (f" ± {i['sd']:.2f}" if i["sd"] is not None else "")


def _power(growth: dict) -> str:
    if "seeds_to_decide" not in growth:
        return ""
    need = growth["seeds_to_decide"]
    if need is None:
        return " (no number of seeds up to 10,000 decides it at this spread)"
    return f" (the observed spread would need about {need} seeds to decide it)"


def study_markdown(table: dict, title: str, level: int = 1, figure: str | None = None) -> str:
    """The study's table (:func:`pcn.analysis.study.study_table`) under ``title`` (a heading of ``level``): the
    measures at every value, then the premise share's change and each compared variant's growth verdict from the
    first value to the last. ``figure``, a markdown line (an image), goes right under the heading."""
    reference, compared = table["reference"], table["compare"]
    done = [p for p in table["points"] if not p.get("pending")]
    words = interval_words({"confidence": table["confidence"], "resampling": done[0]["resampling"] if done else 0})
    lines = [f"{'#' * level} {title}", ""] + ([figure, ""] if figure else [])
    lines += [
        f"`{table['key']}` at {', '.join(map(str, table['values']))}; the same variants and seeds at each value. "
        "Premise share: the share of the energy of the flattened first-layer wavelet coefficients carried by "
        "their class means (`class_mean_share`, cross-fitted; claim 6's premise), mean ± sd over the seeds. "
        f"Test error (%): mean ± sd over the seeds. Gap: test error minus {reference}'s, in points, with its "
        f"{words}.",
        "",
        f"| {table['key']} | premise share | {reference} error | "
        + " | ".join(f"{v} error | gap of {v}" for v in compared)
        + " |",
        "|---|---|---|" + "---|---|" * len(compared),
    ]
    for p in table["points"]:
        if p.get("pending"):
            lines.append(f"| {p['value']} | pending |" + " |" * (1 + 2 * len(compared)))
            continue
        share = p["premise_share"]
        cells = [f"{share['mean']:.3g}" + (f" ± {share['sd']:.2g}" if share["sd"] is not None else "")]
        cells.append(_error(p["test_error"][reference]))
        for v in compared:
            cells += [_error(p["test_error"][v]), _interval(p["gap"][v]["interval"])]
        lines.append(f"| {p['value']} | " + " | ".join(cells) + " |")
    lines.append("")
    change = table.get("premise_change")
    if change:
        i = change["interval"]
        interval = "no interval" if i["low"] is None else f"[{i['low']:+.3g}, {i['high']:+.3g}]"
        lines.append(
            f"- The premise share changes by {i['mean']:+.3g} {interval} from {change['from']} to {change['to']} "
            f"(paired by seed, {len(change['seeds'])} seeds)."
        )
    for v, g in table["growth"].items():
        lines.append(
            f"- Does the gap of {v} grow from {g['from']} to {g['to']}? Its change, paired by seed "
            f"({len(g['seeds'])} seeds): {_interval(g['interval'])} points: **{g['verdict']}**{_power(g)}."
        )
    if not table["growth"]:
        lines.append("- The growth is decided once the first and the last values have finished.")
    if table.get("kept"):
        lines.append(
            f"- Kept from the committed table (run in another checkout): {table['key']} = "
            f"{', '.join(map(str, table['kept']))}."
        )
    return "\n".join(lines) + "\n"
