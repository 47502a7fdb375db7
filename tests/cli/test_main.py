"""The ``pcn`` command: ``--help`` lists every driver, each driver's ``--help`` shows an example, and an expected
failure is one line on stderr with exit status 1."""

import subprocess
import sys

import pytest

from pcn.cli.main import SUBCOMMANDS, main, parser_for

from conftest import ROOT


def pcn(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "pcn.cli.main", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_help_lists_every_driver():
    out = pcn("--help")
    assert out.returncode == 0
    assert {"preset", "sweep", "resync"} <= set(SUBCOMMANDS)
    for name in SUBCOMMANDS:
        assert f"    {name} " in out.stdout, name


@pytest.mark.parametrize("name", list(SUBCOMMANDS))
def test_each_driver_has_help_with_an_example(name):
    parser, module = parser_for(name)
    text = parser.format_help()
    assert "examples:" in text and f"pcn {name}" in module.EXAMPLE


def test_an_expected_failure_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lrr: 0.1\n")
    assert main(["preset", str(bad), "--print"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "train.lrr" in err and "Traceback" not in err


def test_outside_a_project_the_driver_says_so(tmp_path):
    out = pcn("preset", "x.yaml", cwd=tmp_path)
    assert out.returncode == 1 and "is not inside a pcn project" in out.stderr
