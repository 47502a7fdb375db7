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
The premise share's change over the same two values is reported beside it, with its interval
(:func:`premise_change`): the growth is read against the vanishing of the class means.
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
    """The study's measures at one value from its report ``table`` (module docstring); a report that lacks
    what they need raises :class:`StudyError` naming the value."""
    try:
        return _point(table, value, reference, compared, confidence)
    except (KeyError, TypeError, AttributeError) as exc:
        raise StudyError(f"value {value!r}: its report cannot be read ({type(exc).__name__}: {exc})") from None


def _point(table: dict, value, reference: str, compared: list[str], confidence: float) -> dict:
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


def _change(points: list[dict], first: dict, last: dict, confidence: float) -> tuple[list[str], dict]:
    """The seeds of both ends and the interval of ``last[s] - first[s]`` over them."""
    common = sorted(set(first) & set(last), key=int)
    if not common:
        raise StudyError(f"values {points[0]['value']!r} and {points[-1]['value']!r} share no seed")
    r = max(points[0]["resampling"], points[-1]["resampling"])
    return common, paired_interval([last[s] - first[s] for s in common], confidence, r)


def growth(points: list[dict], variant: str, confidence: float) -> dict:
    """The change of ``variant``'s gap from the first value to the last, paired by seed, with its verdict."""
    first, last = points[0]["gap"][variant]["by_seed"], points[-1]["gap"][variant]["by_seed"]
    common, interval = _change(points, first, last, confidence)
    out = {"from": points[0]["value"], "to": points[-1]["value"], "seeds": common, "interval": interval}
    out["verdict"] = direction_verdict(interval)
    if out["verdict"] == UNDECIDED and interval["sd"]:
        out["seeds_to_decide"] = seeds_to_decide(interval, 0.0)
    return out


def premise_change(points: list[dict], confidence: float) -> dict:
    """The change of the premise share from the first value to the last, paired by seed (its interval): the
    other half of "the gap grows as the class means vanish"."""
    first, last = points[0]["premise_share"]["by_seed"], points[-1]["premise_share"]["by_seed"]
    common, interval = _change(points, first, last, confidence)
    return {"from": points[0]["value"], "to": points[-1]["value"], "seeds": common, "interval": interval}


def study_table(study: dict, tables: dict, confidence: float, kept: dict | None = None) -> dict:
    """The study over its values: ``tables`` maps each finished value's index to its report (table.json);
    ``kept`` maps indices to points measured earlier (a committed table's, for values this checkout did not
    run; a report in ``tables`` wins); other values are pending. The growth is computed when the first and
    last values are finished."""
    reference, compared, kept = study["reference"], study["compare"], kept or {}
    points = [
        point(tables[i], value, reference, compared, confidence)
        if i in tables
        else kept[i]
        if i in kept
        else {"value": value, "pending": True}
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
        "premise_change": premise_change(done, confidence) if ends else None,
        "kept": [study["values"][i] for i in sorted(kept) if i not in tables],
    }
