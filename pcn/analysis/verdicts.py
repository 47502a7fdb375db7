"""Verdicts: the fixed vocabulary and the rules that compute one from intervals over seeds.

Every number that decides a verdict is a difference paired by seed (between two variants on the seeds they
share, or between two layers of one network), with its two-sided Student-t interval
(:func:`pcn.analysis.statistics.paired_interval`, level ``report.confidence``, with Nadeau and Bengio's
correction when every seed drew its own split). The vocabulary is fixed (:data:`VERDICTS`); the rules:

* a *direction* ("A has a higher error than B", "the modulus gives a larger share"): **supported** when
  the interval of the difference lies above zero, **contradicted** when it lies below zero, otherwise
  **not distinguishable at these seeds** (also with one seed or a difference that never varies: no
  interval);
* an *equivalence* ("A reaches the accuracy of B"): with the margin ``m`` = ``report.equivalence_margin``
  times B's mean test error, **supported** when the interval of ``error(A) - error(B)`` lies below
  ``+m``, **contradicted** when it lies above ``+m``, otherwise not distinguishable;
* a claim made of several comparisons is contradicted if any part is, supported if every part is;
* **not testable on this data** when the variants a claim needs are not among the selected ones, or
  when the data do not meet the claim's premise (claim 6: the class means of the first-layer wavelet
  coefficients must carry at most ``report.vanishing_share`` of their energy), with the reason.
"""

from __future__ import annotations

from collections.abc import Callable

from pcn.analysis.statistics import IntervalRule, seeds_to_decide

SUPPORTED, CONTRADICTED = "supported", "contradicted"
UNDECIDED, UNTESTABLE = "not distinguishable at these seeds", "not testable on this data"
#: The fixed vocabulary of verdicts.
VERDICTS = (SUPPORTED, CONTRADICTED, UNDECIDED, UNTESTABLE)


def direction_verdict(interval: dict) -> str:
    """Verdict on "the difference is positive" from its interval (module docstring)."""
    if interval["low"] is None:
        return UNDECIDED
    if interval["low"] > 0:
        return SUPPORTED
    if interval["high"] < 0:
        return CONTRADICTED
    return UNDECIDED


def equivalence_verdict(interval: dict, margin: float) -> str:
    """Verdict on "the difference is at most ``margin``" from its interval (module docstring)."""
    if interval["low"] is None:
        return UNDECIDED
    if interval["high"] < margin:
        return SUPPORTED
    if interval["low"] > margin:
        return CONTRADICTED
    return UNDECIDED


def direction(interval: dict, _b_mean: float = 0.0) -> tuple[str, float]:
    """The rule of a direction: its verdict (:func:`direction_verdict`) and its boundary, zero."""
    return direction_verdict(interval), 0.0


def combine(verdicts: list[str]) -> str:
    """One verdict for a claim made of several comparisons (module docstring)."""
    if not verdicts:
        return UNTESTABLE
    if CONTRADICTED in verdicts:
        return CONTRADICTED
    if all(v == SUPPORTED for v in verdicts):
        return SUPPORTED
    return UNDECIDED


def view_value(row: dict, view: tuple[str, str, str], layer: int | str) -> dict:
    """Per seed, a measure of ``row`` at ``layer`` (an index, or "last" / "first" of the view's layers)."""
    place, feature, measure = view
    curves = row["views"].get(f"{place}/{feature}")
    if curves is None:
        return {}
    layers = curves["layers"]
    at = {"first": layers[0] if place != "block" else layers[min(1, len(layers) - 1)], "last": layers[-1]}
    index = layers.index(at.get(layer, layer)) if at.get(layer, layer) in layers else None
    if index is None:
        return {}
    return {seed: values[index] for seed, values in curves[measure]["by_seed"].items()}


def error_by_seed(row: dict) -> dict:
    return row["test_error_by_seed"]


def compare(a: dict, b: dict, value: Callable[[dict], dict], rule: IntervalRule) -> dict | None:
    """``value(a) - value(b)`` paired over their common seeds, with its interval; None without common seeds."""
    va, vb = value(a), value(b)
    seeds = sorted(set(va) & set(vb))
    if not seeds:
        return None
    diffs = [va[s] - vb[s] for s in seeds]
    return {
        "a": a["variant"],
        "b": b["variant"],
        "seeds": seeds,
        "interval": rule.of(diffs),
        "mean_a": sum(va[s] for s in seeds) / len(seeds),
        "mean_b": sum(vb[s] for s in seeds) / len(seeds),
    }


def with_verdict(c: dict, verdict: str, boundary: float) -> dict:
    """``c`` with its verdict and, when undecided, ``seeds_to_decide``: the paired seeds that the observed mean
    and spread would need to decide it against ``boundary`` (:func:`pcn.analysis.statistics.seeds_to_decide`)."""
    c["verdict"] = verdict
    if verdict == UNDECIDED:
        c["seeds_to_decide"] = seeds_to_decide(c["interval"], boundary)
    return c


def difference_name(c: dict) -> str:
    """``a − b``, or ``a`` for a quantity compared with zero."""
    return c["a"] if c["b"] is None else f"{c['a']} − {c['b']}"
