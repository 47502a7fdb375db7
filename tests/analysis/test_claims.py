"""The claims' verdicts on hand-made intervals and results: every word of the vocabulary is reachable."""

import pytest

from pcn import names
from pcn.analysis import report_markdown
from pcn.analysis.claims import check_claims
from pcn.analysis.statistics import paired_interval, seeds_to_decide
from pcn.analysis.verdicts import (
    CONTRADICTED,
    SUPPORTED,
    UNDECIDED,
    UNTESTABLE,
    VERDICTS,
    combine,
    direction_verdict,
    equivalence_verdict,
)


def interval(low, high):
    return {"low": low, "high": high, "mean": (low + high) / 2 if low is not None else 1.0}


def test_direction_verdict_words():
    assert direction_verdict(interval(0.5, 2.0)) == SUPPORTED
    assert direction_verdict(interval(-2.0, -0.5)) == CONTRADICTED
    assert direction_verdict(interval(-0.5, 2.0)) == UNDECIDED
    assert direction_verdict(interval(None, None)) == UNDECIDED  # one seed: no interval


def test_equivalence_verdict_words():
    assert equivalence_verdict(interval(-1.0, 0.4), margin=0.5) == SUPPORTED
    assert equivalence_verdict(interval(0.6, 2.0), margin=0.5) == CONTRADICTED
    assert equivalence_verdict(interval(0.1, 0.9), margin=0.5) == UNDECIDED
    assert equivalence_verdict(interval(None, None), margin=0.5) == UNDECIDED


def test_combined_verdicts():
    assert combine([SUPPORTED, SUPPORTED]) == SUPPORTED
    assert combine([SUPPORTED, UNDECIDED]) == UNDECIDED
    assert combine([SUPPORTED, CONTRADICTED, UNDECIDED]) == CONTRADICTED
    assert combine([]) == UNTESTABLE
    assert VERDICTS == (SUPPORTED, CONTRADICTED, UNDECIDED, UNTESTABLE)


RISING = ((0.3, 0.5, 0.8), (0.3, 0.5, 0.75), (0.3, 0.45, 0.8))  # NCM at layers 0, 1, 2 of seeds 0, 1, 2


def row(variant, arch, rho, errors, premise=0.002, mechanism=(0.0, 0.0, 0.0), depth=RISING):
    """Results of one variant over seeds 0, 1, 2 as the report builds them (only what the claims read)."""
    seeds = range(len(errors))
    views = {
        "before_rho/flatten": {"layers": [1, 2], "class_mean_share": {"by_seed": {s: [premise, 0.1] for s in seeds}}},
        "rho/flatten": {"layers": [1, 2], "between_share": {"by_seed": {s: [mechanism[s], 0.0] for s in seeds}}},
        "block/spatial_mean": {
            "layers": list(range(len(depth[0]))),
            "ncm_accuracy": {"by_seed": {s: list(depth[s]) for s in seeds}},
        },
    }
    return {
        "variant": variant,
        "arch": arch,
        "nonlinearity": rho,
        "test_error_by_seed": dict(zip(seeds, errors)),
        "views": views,
    }


def verdicts(rows, margin=0.2, vanishing=0.01) -> dict[int, str]:
    return {c["claim"]: c["verdict"] for c in check_claims(rows, 0.95, margin, vanishing)}


def test_a_run_that_supports_every_claim():
    rows = [
        row("modulus", "lscat", "mod", [3.0, 3.2, 2.9], mechanism=(0.10, 0.12, 0.11)),
        row("modulus_skip", "lscat_skip", "mod", [2.0, 2.2, 2.1], mechanism=(0.10, 0.12, 0.11)),
        row(
            "soft_threshold",
            "lscat",
            "cst",
            [9.0, 9.5, 8.8],
            mechanism=(0.001, -0.001, 0.0),
            depth=((0.3, 0.5, 0.5), (0.3, 0.5, 0.52), (0.3, 0.5, 0.49)),
        ),
        row("tanh", "lscat", "tanh", [7.0, 7.5, 6.8], mechanism=(0.0, 0.001, 0.0)),
        row("scat", "scat", "mod", [6.0, 6.3, 6.1]),
        row("resnet_standard", "resnet18_standard", "relu", [2.15, 2.3, 2.2]),
        row("resnet_relu", "resnet18", "relu", [2.5, 2.6, 2.4]),
        row("resnet_abs", "resnet18", "abs", [2.55, 2.6, 2.5]),
        row("resnet_thresh", "resnet18", "thresh", [20.0, 25.0, 22.0]),
    ]
    got = verdicts(rows)
    assert got == {n: SUPPORTED for n in range(1, 8)}
    claim3 = check_claims(rows, 0.95, 0.2, 0.01)[2]
    diffs = [9.0 - 3.0, 9.5 - 3.2, 8.8 - 2.9]
    assert claim3["comparisons"][0]["interval"] == paired_interval(diffs, 0.95)  # the interval it follows from
    assert "soft_threshold − modulus: supported" in claim3["reason"]
    # the authors' frozen threshold (listed first, failing to train) decides no verdict
    frozen = {**row("resnet_thresh_frozen", "resnet18", "thresh", [90.0, 90.0, 90.0]), "learned": False}
    claim5 = check_claims([frozen, *rows], 0.95, 0.2, 0.01)[4]
    assert claim5["verdict"] == SUPPORTED and "resnet_thresh −" in claim5["reason"]
    assert "frozen" not in claim5["reason"]


