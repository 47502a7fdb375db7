"""The paper's claims, each checked on our results with a verdict computed from intervals over seeds.

Every number that decides a verdict is a paired difference over the seeds two variants share, with
its two-sided Student-t interval (:func:`pcn.analysis.statistics.paired_interval`, level
``report.confidence``). The vocabulary is fixed (:data:`VERDICTS`); the rules:

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

Claims 3, 4 and 6 take in every LScat non-linearity of the phase-preserving family of :mod:`pcn.names`
(claim 3 its soft-thresholding ``cst``, claim 4 the others), so a non-linearity added to that family joins
them; a selected variant of the family that a claim cannot compare (no modulus network of its block, no
seed in common with it) is named in the claim's reason, never skipped silently.
"""

from __future__ import annotations

from collections.abc import Callable

from pcn.analysis.separation import MEASURES
from pcn.analysis.statistics import paired_interval, seeds_to_decide
from pcn.names import (
    LSCAT_ARCHITECTURES,
    PHASE_PRESERVING,
    RESNET_ARCHITECTURE,
    SCAT_ARCHITECTURE,
    STANDARD_RESNET_ARCHITECTURE,
    of_family,
)

SUPPORTED, CONTRADICTED = "supported", "contradicted"
UNDECIDED, UNTESTABLE = "not distinguishable at these seeds", "not testable on this data"
#: The fixed vocabulary of verdicts.
VERDICTS = (SUPPORTED, CONTRADICTED, UNDECIDED, UNTESTABLE)
#: The phase collapse of the LScat blocks (the modulus) and its soft-thresholding (claims 3 and 7).
MODULUS, SOFT_THRESHOLD = "mod", "cst"
LSCAT, LSCAT_SKIP = LSCAT_ARCHITECTURES
#: The measure claims 6 and 7 use: (place, feature, measure) of a view (pcn.analysis.separation).
#: Both shares are taken on flattened maps, normalized by the energy of rho's output itself (the issue's
#: ||E[rho(x*psi) | c]||^2 / E||rho(x*psi)||^2): on spatial means the denominator would be the energy of the
#: means, near zero for a phase-preserving rho, which makes the ratio incomparable across non-linearities.
MECHANISM_VIEW = ("rho", "flatten", "between_share")
PREMISE_VIEW = ("before_rho", "flatten", "class_mean_share")
DEPTH_VIEW = ("block", "spatial_mean", "ncm_accuracy")


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


def compare(a: dict, b: dict, value: Callable[[dict], dict], confidence: float) -> dict | None:
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
        "interval": paired_interval(diffs, confidence),
        "mean_a": sum(va[s] for s in seeds) / len(seeds),
        "mean_b": sum(vb[s] for s in seeds) / len(seeds),
    }


def _find(rows: list[dict], arch: str, rho: str) -> dict | None:
    """The first selected variant of ``arch`` with non-linearity ``rho`` whose parameters are learned: a
    frozen one (``learned: false``, e.g. the authors' threshold frozen at 1.0) decides no verdict."""
    return next((r for r in rows if r["arch"] == arch and r["nonlinearity"] == rho and r.get("learned", True)), None)


def _result(number: int, claim: str, paper: str, measure: str, parts: list[dict], verdict: str, reason: str) -> dict:
    return {
        "claim": number,
        "statement": claim,
        "paper": paper,
        "measure": measure,
        "comparisons": parts,
        "verdict": verdict,
        "reason": reason,
    }


def _missing(needed: str) -> str:
    return f"needs {needed} among the selected variants (params.yaml: variants)"


def _one_of(names: tuple[str, ...]) -> str:
    """``an ms, mc or tanh``: the names, with the article of the first (read letter by letter when it has no
    vowel: "an ms", "a cst"; as a word otherwise: "a tanh")."""
    first = names[0]
    vowel = first[0] in ("aeiou" if set(first) & set("aeiou") else "aefhilmnorsx")
    listed = f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else first
    return ("an " if vowel else "a ") + listed


