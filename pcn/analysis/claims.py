"""The paper's claims, each checked on our results with a verdict computed from intervals over seeds.

The vocabulary of verdicts and the rules that give them are in :mod:`pcn.analysis.verdicts`.

Claims 3, 4 and 6 take in every LScat non-linearity of the phase-preserving family of :mod:`pcn.names`
(claim 3 its soft-thresholding ``cst``, claim 4 the others), so a non-linearity added to that family joins
them; a selected variant of the family that a claim cannot compare (no modulus network of its block, no
seed in common with it) is named in the claim's reason, never skipped silently.

The identity control (no non-linearity, :data:`pcn.analysis.claim_parts.IDENTITY`), when selected, enters claims
3, 4, 6 and 7 as that constant says: in claims 3 and 4 its comparisons carry ``role: control`` and tell how much of a
phase-preserving network's gap is the loss of the phase collapse (control minus modulus) and how much is harm
beyond it (the network minus the control); the verdict follows the claim's words, the modulus comparisons.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from pcn.analysis.claim_parts import (
    CONTROL,
    IDENTITY,
    LSCAT,
    LSCAT_SKIP,
    MODULUS,
    SOFT_THRESHOLD,
    claim_from_pairs,
    claim_result,
    compared,
    decided,
    find_learned,
    lscat_pairs,
    missing,
    one_of,
    phase_preserving,
)
from pcn.analysis.separation import MEASURES
from pcn.analysis.statistics import IntervalRule, placement, ratio_interval
from pcn.analysis.verdicts import (
    UNTESTABLE,
    compare,
    direction,
    equivalence_verdict,
    error_by_seed,
    view_value,
    with_verdict,
)
from pcn.names import (
    LSCAT_ARCHITECTURES,
    RESNET_ARCHITECTURE,
    SCAT_ARCHITECTURE,
    STANDARD_RESNET_ARCHITECTURE,
)

#: The measure claims 6 and 7 use: (place, feature, measure) of a view (pcn.analysis.separation).
#: Both shares are taken on flattened maps, normalized by the energy of rho's output itself (the issue's
#: ||E[rho(x*psi) | c]||^2 / E||rho(x*psi)||^2): on spatial means the denominator would be the energy of the
#: means, near zero for a phase-preserving rho, which makes the ratio incomparable across non-linearities.
MECHANISM_VIEW = ("rho", "flatten", "between_share")
PREMISE_VIEW = ("before_rho", "flatten", "class_mean_share")
DEPTH_VIEW = ("block", "spatial_mean", "ncm_accuracy")


def binomial_noise(error_pct: float, test_size: int) -> float:
    """The standard deviation, in percentage points, of an error rate measured on one test split of
    ``test_size`` images when the true rate is ``error_pct``: :math:`100 \\sqrt{p (1 - p) / n}`,
    :math:`p` = ``error_pct`` / 100. What an equivalence margin is compared with: a margin near it is about
    one split's counting noise."""
    p = min(max(error_pct / 100, 0.0), 1.0)
    return 100 * math.sqrt(p * (1 - p) / test_size)


def check_claims(
    rows: list[dict],
    confidence: float,
    margin: float,
    vanishing_share: float,
    resampling: float = 0.0,
    test_size: float | None = None,
) -> list[dict]:
    """The seven claims of the paper, each with our comparisons and a computed verdict (module docstring); every
    interval at level ``confidence``, with Nadeau and Bengio's ``resampling`` ratio (0: none;
    :mod:`pcn.analysis.statistics`). An equivalence's comparison carries its ``margin`` (``margin`` times B's
    mean error: "reaches the accuracy of B" allows that fraction of B's errors) and, when the test split's size
    ``test_size`` is known, the ``binomial_noise`` of B's error on one such split (:func:`binomial_noise`)."""
    rule = IntervalRule(confidence, resampling)
    equivalent = lambda interval, b_mean: (equivalence_verdict(interval, margin * b_mean), margin * b_mean)  # noqa: E731
    claims = [
        *_table1_claims(rows, rule, margin, direction, equivalent),
        *_ablation_claims(rows, rule, direction),
        _resnet_claim(rows, rule, margin, direction, equivalent),
        _mechanism_claim(rows, rule, vanishing_share),
        _depth_claim(rows, rule),
    ]
    for part in (p for c in claims for p in c["comparisons"] if "margin" in p):
        part["binomial_noise"] = binomial_noise(part["mean_b"], test_size) if test_size else None
    return claims


