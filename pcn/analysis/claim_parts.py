"""The parts the claims of :mod:`pcn.analysis.claims` are made of: finding a selected variant, pairing the
phase-preserving LScat networks with their block's modulus network, comparing pairs under an interval rule, and
a claim's result and verdict from its comparisons (the identity control's comparisons reported, not deciding)."""

from __future__ import annotations

from pcn.analysis.statistics import IntervalRule
from pcn.analysis.verdicts import UNTESTABLE, combine, compare, difference_name, direction, with_verdict
from pcn.names import LSCAT_ARCHITECTURES, PHASE_PRESERVING, of_family

#: The phase collapse of the LScat blocks (the modulus) and its soft-thresholding (claims 3 and 7).
MODULUS, SOFT_THRESHOLD = "mod", "cst"
LSCAT, LSCAT_SKIP = LSCAT_ARCHITECTURES
#: The control without non-linearity, rho(z) = z (:mod:`pcn.names`): claims 3 and 4 report the modulus and each
#: phase-preserving network against it (not deciding), claim 6 decides the modulus against it as against every
#: phase-preserving network (rho(z) = z is f(|z|) z / |z| with f(r) = r), claim 7 the modulus's gain.
IDENTITY = "identity"
#: ``role`` of a comparison that is reported beside a claim's verdict and does not decide it.
CONTROL = "control"


def find_learned(rows: list[dict], arch: str, rho: str) -> dict | None:
    """The first selected variant of ``arch`` with non-linearity ``rho`` whose parameters are learned: a
    frozen one (``learned: false``, e.g. the authors' threshold frozen at 1.0) decides no verdict."""
    return next((r for r in rows if r["arch"] == arch and r["nonlinearity"] == rho and r.get("learned", True)), None)


def claim_result(
    number: int, claim: str, paper: str, measure: str, parts: list[dict], verdict: str, reason: str
) -> dict:
    return {
        "claim": number,
        "statement": claim,
        "paper": paper,
        "measure": measure,
        "comparisons": parts,
        "verdict": verdict,
        "reason": reason,
    }


def missing(needed: str) -> str:
    return f"needs {needed} among the selected variants (params.yaml: variants)"


def one_of(names: tuple[str, ...]) -> str:
    """``an ms, mc or tanh``: the names, with the article of the first (read letter by letter when it has no
    vowel: "an ms", "a cst"; as a word otherwise: "a tanh")."""
    first = names[0]
    vowel = first[0] in ("aeiou" if set(first) & set("aeiou") else "aefhilmnorsx")
    listed = f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else first
    return ("an " if vowel else "a ") + listed


def phase_preserving() -> tuple[str, ...]:
    """The phase-preserving non-linearities of the LScat blocks (:mod:`pcn.names`), in their listed order."""
    return tuple(dict.fromkeys(n for arch in LSCAT_ARCHITECTURES for n in of_family(arch, PHASE_PRESERVING)))


def lscat_pairs(rows: list[dict], rhos: tuple[str, ...], modulus_first: bool = False) -> tuple[list, list[str]]:
    """Each selected LScat variant with a non-linearity in ``rhos`` and the modulus network of its block, as
    ``(variant, modulus)`` (``(modulus, variant)`` with ``modulus_first``); and the variants left out, why."""
    pairs, left_out = [], []
    for r in rows:
        if r["arch"] in LSCAT_ARCHITECTURES and r["nonlinearity"] in rhos:
            mod = find_learned(rows, r["arch"], MODULUS)
            if mod is None:
                left_out.append(f"{r['variant']} (no {r['arch']} variant with {MODULUS} is selected)")
            else:
                pairs.append((mod, r) if modulus_first else (r, mod))
    return pairs, left_out


def compared(pairs: list, value, rule: IntervalRule, decide) -> tuple[list[dict], list[str]]:
    """Each ``(a, b)`` of ``pairs`` compared under ``rule``, with its verdict and boundary
    ``decide(interval, b_mean)``; the pairs
    left out for want of a seed where both have a value."""
    parts, left_out = [], []
    for a, b in pairs:
        c = compare(a, b, value, rule)
        if c is None:
            left_out.append(f"{a['variant']} − {b['variant']} (no seed where both have a value)")
            continue
        verdict, boundary = decide(c["interval"], c["mean_b"])
        parts.append(with_verdict(c, verdict, boundary))
        if decide is not direction:  # an equivalence: its margin, with the noise it is compared with (check_claims)
            c["margin"] = boundary
    return parts, left_out


def decided(number, claim, paper, measure, parts: list[dict], left_out: list[str], needed: str) -> dict:
    """A claim's result from its comparisons (untestable, needing ``needed``, without any); the reason names
    every verdict and every selected variant left out."""
    deciding = [p for p in parts if p.get("role") != CONTROL]
    if deciding:
        verdict = combine([p["verdict"] for p in deciding])
        reason = "; ".join(f"{difference_name(p)}: {p['verdict']}" for p in deciding)
    else:
        verdict, reason = UNTESTABLE, missing(needed)
    controls = [p for p in parts if p.get("role") == CONTROL]
    if controls:
        reason += "; controls (not deciding): " + "; ".join(
            f"{difference_name(p)} {p['interval']['mean']:+.3g}: {p['verdict']}" for p in controls
        )
    if left_out:
        reason += f"; left out: {', '.join(left_out)}"
    return claim_result(number, claim, paper, measure, parts, verdict, reason)


def claim_from_pairs(number, claim, paper, measure, pairs, value, rule, decide, left_out=()) -> dict:
    """A claim decided by comparing each (a, b) of ``pairs`` under ``rule`` with ``decide(interval, b_mean) ->
    (verdict, boundary)``."""
    parts, unpaired = compared(pairs, value, rule, decide)
    left = [*left_out, *unpaired]
    return decided(number, claim, paper, measure, parts, left, "paired variants with common seeds")
