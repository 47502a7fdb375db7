"""Statistics over seeds against independent computations (NumPy by hand, scipy, textbook t values)."""

import math

import numpy as np
import pytest

from pcn.analysis.statistics import (
    IntervalRule,
    comparison_sentence,
    incomplete_beta,
    paired_interval,
    seeds_to_decide,
    student_t_cdf,
    student_t_quantile,
    summary,
    trend,
)

scipy_stats = pytest.importorskip("scipy.stats")
scipy_special = pytest.importorskip("scipy.special")

ERRORS = [2.3, 2.9, 2.6]  # fixed numbers (test errors of three seeds, %)


def test_summary_against_numpy():
    s = summary(ERRORS)
    assert s["n"] == 3 and s["min"] == 2.3 and s["max"] == 2.9
    assert s["mean"] == pytest.approx(np.mean(ERRORS), rel=1e-15)
    assert s["sd"] == pytest.approx(np.std(ERRORS, ddof=1), rel=1e-14)  # sample sd (n - 1)
    assert summary([4.0])["sd"] is None


@pytest.mark.parametrize("df", [1, 2, 3, 4, 9, 30, 200])
@pytest.mark.parametrize("p", [0.6, 0.9, 0.95, 0.975, 0.995, 0.9995, 0.025])
def test_t_quantile_against_scipy(p, df):
    assert student_t_quantile(p, df) == pytest.approx(scipy_stats.t.ppf(p, df), rel=1e-9, abs=1e-12)


def test_t_cdf_and_incomplete_beta_against_scipy():
    for df in (1, 2, 5, 40):
        for t in (-7.5, -1.0, 0.0, 0.3, 2.0, 12.0):
            assert student_t_cdf(t, df) == pytest.approx(scipy_stats.t.cdf(t, df), abs=1e-12)
    for a, b, x in ((0.5, 0.5, 0.3), (2.0, 0.5, 0.9), (10.0, 3.0, 0.7), (1.5, 0.5, 0.01)):
        assert incomplete_beta(a, b, x) == pytest.approx(scipy_special.betainc(a, b, x), rel=1e-10)


def test_textbook_t_values():
    """Two-sided 95% critical values from a printed t table."""
    for df, value in ((1, 12.706), (2, 4.303), (4, 2.776), (10, 2.228)):
        assert student_t_quantile(0.975, df) == pytest.approx(value, abs=5e-4)


def test_paired_interval_by_hand():
    ablation, reference = [17.2, 7.7, 6.8], [2.3, 2.9, 2.6]  # the same three seeds
    d = np.subtract(ablation, reference)
    half = 4.302652729911275 * np.std(d, ddof=1) / math.sqrt(3)  # t_{0.975, 2} from tables
    got = paired_interval(list(d), 0.95)
    assert got["mean"] == pytest.approx(d.mean(), rel=1e-14)
    assert got["low"] == pytest.approx(d.mean() - half, rel=1e-9)
    assert got["high"] == pytest.approx(d.mean() + half, rel=1e-9)
    single = paired_interval([3.0], 0.95)
    assert single["low"] is None and single["high"] is None


def test_sentences_follow_from_the_interval():
    higher = comparison_sentence("cst", "mod", paired_interval([14.0, 13.0, 15.5], 0.95))
    assert "cst has a higher test error than mod" in higher and "distinguishable from zero" in higher
    lower = comparison_sentence("x", "mod", paired_interval([-3.0, -2.5, -3.2], 0.95))
    assert "x has a lower test error than mod" in lower
    unclear = comparison_sentence("tanh", "mod", paired_interval([4.0, -1.0, 0.5], 0.95))
    assert "not distinguishable from zero" in unclear and "higher" not in unclear
    one = comparison_sentence("tanh", "mod", paired_interval([4.0], 0.95))
    assert "single seed" in one and "cannot tell" in one


