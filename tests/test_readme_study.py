"""README's paragraph on the translation-range study agrees with the committed study table it quotes
(studies/translation-range.json): every interval is one of the computed ones, the verdict is the computed one,
every premise share quoted is a computed mean, and a sentence that says the gap grows needs that verdict to be
"supported"."""

import json
import re

from test_readme_claims import INTERVAL, matches, number

from conftest import ROOT

README = (ROOT / "README.md").read_text()
STUDY = json.loads((ROOT / "studies/translation-range.json").read_text())
DONE = [p for p in STUDY["points"] if not p.get("pending")]
#: Phrases that assert the growth of the gap (lower case).
GROWS = ("the gap grows", "gap grows with", "grows as the class means vanish", "grows with the translation range")
#: ``0.121 at 28``: a premise share and the canvas it is quoted at.
SHARE_AT = re.compile(r"(\d\.\d+) at (\d+)")


def section() -> str:
    """README's subsection on the study, up to the next heading."""
    start = README.index("### How the gap follows the translation range")
    end = README.index("\n#", start + 4)
    return README[start:end]


def computed_intervals() -> list[dict]:
    """Every interval of the study table: each value's gaps, each growth, the premise share's change."""
    found = [g["interval"] for p in DONE for g in p["gap"].values()]
    found += [g["interval"] for g in STUDY["growth"].values()]
    if STUDY.get("premise_change"):
        found.append(STUDY["premise_change"]["interval"])
    return found


def test_the_study_paragraph_quotes_computed_intervals_and_verdicts():
    text = " ".join(section().split())
    quoted = INTERVAL.findall(text)
    assert quoted, "the study paragraph quotes no interval"
    for mean, low, high in quoted:
        assert any(
            matches(mean, i["mean"]) and matches(low, i["low"]) and matches(high, i["high"])
            for i in computed_intervals()
        ), f"{mean} [{low}, {high}] is none of the study's computed intervals"
    for variant, growth in STUDY["growth"].items():
        assert f"**{growth['verdict']}**" in text, f"README does not give the growth verdict of {variant}"
    shares = {str(p["value"]): p["premise_share"]["mean"] for p in DONE}
    assert SHARE_AT.findall(text), "the study paragraph quotes no premise share"
    for share, value in SHARE_AT.findall(text):
        assert value in shares and matches(share, shares[value]), f"premise share {share} at {value}"
        assert number(share) <= 1


def test_the_prose_says_the_gap_grows_only_when_the_verdict_is_supported():
    text = " ".join(README.split()).lower()
    verdicts = {g["verdict"] for g in STUDY["growth"].values()}
    for phrase in GROWS:
        if phrase in text:
            assert verdicts == {"supported"}, f"README says {phrase!r}, the study decided {verdicts}"