def _table1_claims(rows: list[dict], rule: IntervalRule, margin: float, direction, equivalent) -> list[dict]:
    """Claims 1-2: Table 1 (LScat+skip vs ResNet, Scat vs LScat)."""
    skip, resnet = find_learned(rows, LSCAT_SKIP, MODULUS), find_learned(rows, STANDARD_RESNET_ARCHITECTURE, "relu")
    c1 = (
        "LScat+skip reaches the accuracy of a ResNet of similar depth.",
        "Table 1: CIFAR-10 7.7% vs ResNet-20 8.8%; ImageNet top-1 30.1% vs ResNet-18 30.2%",
        f"test error % of LScat+skip minus the standard ResNet-18, within a margin of {margin:g} × the ResNet's "
        "mean error",
    )
    scat = find_learned(rows, SCAT_ARCHITECTURE, MODULUS)
    learned = find_learned(rows, LSCAT, MODULUS) or skip
    c2 = (
        "Learned projections largely outperform the Scat baseline whose projections are predefined.",
        "Table 1: CIFAR-10 Scat 27.7% vs LScat 11.7%; ImageNet top-1 73.0% vs 35.9%",
        "test error % of Scat minus LScat (the ratio of the means shows the size)",
    )
    return [
        claim_from_pairs(1, *c1, [(skip, resnet)], error_by_seed, rule, equivalent)
        if skip and resnet
        else claim_result(1, *c1, [], UNTESTABLE, missing("lscat_skip with mod and resnet18_standard")),
        claim_from_pairs(2, *c2, [(scat, learned)], error_by_seed, rule, direction)
        if scat and learned
        else claim_result(2, *c2, [], UNTESTABLE, missing("scat and lscat with mod")),
    ]


#: How claims 3 and 4 use the identity control (their measure's words).
_CONTROLS = (
    "; with the identity control of the block selected, also identity minus modulus (the cost of no "
    "non-linearity) and the network minus identity (harm beyond it), reported, not deciding"
)


def _ablation_claims(rows: list[dict], rule: IntervalRule, direction) -> list[dict]:
    """Claims 3-4: Table 2, the phase-preserving non-linearities of :mod:`pcn.names` against the modulus."""
    c3 = (
        "Replacing the modulus by complex soft-thresholding increases the error (about 3× on CIFAR-10).",
        'poster, Table 2: "three-fold increase"; CIFAR-10 LScat+skip 7.7% (modulus) vs 22.5% (soft-thresholding)',
        "test error % of the soft-thresholded network minus the modulus network of the same block" + _CONTROLS,
    )
    others = tuple(n for n in phase_preserving() if n != SOFT_THRESHOLD)
    c4 = (
        "Other phase-preserving non-linearities (modulus-sigmoid, module collapse, tanh) also increase the error.",
        'poster: "those results hold true when more general phase preserving" non-linearities are used '
        "(Table 2, CIFAR-10; its numbers could not be read)",
        f"test error % of each {' / '.join(others)} network minus the modulus network of the same block" + _CONTROLS,
    )
    out = []
    for number, c, rhos, needed in (
        (3, c3, (SOFT_THRESHOLD,), f"{one_of((SOFT_THRESHOLD,))} variant and its architecture's mod variant"),
        (4, c4, others, f"{one_of(others)} variant and its mod variant"),
    ):
        pairs, left_out = lscat_pairs(rows, rhos)
        if not pairs:
            out.append(decided(number, *c, [], left_out, needed))
            continue
        parts, unpaired = compared(pairs, error_by_seed, rule, direction)
        controls, uncontrolled = compared(_control_pairs(rows, [v for v, _ in pairs]), error_by_seed, rule, direction)
        for part in controls:
            part["role"] = CONTROL
        out.append(decided(number, *c, parts + controls, [*left_out, *unpaired, *uncontrolled], needed))
    _with_error_ratios(out[0], rows, rule)
    return out


def _control_pairs(rows: list[dict], tested: list[dict]) -> list[tuple[dict, dict]]:
    """Per block with a selected identity control: ``(control, modulus)`` (what losing every non-linearity
    costs), then ``(network, control)`` for each tested network of the block (its harm beyond that)."""
    pairs = []
    for arch in dict.fromkeys(r["arch"] for r in tested):
        control, mod = find_learned(rows, arch, IDENTITY), find_learned(rows, arch, MODULUS)
        if control is not None and mod is not None:
            pairs += [(control, mod)] + [(r, control) for r in tested if r["arch"] == arch]
    return pairs