def _phase_preserving() -> tuple[str, ...]:
    """The phase-preserving non-linearities of the LScat blocks (:mod:`pcn.names`), in their listed order."""
    return tuple(dict.fromkeys(n for arch in LSCAT_ARCHITECTURES for n in of_family(arch, PHASE_PRESERVING)))


def _lscat_pairs(rows: list[dict], rhos: tuple[str, ...], modulus_first: bool = False) -> tuple[list, list[str]]:
    """Each selected LScat variant with a non-linearity in ``rhos`` and the modulus network of its block, as
    ``(variant, modulus)`` (``(modulus, variant)`` with ``modulus_first``); and the variants left out, why."""
    pairs, left_out = [], []
    for r in rows:
        if r["arch"] in LSCAT_ARCHITECTURES and r["nonlinearity"] in rhos:
            mod = _find(rows, r["arch"], MODULUS)
            if mod is None:
                left_out.append(f"{r['variant']} (no {r['arch']} variant with {MODULUS} is selected)")
            else:
                pairs.append((mod, r) if modulus_first else (r, mod))
    return pairs, left_out


def _with_verdict(c: dict, verdict: str, boundary: float) -> dict:
    """``c`` with its verdict and, when undecided, ``seeds_to_decide``: the paired seeds that the observed mean
    and spread would need to decide it against ``boundary`` (:func:`pcn.analysis.statistics.seeds_to_decide`)."""
    c["verdict"] = verdict
    if verdict == UNDECIDED:
        c["seeds_to_decide"] = seeds_to_decide(c["interval"], boundary)
    return c


def _compared(pairs: list, value, confidence: float, rule) -> tuple[list[dict], list[str]]:
    """Each ``(a, b)`` of ``pairs`` compared, with its verdict and boundary ``rule(interval, b_mean)``; the pairs
    left out for want of a seed where both have a value."""
    parts, left_out = [], []
    for a, b in pairs:
        c = compare(a, b, value, confidence)
        if c is None:
            left_out.append(f"{a['variant']} − {b['variant']} (no seed where both have a value)")
            continue
        parts.append(_with_verdict(c, *rule(c["interval"], c["mean_b"])))
    return parts, left_out


def _decided(number, claim, paper, measure, parts: list[dict], left_out: list[str], needed: str) -> dict:
    """A claim's result from its comparisons (untestable, needing ``needed``, without any); the reason names
    every verdict and every selected variant left out."""
    if parts:
        verdict = combine([p["verdict"] for p in parts])
        reason = "; ".join(f"{difference_name(p)}: {p['verdict']}" for p in parts)
    else:
        verdict, reason = UNTESTABLE, _missing(needed)
    if left_out:
        reason += f"; left out: {', '.join(left_out)}"
    return _result(number, claim, paper, measure, parts, verdict, reason)


def _claim_from_pairs(number, claim, paper, measure, pairs, value, confidence, rule, left_out=()) -> dict:
    """A claim decided by comparing each (a, b) of ``pairs`` with ``rule(interval, b_mean) -> (verdict,
    boundary)``."""
    parts, unpaired = _compared(pairs, value, confidence, rule)
    left = [*left_out, *unpaired]
    return _decided(number, claim, paper, measure, parts, left, "paired variants with common seeds")


def check_claims(rows: list[dict], confidence: float, margin: float, vanishing_share: float) -> list[dict]:
    """The seven claims of the paper, each with our comparisons and a computed verdict (module docstring)."""
    equivalent = lambda interval, b_mean: (equivalence_verdict(interval, margin * b_mean), margin * b_mean)  # noqa: E731
    return [
        *_table1_claims(rows, confidence, margin, direction, equivalent),
        *_ablation_claims(rows, confidence, direction),
        _resnet_claim(rows, confidence, margin, direction, equivalent),
        _mechanism_claim(rows, confidence, vanishing_share),
        _depth_claim(rows, confidence),
    ]