def test_contradicted_undecided_and_untestable_claims():
    rows = [
        row(
            "modulus",
            "lscat",
            "mod",
            [3.0, 3.2, 2.9],
            mechanism=(0.0, 0.001, -0.001),
            depth=((0.3, 0.8, 0.5), (0.3, 0.8, 0.52), (0.3, 0.8, 0.49)),
        ),
        row("soft_threshold", "lscat", "cst", [2.0, 2.1, 1.9], mechanism=(0.10, 0.12, 0.11)),
        row("modulus_skip", "lscat_skip", "mod", [3.0, 9.0, 1.0]),
        row("resnet_standard", "resnet18_standard", "relu", [3.0, 3.5, 2.0]),
        row("scat", "scat", "mod", [2.0, 2.1, 1.8]),
    ]
    got = verdicts(rows)
    assert got[1] == UNDECIDED  # the skip network's errors vary too much
    claims = check_claims(rows, 0.95, 0.2, 0.01)
    undecided = claims[0]["comparisons"][0]  # skip - resnet: mean 1.5/3, margin 0.2 x 2.83, sd ~ 3.6
    boundary = 0.2 * undecided["mean_b"]
    assert undecided["seeds_to_decide"] == seeds_to_decide(undecided["interval"], boundary) > 3
    assert all("seeds_to_decide" not in c for c in claims[2]["comparisons"])  # decided: no power figure
    assert got[2] == CONTRADICTED and got[3] == CONTRADICTED and got[6] == CONTRADICTED and got[7] == CONTRADICTED
    assert got[4] == UNTESTABLE and got[5] == UNTESTABLE  # no ms / mc / tanh; no bias-free ResNet
    claim5 = check_claims(rows, 0.95, 0.2, 0.01)[4]
    assert "resnet18 with relu, abs and thresh" in claim5["reason"]


def test_mechanism_is_untestable_when_the_class_means_of_wavelet_coefficients_do_not_vanish():
    rows = [
        row("modulus", "lscat", "mod", [3.0, 3.2, 2.9], premise=0.09, mechanism=(0.1, 0.12, 0.11)),
        row("soft_threshold", "lscat", "cst", [9.0, 9.5, 8.8], premise=0.09),
    ]
    claim6 = check_claims(rows, 0.95, 0.2, 0.01)[5]
    assert claim6["verdict"] == UNTESTABLE and "carry 0.09 of their energy" in claim6["reason"]
    assert check_claims(rows, 0.95, 0.2, 0.1)[5]["verdict"] == SUPPORTED  # the premise is a parameter


@pytest.mark.parametrize("errors", [[3.0], [3.0, 3.0]])
def test_one_seed_or_no_spread_decides_nothing(errors):
    rows = [row("modulus", "lscat", "mod", errors), row("soft_threshold", "lscat", "cst", [e + 1 for e in errors])]
    assert verdicts(rows)[3] == UNDECIDED


