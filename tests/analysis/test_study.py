"""The study's measures (pcn.analysis.study) against independent computations (scipy), on hand-made reports."""

import math

import pytest
from scipy import stats

from pcn.analysis.study import StudyError, point, premise_by_seed, study_table
from pcn.analysis.study_markdown import study_markdown
from pcn.analysis.verdicts import CONTRADICTED, SUPPORTED, UNDECIDED

R = 1000 / 3600  # Nadeau and Bengio's ratio of the mnist5k splits


def row(variant, arch, errors, premise=None):
    """A report row: test errors by seed, and (LScat) the premise view with ``premise`` at layer 1."""
    views = {}
    if premise is not None:
        views["before_rho/flatten"] = {
            "layers": [1, 2],
            "class_mean_share": {"by_seed": {s: [p, 9.0] for s, p in premise.items()}},
        }
    return {"variant": variant, "arch": arch, "test_error_by_seed": errors, "views": views}


def report(modulus, soft, premise, resampling=R):
    return {
        "resampling": resampling,
        "rows": [
            row("modulus", "lscat", modulus, premise),
            row("soft_threshold", "lscat", soft, {s: 2 * p for s, p in premise.items()}),
            row("resnet_relu", "resnet18", {s: 1.0 for s in modulus}),  # no premise view: not averaged
        ],
    }


def nb_interval(values, confidence=0.95, r=R):
    n, mean, sd = len(values), sum(values) / len(values), stats.tstd(values)
    half = stats.t.ppf((1 + confidence) / 2, n - 1) * sd * math.sqrt(1 / n + r)
    return mean - half, mean + half


STUDY = {
    "key": "data.translated_mnist.canvas",
    "values": [28, 34, 40],
    "reference": "modulus",
    "compare": ["soft_threshold"],
}


def test_premise_share_averages_the_lscat_rows_of_each_seed():
    rows = report({"0": 1.0}, {"0": 2.0}, {"0": 0.3})["rows"]
    assert premise_by_seed(rows) == {"0": pytest.approx((0.3 + 0.6) / 2)}  # layer 1, LScat rows only
    assert premise_by_seed([rows[2]]) == {}


def test_gap_is_paired_by_seed_with_the_corrected_interval():
    modulus, soft = {"0": 2.0, "1": 3.5, "2": 2.5, "3": 4.0}, {"0": 30.0, "1": 41.0, "2": 28.0, "3": 35.5}
    p = point(report(modulus, soft, {s: 0.01 for s in modulus}), 40, "modulus", ["soft_threshold"], 0.95)
    diffs = [soft[s] - modulus[s] for s in modulus]
    low, high = nb_interval(diffs)
    gap = p["gap"]["soft_threshold"]["interval"]
    assert gap["mean"] == pytest.approx(sum(diffs) / 4)
    assert (gap["low"], gap["high"]) == (pytest.approx(low), pytest.approx(high))
    assert p["premise_share"]["mean"] == pytest.approx(0.015)
    assert p["test_error"]["modulus"]["mean"] == pytest.approx(3.0)


def test_only_common_seeds_are_paired_and_missing_rows_are_named():
    p = point(
        report({"0": 1.0, "1": 2.0, "2": 3.0}, {"1": 5.0, "2": 9.0}, {"0": 0.1}),
        40,
        "modulus",
        ["soft_threshold"],
        0.95,
    )
    assert p["gap"]["soft_threshold"]["by_seed"] == {"1": 3.0, "2": 6.0}
    with pytest.raises(StudyError, match="value 40.*no row of 'tanh'"):
        point(report({"0": 1.0}, {"0": 2.0}, {"0": 0.1}), 40, "modulus", ["tanh"], 0.95)
    with pytest.raises(StudyError, match="no LScat row"):
        point(
            {"rows": [row("modulus", "resnet18", {"0": 1.0}), row("soft_threshold", "resnet18", {"0": 2.0})]},
            40,
            "modulus",
            ["soft_threshold"],
            0.95,
        )