def test_trend():
    assert trend([0.8, 0.85, 0.9]) == {
        "first": 0.8,
        "last": 0.9,
        "change": pytest.approx(0.1),
        "rises": True,
        "steps_up": 2,
        "steps": 2,
        "monotonic": True,
    }
    t = trend([0.8, 0.85, 0.82, 0.92])
    assert t["rises"] and not t["monotonic"] and t["steps_up"] == 2
    assert not trend([3.0, 2.0, 1.0])["rises"] and trend([3.0, 2.0, 1.0])["monotonic"]


def test_identical_differences_give_no_interval_and_no_verdict():
    """Every seed giving the same difference is no evidence by itself: a zero-width interval is not reported."""
    interval = paired_interval([1.0, 1.0, 1.0], 0.95)
    assert interval["low"] is None and interval["high"] is None and interval["mean"] == 1.0
    sentence = comparison_sentence("a", "b", interval)
    assert "cannot tell" in sentence and "distinguishable from zero" not in sentence
    assert paired_interval([1.0, 1.5, 1.2], 0.95)["low"] is not None


@pytest.mark.parametrize(
    "sd, mean, boundary", [(0.81, 0.36, 0.58), (0.81, 0.0, 0.58), (2.0, 1.0, 0.0), (0.3, 5.0, 0.0)]
)
def test_seeds_to_decide_is_the_first_n_whose_scipy_half_width_excludes_the_boundary(sd, mean, boundary):
    n = seeds_to_decide({"mean": mean, "sd": sd, "confidence": 0.95}, boundary)
    half = lambda k: scipy_stats.t.ppf(0.975, k - 1) * sd / math.sqrt(k)  # noqa: E731
    assert half(n) < abs(mean - boundary)
    assert n == 2 or half(n - 1) >= abs(mean - boundary)


def test_seeds_to_decide_the_issue_figure_and_the_cases_without_one():
    # claim 1 of the translated run: paired sd 0.81; an interval centred on zero fits the 0.58 margin at 11 seeds
    assert seeds_to_decide({"mean": 0.0, "sd": 0.8142, "confidence": 0.95}, 0.58) == 11
    assert seeds_to_decide({"mean": 0.58, "sd": 0.81, "confidence": 0.95}, 0.58) is None  # on the boundary
    assert seeds_to_decide({"mean": 1e-6, "sd": 5.0, "confidence": 0.95}, 0.0) is None  # beyond the limit


def test_nadeau_bengio_interval_against_scipy():
    diffs, r = [1.2, 0.4, 0.9, 1.5, 0.7], 1000 / 3600  # five seeds, each with 1000 test and 3600 training digits
    got = paired_interval(diffs, 0.95, r)
    half = scipy_stats.t.ppf(0.975, 4) * np.std(diffs, ddof=1) * math.sqrt(1 / 5 + r)
    assert (got["low"], got["high"]) == pytest.approx((np.mean(diffs) - half, np.mean(diffs) + half), rel=1e-9)
    plain = paired_interval(diffs, 0.95)
    assert plain["high"] - plain["low"] < got["high"] - got["low"]  # the correction only widens
    assert IntervalRule(0.95, r).of(diffs) == got and got["resampling"] == r


@pytest.mark.parametrize("sd, mean, boundary", [(0.81, 0.36, 0.0), (2.0, 1.5, 0.0), (0.3, 0.5, 0.2)])
def test_seeds_to_decide_with_resampling_is_the_first_n_scipy_decides(sd, mean, boundary):
    r = 0.05
    n = seeds_to_decide({"mean": mean, "sd": sd, "confidence": 0.95, "resampling": r}, boundary)
    half = lambda k: scipy_stats.t.ppf(0.975, k - 1) * sd * math.sqrt(1 / k + r)  # noqa: E731
    assert half(n) < abs(mean - boundary)
    assert n == 2 or half(n - 1) >= abs(mean - boundary)


def test_no_number_of_seeds_decides_a_difference_below_the_resampling_floor():
    # claim 1 of the translated run under r = 0.2778: the half-width never falls below 1.96 * 0.81 * sqrt(r) = 0.84
    interval = {"mean": 0.36, "sd": 0.8142, "confidence": 0.95, "resampling": 1000 / 3600}
    assert seeds_to_decide(interval, 0.58) is None
    assert seeds_to_decide({**interval, "resampling": 0.0}, 0.58) is not None
