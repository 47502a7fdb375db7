"""A study: one quantity of the data changed over several values (the translation range: the canvas side), the
same variants and seeds at each, and how the paper's mechanism follows it.

Each value's report (``table.json`` of its run, :func:`pcn.analysis.report.build_report`) gives, for every
seed :math:`s`:

* the **premise share** :math:`\\pi`: the share of the energy of the flattened first-layer wavelet coefficients
  carried by their class means, :math:`\\sum_c p_c \\mu_c^\\top \\nu_c / E` (the ``class_mean_share`` of
  :mod:`pcn.analysis.separation`, cross-fitted; claim 6's premise, the same measure under the same name),
  averaged over the LScat variants (it involves no trained parameter: the same for every LScat network of a
  seed). The paper's argument: it vanishes for classes invariant to translations;
* the **gap** of each compared variant :math:`v` to the reference (the modulus network):
  :math:`g_v(s) = e_v(s) - e_{ref}(s)`, the difference of test errors (percentage points) on the seed's test
  split, with its paired Student-t interval over the seeds (Nadeau and Bengio's ratio :math:`r` of the report
  when each seed drew its own split; :func:`pcn.analysis.statistics.paired_interval`).

Across values, "the gap grows as the class means vanish" is tested on the first and last values, paired by
seed (each seed keeps the same digits and split at every value; only their positions change): the growth
:math:`g_v^{last}(s) - g_v^{first}(s)` with its interval (the same :math:`r`), decided as a direction
(:func:`pcn.analysis.verdicts.direction_verdict`): supported above zero, contradicted below, otherwise not
distinguishable, with the seeds that the observed spread would need (:func:`pcn.analysis.statistics.seeds_to_decide`).
"""

from __future__ import annotations

from pcn.analysis.claims import PREMISE_VIEW
from pcn.analysis.statistics import paired_interval, seeds_to_decide, summary
from pcn.analysis.verdicts import UNDECIDED, direction_verdict, view_value
from pcn.names import LSCAT_ARCHITECTURES


class StudyError(ValueError):
    """A report of the study lacks what it needs (the message names the value and what is missing)."""


def premise_by_seed(rows: list[dict]) -> dict:
    """``{seed: premise share}``: the class-mean share of the flattened first-layer wavelet coefficients,
    averaged over the LScat rows (module docstring); empty without an LScat row."""
    found: dict = {}
    for row in rows:
        if row.get("arch") in LSCAT_ARCHITECTURES and row.get("views"):
            for seed, value in view_value(row, PREMISE_VIEW, 1).items():
                found.setdefault(str(seed), []).append(value)
    return {seed: sum(values) / len(values) for seed, values in found.items()}


def _errors(rows: list[dict], variant: str, label: str) -> dict:
    for row in rows:
        if row.get("variant") == variant:
            return {str(seed): error for seed, error in row["test_error_by_seed"].items()}
    raise StudyError(f"{label}: the report has no row of {variant!r}")


def point(table: dict, value, reference: str, compared: list[str], confidence: float) -> dict:
    """The study's measures at one value from its report ``table`` (module docstring)."""
    label = f"value {value!r}"
    rows, r = table.get("rows") or [], float(table.get("resampling") or 0.0)
    ref = _errors(rows, reference, label)
    premise = premise_by_seed(rows)
    if not premise:
        raise StudyError(f"{label}: the report has no LScat row to measure the premise share on")
    gaps, errors = {}, {reference: paired_interval(list(ref.values()), confidence, r)}
    for v in compared:
        mine = _errors(rows, v, label)
        common = sorted(set(mine) & set(ref), key=int)
        if not common:
            raise StudyError(f"{label}: {v!r} and {reference!r} share no seed")
        errors[v] = paired_interval(list(mine.values()), confidence, r)
        by_seed = {s: mine[s] - ref[s] for s in common}
        gaps[v] = {"by_seed": by_seed, "interval": paired_interval(list(by_seed.values()), confidence, r)}
    return {
        "value": value,
        "resampling": r,
        "premise_share": {"by_seed": premise, **summary(list(premise.values()))},
        "test_error": errors,
        "gap": gaps,
    }


def growth(points: list[dict], variant: str, confidence: float) -> dict:
    """The change of ``variant``'s gap from the first value to the last, paired by seed, with its verdict."""
    first, last = points[0]["gap"][variant]["by_seed"], points[-1]["gap"][variant]["by_seed"]
    common = sorted(set(first) & set(last), key=int)
    r = max(points[0]["resampling"], points[-1]["resampling"])
    interval = paired_interval([last[s] - first[s] for s in common], confidence, r)
    verdict = direction_verdict(interval) if common else UNDECIDED
    out = {"from": points[0]["value"], "to": points[-1]["value"], "seeds": common, "interval": interval}
    out["verdict"] = verdict
    if verdict == UNDECIDED and interval["sd"]:
        out["seeds_to_decide"] = seeds_to_decide(interval, 0.0)
    return out


def study_table(study: dict, tables: dict, confidence: float) -> dict:
    """The study over its values: ``tables`` maps each finished value's index to its report (table.json);
    values without one are pending. The growth is computed when the first and last values are finished."""
    reference, compared = study["reference"], study["compare"]
    points = [
        point(tables[i], value, reference, compared, confidence) if i in tables else {"value": value, "pending": True}
        for i, value in enumerate(study["values"])
    ]
    done = [p for p in points if not p.get("pending")]
    ends = not points[0].get("pending") and not points[-1].get("pending")
    return {
        "key": study["key"],
        "values": study["values"],
        "reference": reference,
        "compare": compared,
        "confidence": confidence,
        "points": points,
        "growth": {v: growth(done, v, confidence) for v in compared} if ends else {},
    }