def _table1_claims(rows: list[dict], confidence: float, margin: float, direction, equivalent) -> list[dict]:
    """Claims 1-2: Table 1 (LScat+skip vs ResNet, Scat vs LScat)."""
    skip, resnet = _find(rows, LSCAT_SKIP, MODULUS), _find(rows, STANDARD_RESNET_ARCHITECTURE, "relu")
    c1 = (
        "LScat+skip reaches the accuracy of a ResNet of similar depth.",
        "Table 1: CIFAR-10 7.7% vs ResNet-20 8.8%; ImageNet top-1 30.1% vs ResNet-18 30.2%",
        f"test error % of LScat+skip minus the standard ResNet-18, within a margin of {margin:g} × the ResNet's "
        "mean error",
    )
    scat = _find(rows, SCAT_ARCHITECTURE, MODULUS)
    learned = _find(rows, LSCAT, MODULUS) or skip
    c2 = (
        "Learned projections largely outperform the Scat baseline whose projections are predefined.",
        "Table 1: CIFAR-10 Scat 27.7% vs LScat 11.7%; ImageNet top-1 73.0% vs 35.9%",
        "test error % of Scat minus LScat (the ratio of the means shows the size)",
    )
    return [
        _claim_from_pairs(1, *c1, [(skip, resnet)], error_by_seed, confidence, equivalent)
        if skip and resnet
        else _result(1, *c1, [], UNTESTABLE, _missing("lscat_skip with mod and resnet18_standard")),
        _claim_from_pairs(2, *c2, [(scat, learned)], error_by_seed, confidence, direction)
        if scat and learned
        else _result(2, *c2, [], UNTESTABLE, _missing("scat and lscat with mod")),
    ]


def _ablation_claims(rows: list[dict], confidence: float, direction) -> list[dict]:
    """Claims 3-4: Table 2, the phase-preserving non-linearities of :mod:`pcn.names` against the modulus."""
    c3 = (
        "Replacing the modulus by complex soft-thresholding increases the error (about 3× on CIFAR-10).",
        'poster, Table 2: "three-fold increase"; CIFAR-10 LScat+skip 7.7% (modulus) vs 22.5% (soft-thresholding)',
        "test error % of the soft-thresholded network minus the modulus network of the same block",
    )
    others = tuple(n for n in _phase_preserving() if n != SOFT_THRESHOLD)
    c4 = (
        "Other phase-preserving non-linearities (modulus-sigmoid, module collapse, tanh) also increase the error.",
        'poster: "those results hold true when more general phase preserving" non-linearities are used '
        "(Table 2, CIFAR-10; its numbers could not be read)",
        f"test error % of each {' / '.join(others)} network minus the modulus network of the same block",
    )
    out = []
    for number, c, rhos, needed in (
        (3, c3, (SOFT_THRESHOLD,), f"{_one_of((SOFT_THRESHOLD,))} variant and its architecture's mod variant"),
        (4, c4, others, f"{_one_of(others)} variant and its mod variant"),
    ):
        pairs, left_out = _lscat_pairs(rows, rhos)
        out.append(
            _claim_from_pairs(number, *c, pairs, error_by_seed, confidence, direction, left_out)
            if pairs
            else _decided(number, *c, [], left_out, needed)
        )
    return out


def _resnet_claim(rows: list[dict], confidence: float, margin: float, direction, equivalent) -> dict:
    """Claim 5: Table 3, the bias-free ResNet-18 with thresholding and with the absolute value against ReLU."""
    relu, absolute = _find(rows, RESNET_ARCHITECTURE, "relu"), _find(rows, RESNET_ARCHITECTURE, "abs")
    thresh = _find(rows, RESNET_ARCHITECTURE, "thresh")
    c5 = (
        "In a bias-free ResNet, soft-thresholding degrades the accuracy and the absolute value preserves it.",
        'poster, Table 3 (ImageNet): soft-thresholding "considerably degrades performances", absolute values '
        '"preserve high accuracies" (its numbers could not be read)',
        f"test error % minus the bias-free ResNet with ReLU: thresholding (direction) and absolute value "
        f"(within {margin:g} × ReLU's mean error)",
    )
    if relu and absolute and thresh:
        a, left_a = _compared([(thresh, relu)], error_by_seed, confidence, direction)
        b, left_b = _compared([(absolute, relu)], error_by_seed, confidence, equivalent)
        return _decided(5, *c5, a + b, left_a + left_b, "common seeds")
    return _result(5, *c5, [], UNTESTABLE, _missing("resnet18 with relu, abs and thresh"))