#: The paper's ratio of errors, soft-thresholding over the modulus: LScat+skip on CIFAR-10, 22.5% / 7.7%.
PAPER_SOFT_THRESHOLD_RATIO = 22.5 / 7.7


def _with_error_ratios(result: dict, rows: list[dict], rule: IntervalRule) -> None:
    """Claim 3's size beside its direction: each comparison's ratio of test errors (soft-thresholded over
    modulus, :func:`pcn.analysis.statistics.ratio_interval` over the same seeds), and where the paper's ratio
    falls against its interval, in the reason; the verdict stays the direction's."""
    by_name = {r["variant"]: r for r in rows}
    for c in (c for c in result["comparisons"] if c.get("role") != CONTROL):
        a, b = (error_by_seed(by_name[c[k]]) for k in ("a", "b"))
        ratio = ratio_interval([a[s] for s in c["seeds"]], [b[s] for s in c["seeds"]], rule)
        if ratio is None:
            continue
        c["ratio"] = ratio
        c["paper_ratio"] = PAPER_SOFT_THRESHOLD_RATIO
        c["paper_ratio_is"] = placement(PAPER_SOFT_THRESHOLD_RATIO, ratio)
        shown = "no interval" if ratio["low"] is None else f"[{ratio['low']:.3g}, {ratio['high']:.3g}]"
        where = {"inside": "inside it", "below": "below it", "above": "above it", "unknown": "not comparable"}
        result["reason"] += (
            f"; error ratio {c['a']} / {c['b']} {ratio['mean']:.3g}× {shown}: the paper's "
            f"{PAPER_SOFT_THRESHOLD_RATIO:.2g}× (LScat+skip on CIFAR-10) is {where[c['paper_ratio_is']]}"
        )


def _resnet_claim(rows: list[dict], rule: IntervalRule, margin: float, direction, equivalent) -> dict:
    """Claim 5: Table 3, the bias-free ResNet-18 with thresholding and with the absolute value against ReLU."""
    relu, absolute = find_learned(rows, RESNET_ARCHITECTURE, "relu"), find_learned(rows, RESNET_ARCHITECTURE, "abs")
    thresh = find_learned(rows, RESNET_ARCHITECTURE, "thresh")
    c5 = (
        "In a bias-free ResNet, soft-thresholding degrades the accuracy and the absolute value preserves it.",
        'poster, Table 3 (ImageNet): soft-thresholding "considerably degrades performances", absolute values '
        '"preserve high accuracies" (its numbers could not be read)',
        f"test error % minus the bias-free ResNet with ReLU: thresholding (direction) and absolute value "
        f"(within {margin:g} × ReLU's mean error)",
    )
    if relu and absolute and thresh:
        a, left_a = compared([(thresh, relu)], error_by_seed, rule, direction)
        b, left_b = compared([(absolute, relu)], error_by_seed, rule, equivalent)
        return decided(5, *c5, a + b, left_a + left_b, "common seeds")
    return claim_result(5, *c5, [], UNTESTABLE, missing("resnet18 with relu, abs and thresh"))


def _mechanism_claim(rows: list[dict], rule: IntervalRule, vanishing_share: float) -> dict:
    place, feature, measure = MECHANISM_VIEW
    claim = (
        "Class means of wavelet coefficients vanish for translation-invariant classes; a phase collapse "
        "separates them, phase-preserving non-linearities do not."
    )
    paper = (
        'poster: E[x⋆ψ] = 0 for translation-invariant classes, the modulus "separates class means", '
        'soft-thresholding "does not" (an argument, no number)'
    )
    how = (
        f"premise: {MEASURES[PREMISE_VIEW[2]].label} of the flattened first-layer wavelet coefficients "
        f"≤ {vanishing_share:g}; then {MEASURES[measure].label} of ρ's output in block 1 "
        f"({feature.replace('_', ' ')} features), modulus minus each phase-preserving network of the same block "
        "and minus the identity control (no non-linearity) when it is selected "
        "(block 1's ρ acts on the fixed wavelet coefficients of the image, before any learned projection: for the "
        "modulus the value involves no trained parameter, so LScat and LScat+skip give the same one)"
    )
    premise_rows = [r for r in rows if r["arch"] in LSCAT_ARCHITECTURES]
    shares = [v for r in premise_rows for v in view_value(r, PREMISE_VIEW, 1).values()]
    if not shares:
        return claim_result(6, claim, paper, how, [], UNTESTABLE, missing("an LScat variant"))
    premise = sum(shares) / len(shares)
    if premise > vanishing_share:
        return claim_result(
            6,
            claim,
            paper,
            how,
            [{"premise_share": premise}],
            UNTESTABLE,
            f"the class means of the first-layer wavelet coefficients carry {premise:.3g} of their energy "
            f"(> {vanishing_share:g}): these classes are not translation invariant, so the premise fails",
        )
    pairs, left_out = lscat_pairs(rows, (*phase_preserving(), IDENTITY), modulus_first=True)
    value = lambda r: view_value(r, MECHANISM_VIEW, 1)  # noqa: E731
    result = claim_from_pairs(6, claim, paper, how, pairs, value, rule, direction, left_out)
    result["comparisons"].insert(0, {"premise_share": premise})
    if pairs:
        result["reason"] = f"premise met (share {premise:.3g}); " + result["reason"]
    return result