def test_a_phase_preserving_name_added_to_the_families_joins_the_claims(monkeypatch):
    """Claims 4 and 6 read the family of pcn.names: a new phase-preserving non-linearity is compared with the
    modulus of its block like ms / mc / tanh, and named in the claim's measure."""
    rows = [
        row("modulus", "lscat", "mod", [3.0, 3.2, 2.9], mechanism=(0.10, 0.12, 0.11)),
        row("softsign", "lscat", "softsign", [7.0, 7.5, 6.8], mechanism=(0.0, 0.001, 0.0)),
    ]
    before = check_claims(rows, 0.95, 0.2, 0.01)
    assert before[3]["verdict"] == UNTESTABLE and before[5]["comparisons"] == [{"premise_share": 0.002}]
    monkeypatch.setitem(names.LSCAT_FAMILIES, "softsign", names.PHASE_PRESERVING)
    claim4, claim6 = (check_claims(rows, 0.95, 0.2, 0.01)[i] for i in (3, 5))
    assert [(c["a"], c["b"]) for c in claim4["comparisons"]] == [("softsign", "modulus")]
    assert claim4["comparisons"][0]["interval"] == paired_interval([4.0, 4.3, 3.9], 0.95)
    assert claim4["verdict"] == SUPPORTED and "each ms / mc / tanh / softsign network" in claim4["measure"]
    assert [(c["a"], c["b"]) for c in claim6["comparisons"][1:]] == [("modulus", "softsign")]
    assert claim6["verdict"] == SUPPORTED
    monkeypatch.setitem(names.LSCAT_FAMILIES, "softsign", names.OTHER)  # another family: not a phase-preserving claim
    assert verdicts(rows)[4] == UNTESTABLE


def test_a_variant_the_claim_cannot_compare_is_named_in_its_reason():
    """A phase-preserving variant without the modulus network of its block, or without a seed in common with it,
    is said to be left out (never skipped in silence)."""
    rows = [
        row("modulus", "lscat", "mod", [3.0, 3.2, 2.9], mechanism=(0.10, 0.12, 0.11)),
        row("tanh", "lscat", "tanh", [7.0, 7.5, 6.8]),
        row("tanh_skip", "lscat_skip", "tanh", [7.0, 7.5, 6.8]),
        {**row("ms", "lscat", "ms", [5.0]), "test_error_by_seed": {7: 5.0}},  # seed 7 only
    ]
    claim4 = check_claims(rows, 0.95, 0.2, 0.01)[3]
    assert [c["a"] for c in claim4["comparisons"]] == ["tanh"]
    assert claim4["reason"].endswith(
        "; left out: tanh_skip (no lscat_skip variant with mod is selected), "
        "ms − modulus (no seed where both have a value)"
    )
    alone = check_claims(rows[2:3], 0.95, 0.2, 0.01)[3]
    assert alone["verdict"] == UNTESTABLE and alone["reason"] == (
        "needs an ms, mc or tanh variant and its mod variant among the selected variants (params.yaml: variants); "
        "left out: tanh_skip (no lscat_skip variant with mod is selected)"
    )
    claim6 = check_claims(rows, 0.95, 0.2, 0.01)[5]
    assert claim6["reason"].endswith("; left out: tanh_skip (no lscat_skip variant with mod is selected)")


FOUR_BLOCKS = {  # NCM accuracy at the input and after blocks 1-3, seeds 0, 1, 2
    "rising": ((0.2, 0.3, 0.5, 0.8), (0.2, 0.31, 0.52, 0.79), (0.2, 0.29, 0.49, 0.81)),
    "flat middle": ((0.2, 0.3, 0.31, 0.8), (0.2, 0.31, 0.30, 0.79), (0.2, 0.29, 0.30, 0.81)),
    "falling middle": ((0.2, 0.3, 0.2, 0.8), (0.2, 0.31, 0.22, 0.79), (0.2, 0.29, 0.19, 0.81)),
    "thresholded": ((0.2, 0.3, 0.35, 0.4), (0.2, 0.31, 0.34, 0.41), (0.2, 0.29, 0.36, 0.39)),
}


def depth_claim(modulus_depth, *others):
    rows = [
        row("modulus", "lscat", "mod", [3.0, 3.2, 2.9], depth=FOUR_BLOCKS[modulus_depth]),
        row("soft_threshold", "lscat", "cst", [9.0, 9.5, 8.8], depth=FOUR_BLOCKS["thresholded"]),
        *others,
    ]
    return check_claims(rows, 0.95, 0.2, 0.01)[6]


def test_progressively_needs_a_gain_at_every_block_transition():
    rising = depth_claim("rising")
    assert rising["verdict"] == SUPPORTED
    names = [c["a"] for c in rising["comparisons"]]
    assert names[:2] == ["gain of modulus from block 1 to 2", "gain of modulus from block 2 to 3"]
    gains = [0.5 - 0.3, 0.52 - 0.31, 0.49 - 0.29]
    assert rising["comparisons"][0]["interval"] == paired_interval(gains, 0.95)
    # the whole gain (block 1 to 3) is large in both, but a flat transition is not "progressive"
    assert depth_claim("flat middle")["verdict"] == UNDECIDED
    assert depth_claim("falling middle")["verdict"] == CONTRADICTED