def tables(gaps_by_value):
    """Reports whose soft-thresholding gap at each value is ``gaps_by_value[i]`` (by seed)."""
    return {
        i: report({s: 2.0 for s in gaps}, {s: 2.0 + g for s, g in gaps.items()}, {s: 0.1 / (i + 1) for s in gaps})
        for i, gaps in enumerate(gaps_by_value)
    }


def test_growth_from_the_first_to_the_last_value_is_decided_from_its_interval():
    first, last = {"0": 5.0, "1": 7.0, "2": 6.0}, {"0": 25.0, "1": 31.0, "2": 27.0}
    table = study_table(STUDY, tables([first, {"0": 9.0, "1": 9.0, "2": 9.0}, last]), 0.95)
    g = table["growth"]["soft_threshold"]
    change = [last[s] - first[s] for s in first]
    assert (g["interval"]["low"], g["interval"]["high"]) == tuple(pytest.approx(x) for x in nb_interval(change))
    assert g["verdict"] == SUPPORTED and (g["from"], g["to"]) == (28, 40)
    shrinking = study_table(STUDY, tables([last, first, first]), 0.95)["growth"]["soft_threshold"]
    assert shrinking["verdict"] == CONTRADICTED
    noisy = study_table(STUDY, tables([first, first, {"0": 1.0, "1": 15.0, "2": 4.0}]), 0.95)
    noisy = noisy["growth"]["soft_threshold"]  # change -4, +8, -2: mean 0.67 under the floor z s sqrt(r) = 6.6
    assert noisy["verdict"] == UNDECIDED and "seeds_to_decide" in noisy and noisy["seeds_to_decide"] is None


def test_pending_values_are_kept_and_growth_waits_for_both_ends():
    done = tables([{"0": 5.0, "1": 7.0}, {"0": 6.0, "1": 8.0}, {"0": 9.0, "1": 8.5}])
    del done[2]
    table = study_table(STUDY, done, 0.95)
    assert [p.get("pending", False) for p in table["points"]] == [False, False, True]
    assert table["growth"] == {}
    text = study_markdown(table, "Study")
    assert "| 40 | pending |" in text and "once the first and the last values have finished" in text
    middle_missing = tables([{"0": 5.0, "1": 7.0}, {"0": 6.0, "1": 8.0}, {"0": 9.0, "1": 8.5}])
    del middle_missing[1]
    assert study_table(STUDY, middle_missing, 0.95)["growth"]["soft_threshold"]["to"] == 40


def test_markdown_states_every_value_and_the_verdict():
    table = study_table(STUDY, tables([{"0": 5.0, "1": 7.0, "2": 6.0}] * 2 + [{"0": 25.0, "1": 31.0, "2": 27.0}]), 0.95)
    text = study_markdown(table, "Study")
    lines = [line for line in text.splitlines() if line.startswith("| 28 |") or line.startswith("| 40 |")]
    assert len(lines) == 2 and "+6.00 [" in lines[0] and "+27.67 [" in lines[1]
    assert f"**{SUPPORTED}**" in text and "Nadeau and Bengio" in text


def test_the_premise_change_and_ends_without_a_common_seed():
    first, last = {"0": 5.0, "1": 7.0, "2": 6.0}, {"0": 25.0, "1": 31.0, "2": 27.0}
    table = study_table(STUDY, tables([first, first, last]), 0.95)  # premise 0.1 / (i + 1) on modulus, twice on soft
    change = table["premise_change"]
    assert change["interval"]["mean"] == pytest.approx((0.1 / 3 - 0.1) * 1.5) and change["seeds"] == ["0", "1", "2"]
    assert "- The premise share changes by -0.1 no interval from 28 to 40" in study_markdown(table, "Study")
    with pytest.raises(StudyError, match="values 28 and 40 share no seed"):
        study_table(STUDY, tables([{"0": 5.0, "1": 7.0}, first, {"2": 9.0}]), 0.95)
    broken = tables([first, first, last])
    del broken[1]["rows"][1]["test_error_by_seed"]
    with pytest.raises(StudyError, match="value 34: its report cannot be read .KeyError"):
        study_table(STUDY, broken, 0.95)
