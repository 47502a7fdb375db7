"""Statistics over seeds: summaries, paired differences with Student-t intervals, trends with depth.

A result that depends on the training seed is reported over seeds. For a variant with
values :math:`x_1 .. x_n` (one per seed): the mean, the sample standard deviation
(:math:`n - 1` in the denominator), the minimum and maximum. An ablation is compared with the
modulus network of the same architecture on the same seeds, by the paired differences
:math:`d_i = x_i^{ablation} - x_i^{modulus}` and the Student-t interval

.. math::

    \\bar d \\pm t_{(1 + c)/2,\\, n - 1}\\, s_d / \\sqrt n

at confidence ``c``, which assumes the differences are independent draws from a normal
distribution. With ``data.resplit`` they are not: every seed draws its own train and test split from one
pool of images, so two seeds' test sets overlap and their training sets share most images, and the plain
interval is too narrow. The report then uses Nadeau and Bengio's corrected resampled t interval
(Machine Learning 52, 2003), which widens the variance of the mean by the ratio ``r`` of test to training
images of each split:

.. math::

    \\bar d \\pm t_{(1 + c)/2,\\, n - 1}\\, s_d \\sqrt{1/n + r}, \\qquad r = n_{test} / n_{train}

(``resampling`` below; ``r = 0`` gives the plain interval, right for a test split shared by every seed). Its
half-width never falls below :math:`z\\, s_d \\sqrt r`: more seeds cannot decide a difference smaller than
that. Normality is the t test's usual approximation, rough at n = 3. An undecided verdict comes with the
seeds that would decide it at the observed spread (:func:`seeds_to_decide`). The quantile is computed here
(:func:`student_t_quantile`, tested against scipy).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def summary(values: Sequence[float]) -> dict:
    """``{"n", "mean", "sd", "min", "max"}``; ``sd`` is the sample standard deviation (None for n = 1)."""
    n = len(values)
    if n == 0:
        raise ValueError("summary of no values")
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return {"n": n, "mean": mean, "sd": sd, "min": min(values), "max": max(values)}


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def incomplete_beta(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta function :math:`I_x(a, b)`."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def student_t_cdf(t: float, df: float) -> float:
    """:math:`P(T \\le t)` for Student's t with ``df`` degrees of freedom."""
    tail = 0.5 * incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def student_t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t (bisection on :func:`student_t_cdf` to 1e-12)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"quantile level must be in (0, 1), got {p}")
    if p < 0.5:
        return -student_t_quantile(1.0 - p, df)
    low, high = 0.0, 1.0
    while student_t_cdf(high, df) < p:
        low, high = high, 2.0 * high
    while high - low > 1e-12 * max(1.0, high):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if student_t_cdf(mid, df) < p else (low, mid)
    return 0.5 * (low + high)


def paired_interval(differences: Sequence[float], confidence: float, resampling: float = 0.0) -> dict:
    """Mean paired difference with its Student-t interval: ``{"n", "mean", "sd", "low", "high", "t",
    "confidence", "resampling"}``; half-width :math:`t\\, s_d \\sqrt{1/n + r}` with ``r = resampling``
    (module docstring: 0 for the plain interval, the test-to-training ratio for resampled splits).

    ``low``/``high`` are None with a single pair, and when every difference is the same (no spread to
    estimate: an interval of zero width would call any nonzero difference "distinguishable" on its own).
    """
    s = summary(differences)
    out = {
        "n": s["n"],
        "mean": s["mean"],
        "sd": s["sd"],
        "low": None,
        "high": None,
        "t": None,
        "confidence": confidence,
        "resampling": resampling,
    }
    if s["n"] > 1 and s["sd"] > 0:
        t = student_t_quantile((1 + confidence) / 2, s["n"] - 1)
        half = t * s["sd"] * math.sqrt(1 / s["n"] + resampling)
        out.update(low=s["mean"] - half, high=s["mean"] + half, t=t)
    return out


@dataclass(frozen=True)
class IntervalRule:
    """How a report's intervals are computed: the ``confidence`` level and the ``resampling`` ratio
    :math:`r = n_{test} / n_{train}` of Nadeau and Bengio's correction (0: none; module docstring)."""

    confidence: float
    resampling: float = 0.0

    def of(self, differences: Sequence[float]) -> dict:
        """:func:`paired_interval` of ``differences`` under this rule."""
        return paired_interval(differences, self.confidence, self.resampling)


def ratio_interval(numerators: Sequence[float], denominators: Sequence[float], rule: IntervalRule) -> dict | None:
    r"""The ratio of two paired positive quantities with its interval: ``{"mean", "low", "high"}``.

    The paired logarithms :math:`d_i = \log a_i - \log b_i` get the Student-t interval of
    :func:`paired_interval`, mapped back by :math:`\exp`: ``mean`` is the geometric mean of the per-seed
    ratios :math:`a_i / b_i`, and ``[low, high]`` its interval (the interval of a ratio is not symmetric).
    ``low``/``high`` are None where :func:`paired_interval` gives none; None when any value is not positive
    (a zero error has no ratio).
    """
    if not numerators or any(v <= 0 for v in (*numerators, *denominators)):
        return None
    logs = rule.of([math.log(a) - math.log(b) for a, b in zip(numerators, denominators)])
    back = {k: None if logs[k] is None else math.exp(logs[k]) for k in ("mean", "low", "high")}
    return back | {"n": logs["n"]}