def _depth_claim(rows: list[dict], rule: IntervalRule) -> dict:
    place, feature, measure = DEPTH_VIEW
    claim = "Iterated phase collapses progressively improve the separation of classes, unlike thresholding."
    paper = (
        'abstract: iterated phase collapses progressively improve the separation of class means, "as opposed '
        'to thresholding" (the per-layer measure could not be read)'
    )
    how = (
        f"{MEASURES[measure].label} of the block outputs ({feature.replace('_', ' ')} features). "
        '"Progressively": the modulus network gains at every block transition (each gain\'s interval above '
        'zero). "Unlike thresholding": its whole gain, last block minus block 1, exceeds the soft-thresholded '
        "network's of the same block, and the identity control's (no non-linearity) when it is selected"
    )
    parts, left_out = [], []
    for arch in LSCAT_ARCHITECTURES:
        mod, cst = find_learned(rows, arch, MODULUS), find_learned(rows, arch, SOFT_THRESHOLD)
        if mod is None:
            continue
        if cst is None:
            left_out.append(f"{mod['variant']} (no learned {arch} variant with {SOFT_THRESHOLD} is selected)")
            continue
        against = []
        for other in (cst, find_learned(rows, arch, IDENTITY)):
            c = None if other is None else compare(mod, other, _gain(), rule)
            if c is None and other is not None:
                left_out.append(f"{mod['variant']} − {other['variant']} (no seed where both have a gain)")
            elif c is not None:
                c.update(a=f"gain of {mod['variant']}", b=f"gain of {other['variant']}")
                against.append(with_verdict(c, *direction(c["interval"])))
        if not against or against[0]["b"] != f"gain of {cst['variant']}":
            continue  # "unlike thresholding" cannot be tested for this block: judge none of it
        parts += _transition_gains(mod, rule) + against
    needed = f"an LScat variant with {MODULUS} and {one_of((SOFT_THRESHOLD,))} variant of its block"
    return decided(7, claim, paper, how, parts, left_out, needed)


def _block_layers(row: dict) -> list:
    """The layers of ``row``'s block outputs in :data:`DEPTH_VIEW`, block 1 first (layer 0 is the input)."""
    curves = row["views"].get(f"{DEPTH_VIEW[0]}/{DEPTH_VIEW[1]}")
    return [] if curves is None else curves["layers"][1:] if len(curves["layers"]) > 1 else curves["layers"]


def _gain(start="first", end="last") -> Callable[[dict], dict]:
    """Per seed, the measure at layer ``end`` minus at layer ``start`` (:func:`view_value`'s layers)."""

    def gain(r: dict) -> dict:
        first, last = view_value(r, DEPTH_VIEW, start), view_value(r, DEPTH_VIEW, end)
        return {s: last[s] - first[s] for s in set(first) & set(last)}

    return gain


def _transition_gains(mod: dict, rule: IntervalRule) -> list[dict]:
    """The gain of ``mod`` at each block transition, each compared with zero."""
    layers, parts = _block_layers(mod), []
    for start, end in zip(layers, layers[1:]):
        values = _gain(start, end)(mod)
        if not values:
            continue
        interval = rule.of([values[s] for s in sorted(values)])
        part = {"a": f"gain of {mod['variant']} from block {start} to {end}", "b": None, "seeds": sorted(values)}
        part.update(interval=interval, mean_a=interval["mean"], mean_b=0.0)
        parts.append(with_verdict(part, *direction(interval)))
    return parts