def test_unlike_thresholding_counts_the_identity_control_when_selected():
    gaining_more = ((0.2, 0.3, 0.6, 0.95), (0.2, 0.31, 0.62, 0.97), (0.2, 0.29, 0.61, 0.99))
    identity = row("identity", "lscat", "identity", [20.0, 21.0, 22.0], depth=gaining_more)
    claim = depth_claim("rising", identity)
    assert claim["verdict"] == CONTRADICTED
    assert "gain of modulus − gain of identity: contradicted" in claim["reason"]
    weaker = row("identity", "lscat", "identity", [20.0, 21.0, 22.0], depth=FOUR_BLOCKS["thresholded"])
    assert depth_claim("rising", weaker)["verdict"] == SUPPORTED


def test_a_modulus_without_its_thresholded_twin_is_named_not_judged():
    skip = row("modulus_skip", "lscat_skip", "mod", [2.0, 2.1, 2.2], depth=FOUR_BLOCKS["falling middle"])
    claim = depth_claim("rising", skip)
    assert claim["verdict"] == SUPPORTED  # modulus_skip's falling transition decides nothing without a twin
    assert "left out: modulus_skip (no learned lscat_skip variant with cst is selected)" in claim["reason"]
    alone = check_claims([skip], 0.95, 0.2, 0.01)[6]
    assert alone["verdict"] == UNTESTABLE and "modulus_skip (no learned lscat_skip" in alone["reason"]
    # a twin without the separation curves cannot test "unlike thresholding": the block is not judged at all
    blind = row("soft_threshold", "lscat", "cst", [9.0, 9.5, 8.8])
    del blind["views"]["block/spatial_mean"]
    rows = [row("modulus", "lscat", "mod", [3.0, 3.2, 2.9], depth=FOUR_BLOCKS["rising"]), blind]
    claim = check_claims(rows, 0.95, 0.2, 0.01)[6]
    assert claim["verdict"] == UNTESTABLE and claim["comparisons"] == []
    assert "modulus − soft_threshold (no seed where both have a gain)" in claim["reason"]


def test_claim_3_gives_the_ratio_of_errors_with_its_interval():
    scipy_stats = pytest.importorskip("scipy.stats")
    import math

    cst, mod = [9.0, 9.5, 8.8], [3.0, 3.2, 2.9]
    rows = [row("modulus", "lscat", "mod", mod), row("soft_threshold", "lscat", "cst", cst)]
    c = check_claims(rows, 0.95, 0.2, 0.01)[2]["comparisons"][0]
    logs = [math.log(a / b) for a, b in zip(cst, mod)]
    mean, sem = sum(logs) / 3, scipy_stats.sem(logs)
    low, high = scipy_stats.t.interval(0.95, 2, loc=mean, scale=sem)
    assert c["ratio"]["mean"] == pytest.approx(math.exp(mean), rel=1e-9)
    assert (c["ratio"]["low"], c["ratio"]["high"]) == pytest.approx((math.exp(low), math.exp(high)), rel=1e-6)
    assert math.exp(low) <= 22.5 / 7.7 <= math.exp(high) and c["paper_ratio_is"] == "inside"
    same = [row("modulus", "lscat", "mod", [3.0] * 3), row("soft_threshold", "lscat", "cst", [30.0] * 3)]
    claim = check_claims(same, 0.95, 0.2, 0.01)[2]
    assert claim["comparisons"][0]["paper_ratio_is"] == "unknown"  # equal ratios: no spread, no interval
    noisy = [row("modulus", "lscat", "mod", mod), row("soft_threshold", "lscat", "cst", [30.0, 33.0, 28.0])]
    claim = check_claims(noisy, 0.95, 0.2, 0.01)[2]
    assert claim["comparisons"][0]["paper_ratio_is"] == "below"
    assert "the paper's 2.9× (LScat+skip on CIFAR-10) is below it" in claim["reason"]