def placement(value: float, interval: dict) -> str:
    """Where ``value`` falls against ``interval``: ``"inside"``, ``"below"`` or ``"above"`` it (``"unknown"``
    without an interval)."""
    if interval["low"] is None:
        return "unknown"
    return "below" if value < interval["low"] else "above" if value > interval["high"] else "inside"


def seeds_to_decide(interval: dict, boundary: float, limit: int = 10_000) -> int | None:
    """The fewest paired seeds at which an interval with this one's mean and sd would exclude ``boundary``.

    A power figure for an undecided verdict: the smallest :math:`n \\ge 2` with

    .. math::

        t_{(1 + c)/2,\\, n - 1}\\, s_d \\sqrt{1/n + r} < |\\bar d - b|

    where :math:`b` is the verdict's boundary (0 for a direction, the margin for an equivalence) and :math:`r`
    the interval's resampling ratio. It assumes the mean and the spread stay as observed, so it says how far
    the data are from a decision, not what a new experiment would find. None when there is no spread to scale
    (one seed, equal differences), when the mean sits on the boundary, when the corrected half-width's floor
    :math:`z\\, s_d \\sqrt r` already reaches the distance (no number of seeds decides it), or beyond ``limit``
    seeds.
    """
    sd, distance, level = interval["sd"], abs(interval["mean"] - boundary), (1 + interval["confidence"]) / 2
    r = interval.get("resampling", 0.0)
    if not sd or distance == 0:
        return None
    z = student_t_quantile(level, 1e9)
    if z * sd * math.sqrt(r) >= distance:
        return None
    n = max(2, int((z * sd) ** 2 / (distance**2 - r * (z * sd) ** 2)))  # the normal approximation: a lower bound
    while n <= limit:
        if student_t_quantile(level, n - 1) * sd * math.sqrt(1 / n + r) < distance:
            return n
        n += 1
    return None


def comparison_sentence(ablation: str, reference: str, interval: dict, unit: str = "percentage points") -> str:
    """One sentence whose wording follows from the interval of ``ablation - reference`` (test error)."""
    n, mean = interval["n"], interval["mean"]
    level = f"{100 * interval['confidence']:.0f}%"
    head = f"{ablation} minus {reference}: {mean:+.2f} {unit}"
    if interval["low"] is None and n == 1:
        return (
            f"{head} on a single seed: no interval, so this run cannot tell whether {ablation} and {reference} differ."
        )
    if interval["low"] is None:
        return (
            f"{head} in each of {n} paired seeds: the differences do not vary, so no interval can be "
            f"estimated and these seeds alone cannot tell whether {ablation} and {reference} differ."
        )
    ci = f"({level} CI [{interval['low']:+.2f}, {interval['high']:+.2f}], Student t over {n} paired seeds)"
    if interval["low"] > 0:
        return (
            f"{head} {ci}: {ablation} has a higher test error than {reference}; the difference is "
            "distinguishable from zero at these seeds."
        )
    if interval["high"] < 0:
        return (
            f"{head} {ci}: {ablation} has a lower test error than {reference}; the difference is "
            "distinguishable from zero at these seeds."
        )
    return (
        f"{head} {ci}: the interval contains zero, so the difference is not distinguishable from zero at these seeds."
    )


def trend(curve: Sequence[float]) -> dict:
    """How a per-layer curve moves from its first to its last point.

    Returns ``{"first", "last", "change", "rises", "steps_up", "steps", "monotonic"}``:
    ``rises`` is ``last > first``; ``steps_up`` counts the layer-to-layer increases out of
    ``steps``; ``monotonic`` is true when every step goes the same way as the whole curve.
    """
    steps = [b - a for a, b in zip(curve, curve[1:])]
    change = curve[-1] - curve[0]
    if abs(change) <= 1e-12 * max(abs(curve[0]), abs(curve[-1])):
        change = 0.0  # equal up to rounding: neither rises nor falls
    rises = change > 0
    up = sum(1 for s in steps if s > 0)
    monotonic = change != 0 and (all(s > 0 for s in steps) if rises else all(s < 0 for s in steps))
    return {
        "first": curve[0],
        "last": curve[-1],
        "change": change,
        "rises": rises,
        "steps_up": up,
        "steps": len(steps),
        "monotonic": monotonic,
    }


def interval_words(report: dict) -> str:
    """How the report's intervals are computed, in words: the level, and Nadeau and Bengio's correction when
    every seed drew its own split (``report["resampling"]``, :mod:`pcn.analysis.statistics`)."""
    level = f"{100 * report['confidence']:.0f}%"
    r = report.get("resampling", 0.0)
    words = f"two-sided {level} Student-t intervals of differences paired by seed"
    if r:
        return (
            f"{words}, widened by Nadeau and Bengio's correction for resampled splits (each seed drew its own "
            f"train/test split: half-width t·s·√(1/n + r), r = n_test / n_train = {r:.4g})"
        )
    return words + " (one test split for every seed, or split sizes not recorded: no resampling correction)"
