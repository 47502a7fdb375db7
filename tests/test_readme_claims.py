"""README's headline claims agree with the committed report they quote (results/translated/table.json).

The table's verdicts are those computed; every interval it quotes is one of the claim's computed intervals (to the
digits shown); and a sentence of README's prose that asserts a claim (:data:`ASSERTIONS`) needs that claim's
verdict to be "supported", so prose cannot outrun the verdicts.
"""

import json
import re

import pytest

from conftest import ROOT

README = (ROOT / "README.md").read_text()
TABLE = json.loads((ROOT / "results/translated/table.json").read_text())
CLAIMS = {c["claim"]: c for c in TABLE["claims"]}
#: Phrases that assert a claim (lower case), by claim number.
ASSERTIONS = {
    1: ("matches both resnet", "matches the resnet", "matches a resnet", "reaches a resnet", "reaches resnet"),
    2: ("outperform scat", "far better than scat", "far above the scat"),
    3: ("soft-thresholding increases the error", "soft-thresholding raises the error"),
    5: ("absolute value preserves", "the absolute value keeps"),
}
#: ``+0.36 points [−0.65, +1.37]`` or ``+40.8 [+30.7, +50.8]``: a mean and its interval as README writes them.
INTERVAL = re.compile(r"([+−-][\d.]+)(?: points)? \[([+−-][\d.]+), ([+−-][\d.]+)\]")


def number(text: str) -> float:
    return float(text.replace("−", "-"))


def claims_table() -> dict[int, list[str]]:
    """README's claims table of the headline run: claim number -> its cells."""
    start = README.index("The claims table of this run")
    rows = {}
    for line in README[start:].splitlines()[3:]:
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0].isdigit():
            rows[int(cells[0])] = cells
    return rows


def matches(shown: str, value: float) -> bool:
    """``shown`` is ``value`` rounded to the digits README shows."""
    decimals = len(shown.split(".")[1]) if "." in shown else 0
    return abs(number(shown) - value) <= 0.5 * 10**-decimals + 1e-9


def test_the_table_lists_every_claim_with_its_computed_verdict():
    table = claims_table()
    assert sorted(table) == sorted(CLAIMS)
    for n, cells in table.items():
        assert cells[2] == CLAIMS[n]["verdict"], (n, cells[2], CLAIMS[n]["verdict"])


def test_every_interval_quoted_is_a_computed_one():
    for n, cells in claims_table().items():
        computed = [c["interval"] for c in CLAIMS[n]["comparisons"] if "interval" in c]
        for mean, low, high in INTERVAL.findall(cells[3]):
            assert any(
                matches(mean, i["mean"]) and matches(low, i["low"]) and matches(high, i["high"]) for i in computed
            ), f"claim {n}: {mean} [{low}, {high}] is none of the computed intervals"


def prose_sentences() -> list[str]:
    """README's sentences outside tables and code blocks."""
    text = re.sub(r"```.*?```", "", README, flags=re.S)
    text = "\n".join(line for line in text.splitlines() if not line.startswith("|"))
    return [s.strip() for s in re.split(r"(?<=[.;:])\s+", " ".join(text.split())) if s.strip()]


@pytest.mark.parametrize("claim", sorted(ASSERTIONS))
def test_prose_asserts_a_claim_only_when_it_is_supported(claim):
    for sentence in prose_sentences():
        if any(phrase in sentence.lower() for phrase in ASSERTIONS[claim]):
            assert CLAIMS[claim]["verdict"] == "supported", (
                f"README asserts claim {claim} ({CLAIMS[claim]['verdict']} in table.json): {sentence!r}"
            )


#: ``15.5× [10.4, 23.2]``: a ratio and its interval as README writes them.
RATIO = re.compile(r"([\d.]+)× \[([\d.]+), ([\d.]+)\]")


def test_every_ratio_quoted_is_a_computed_one():
    table = claims_table()
    assert RATIO.findall(table[3][3]), "claim 3's cell quotes no ratio of errors"
    for n, cells in table.items():
        computed = [c["ratio"] for c in CLAIMS[n]["comparisons"] if c.get("ratio")]
        for mean, low, high in RATIO.findall(cells[3]):
            assert any(
                matches(mean, r["mean"]) and matches(low, r["low"]) and matches(high, r["high"]) for r in computed
            ), f"claim {n}: {mean}× [{low}, {high}] is none of the computed ratios"