def test_an_equivalence_states_its_margin_and_one_test_splits_binomial_noise():
    from scipy import stats

    from pcn.analysis.claims import binomial_noise
    from pcn.analysis.report_markdown import _comparison_cell

    # the noise of an error rate counted on n images: the sd of Binomial(n, p) / n, in points
    assert binomial_noise(2.98, 1000) == pytest.approx(100 * stats.binom(1000, 0.0298).std() / 1000)
    rows = [
        row("modulus_skip", "lscat_skip", "mod", [3.0, 3.6, 2.8]),
        row("resnet_standard", "resnet18_standard", "relu", [2.9, 3.1, 3.0]),
        row("resnet_relu", "resnet18", "relu", [2.5, 2.6, 2.4]),
        row("resnet_abs", "resnet18", "abs", [2.55, 2.6, 2.5]),
        row("resnet_thresh", "resnet18", "thresh", [20.0, 25.0, 22.0]),
    ]
    claims = check_claims(rows, 0.95, 0.2, 0.01, 0.0, 1000)
    claim1 = claims[0]["comparisons"][0]
    assert claim1["margin"] == pytest.approx(0.2 * 3.0) and claim1["binomial_noise"] == pytest.approx(
        binomial_noise(3.0, 1000)
    )
    thresh, absolute = claims[4]["comparisons"]
    assert "margin" not in thresh and absolute["margin"] == pytest.approx(0.2 * 2.5)  # a direction has none
    cell = _comparison_cell(absolute)
    assert "margin +0.5 points (one test split's binomial noise at resnet_relu's error: 0.49)" in cell
    unknown = check_claims(rows, 0.95, 0.2, 0.01)[0]["comparisons"][0]  # split size not recorded
    assert unknown["binomial_noise"] is None and "binomial" not in _comparison_cell(unknown)


def test_the_identity_control_is_reported_in_claims_3_and_4_and_decides_claim_6():
    rows = [
        row("modulus", "lscat", "mod", [3.0, 3.2, 2.9], mechanism=(0.10, 0.12, 0.11)),
        row("soft_threshold", "lscat", "cst", [9.0, 9.5, 8.8], mechanism=(0.001, -0.001, 0.0)),
        row("tanh", "lscat", "tanh", [7.0, 7.5, 6.8], mechanism=(0.0, 0.001, 0.0)),
    ]
    without = check_claims(rows, 0.95, 0.2, 0.01)
    # the control: worse than the modulus, better than soft-thresholding (harm beyond the lost phase collapse),
    # not distinguishable from tanh; its class means separate more than the modulus's (contradicting claim 6)
    control = row("identity", "lscat", "identity", [6.0, 6.1, 6.3], mechanism=(0.20, 0.21, 0.23))
    claims = check_claims([*rows, control], 0.95, 0.2, 0.01)
    for number in (3, 4):
        before, after = without[number - 1], claims[number - 1]
        assert after["verdict"] == before["verdict"] == SUPPORTED  # the controls decide nothing
        roles = [c.get("role") for c in after["comparisons"]]
        assert roles == [None] * len(before["comparisons"]) + ["control"] * (len(roles) - len(before["comparisons"]))
    c3 = claims[2]["comparisons"]
    assert [(c["a"], c["b"]) for c in c3] == [
        ("soft_threshold", "modulus"),
        ("identity", "modulus"),
        ("soft_threshold", "identity"),
    ]
    assert c3[1]["interval"] == paired_interval([6.0 - 3.0, 6.1 - 3.2, 6.3 - 2.9], 0.95)
    assert c3[2]["interval"] == paired_interval([9.0 - 6.0, 9.5 - 6.1, 8.8 - 6.3], 0.95)
    assert "ratio" in c3[0] and "ratio" not in c3[1]  # claim 3's size is the modulus comparison's alone
    assert "controls (not deciding): identity − modulus +3" in claims[2]["reason"]
    assert "soft_threshold − identity +2.97: supported" in claims[2]["reason"]
    c4 = claims[3]["comparisons"]
    assert (c4[-1]["a"], c4[-1]["b"], c4[-1]["verdict"]) == ("tanh", "identity", UNDECIDED)  # +0.97, sd 0.45
    assert without[5]["verdict"] == SUPPORTED
    assert claims[5]["verdict"] == CONTRADICTED  # modulus − identity: less separation than no non-linearity
    assert "modulus − identity: contradicted" in claims[5]["reason"]
    table = "\n".join(report_markdown.claims_markdown({"claims": claims, "dataset": "d", "confidence": 0.95}))
    assert "<br>control (not deciding): identity − modulus: +3.1 [+2.44, +3.76] (3 seeds) → supported" in table