def _mechanism_claim(rows: list[dict], confidence: float, vanishing_share: float) -> dict:
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
        "(block 1's ρ acts on the fixed wavelet coefficients of the image, before any learned projection: for the "
        "modulus the value involves no trained parameter, so LScat and LScat+skip give the same one)"
    )
    premise_rows = [r for r in rows if r["arch"] in LSCAT_ARCHITECTURES]
    shares = [v for r in premise_rows for v in view_value(r, PREMISE_VIEW, 1).values()]
    if not shares:
        return _result(6, claim, paper, how, [], UNTESTABLE, _missing("an LScat variant"))
    premise = sum(shares) / len(shares)
    if premise > vanishing_share:
        return _result(
            6,
            claim,
            paper,
            how,
            [{"premise_share": premise}],
            UNTESTABLE,
            f"the class means of the first-layer wavelet coefficients carry {premise:.3g} of their energy "
            f"(> {vanishing_share:g}): these classes are not translation invariant, so the premise fails",
        )
    pairs, left_out = _lscat_pairs(rows, _phase_preserving(), modulus_first=True)
    value = lambda r: view_value(r, MECHANISM_VIEW, 1)  # noqa: E731
    result = _claim_from_pairs(6, claim, paper, how, pairs, value, confidence, direction, left_out)
    result["comparisons"].insert(0, {"premise_share": premise})
    if pairs:
        result["reason"] = f"premise met (share {premise:.3g}); " + result["reason"]
    return result


def _depth_claim(rows: list[dict], confidence: float) -> dict:
    place, feature, measure = DEPTH_VIEW
    claim = "Iterated phase collapses progressively improve the separation of classes, unlike thresholding."
    paper = (
        'abstract: iterated phase collapses progressively improve the separation of class means, "as opposed '
        'to thresholding" (the per-layer measure could not be read)'
    )
    how = (
        f"{MEASURES[measure].label} of the block outputs ({feature.replace('_', ' ')} features), last block "
        "minus block 1 (the gain), for the modulus; and the modulus's gain minus the soft-thresholded network's, "
        "same block"
    )

    def gain(r: dict) -> dict:
        first, last = view_value(r, DEPTH_VIEW, "first"), view_value(r, DEPTH_VIEW, "last")
        return {s: last[s] - first[s] for s in set(first) & set(last)}

    parts = []
    for arch in LSCAT_ARCHITECTURES:
        mod, cst = _find(rows, arch, MODULUS), _find(rows, arch, SOFT_THRESHOLD)
        if mod is None:
            continue
        values = gain(mod)
        if values:
            interval = paired_interval([values[s] for s in sorted(values)], confidence)
            gain_alone = {"a": f"gain of {mod['variant']}", "b": None, "seeds": sorted(values), "interval": interval}
            gain_alone.update(mean_a=interval["mean"], mean_b=0.0)
            parts.append(_with_verdict(gain_alone, *direction(interval)))
        if cst is not None:
            c = compare(mod, cst, gain, confidence)
            if c is not None:
                c.update(a=f"gain of {mod['variant']}", b=f"gain of {cst['variant']}")
                parts.append(_with_verdict(c, *direction(c["interval"])))
    if not parts:
        return _result(7, claim, paper, how, [], UNTESTABLE, _missing("an LScat variant with mod"))
    if all(p["b"] is None for p in parts):
        return _result(7, claim, paper, how, parts, UNTESTABLE, _missing("a cst variant of the modulus's block"))
    return _result(
        7,
        claim,
        paper,
        how,
        parts,
        combine([p["verdict"] for p in parts]),
        "; ".join(f"{difference_name(p)}: {p['verdict']}" for p in parts),
    )


def difference_name(c: dict) -> str:
    """``a − b``, or ``a`` for a quantity compared with zero."""
    return c["a"] if c["b"] is None else f"{c['a']} − {c['b']}"
