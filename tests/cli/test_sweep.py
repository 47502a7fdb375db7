"""pcn sweep: every point is the preset with the sweep's settings and one value, checked before anything is
queued; the table reads the validation error of each finished experiment and chooses the lowest."""

import json
import subprocess

import pytest

from pcn.cli import sweep as sweep_module
from pcn.cli.main import parser_for
from pcn.cli.preset import overlay
from pcn.cli.project import CommandError
from pcn.schema import parse_params

from conftest import ROOT, read_yaml


def sweep_command(argv: list[str]) -> int:
    """``pcn sweep ARGV`` in this process (its errors raised, not printed)."""
    parser, module = parser_for("sweep")
    return module.run(parser.parse_args(argv), [])


SWEEPS = sorted((ROOT / "sweeps").glob("*.yaml"))


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.name)
def test_every_point_of_the_committed_sweeps_is_valid_and_differs_only_by_the_value(path, default_params):
    sweep = sweep_module.load_sweep(path, ROOT)
    points = [overlay(default_params, sweep_module.point_settings(sweep, v)) for v in sweep["values"]]
    for value, point in zip(sweep["values"], points):
        params = parse_params(point, path.name)
        assert params.variants == sweep["set"]["variants"]
        assert {v: getattr(params.models[v], sweep["parameter"]) for v in params.variants} == {
            v: value for v in params.variants
        }
    first = {k: v for k, v in points[0].items() if k != "models"}
    assert all({k: v for k, v in p.items() if k != "models"} == first for p in points)  # only the value differs


def exp_show(points: dict[str, tuple[float, dict]], states: dict[str, str] | None = None) -> list:
    """A `dvc exp show --json` answer in DVC 3's nesting: experiments under their baseline commit, each with
    its queue state (``states``; none: run outside the queue)."""
    states = states or {}
    revs = [
        {
            "rev": f"{i:040x}",
            "name": name,
            "error": None,
            "data": {
                "params": {"params.yaml": {"data": {"models": {"modulus": {"lr": lr}, "resnet_relu": {"lr": lr}}}}},
                "metrics": {sweep_module.SUMMARY: {"data": {"test_error_pct": {"modulus": 0.0}, "val_error_pct": val}}},
            },
        }
        for i, (name, (lr, val)) in enumerate(points.items())
    ]
    return [
        {"rev": "workspace", "name": None, "data": {}},
        {
            "rev": "a" * 40,
            "name": "main",
            "data": {},
            "experiments": [
                {"revs": [r], "name": r["name"]}
                | ({"executor": {"state": states[r["name"]]}} if r["name"] in states else {})
                for r in revs
            ],
        },
    ]


def toy_sweep(tmp_path):
    path = tmp_path / "lr.yaml"
    path.write_text(
        "preset: presets/translated.yaml\nset:\n  seeds: [0]\n  variants: [modulus, resnet_relu]\n"
        "parameter: lr\nvalues: [0.01, 0.1, 0.03]\n"
    )
    return path, sweep_module.load_sweep(path, ROOT)


def test_the_table_chooses_the_lowest_validation_error_and_never_the_test_error(tmp_path):
    path, sweep = toy_sweep(tmp_path)
    found = sweep_module.experiments(
        exp_show(
            {
                "lr-0": (0.01, {"modulus": 5.0, "resnet_relu": 9.0}),
                "lr-1": (0.1, {"modulus": 6.0, "resnet_relu": 4.0}),
                "lr-2": (0.03, {"modulus": 5.5, "resnet_relu": 4.0}),
            }
        )
    )  # a tie: the first value listed
    table = sweep_module.sweep_table(path, sweep, found)
    assert table["chosen"] == {"modulus": 0.01, "resnet_relu": 0.1}
    assert [p["val_error_pct"]["modulus"] for p in table["points"]] == [5.0, 6.0, 5.5]
    md = sweep_module.markdown(table)
    assert "| modulus | **5.00** | 5.50 | 6.00 | 0.01 |" in md  # columns by value: 0.01, 0.03, 0.1
    assert "| lr = 0.01 | lr = 0.03 | lr = 0.1 |" in md
    json.dumps(table)


def test_unfinished_or_mismatched_experiments(tmp_path):
    path, sweep = toy_sweep(tmp_path)
    table = sweep_module.sweep_table(
        path, sweep, sweep_module.experiments(exp_show({"lr-0": (0.01, {"modulus": 5.0, "resnet_relu": 9.0})}))
    )
    assert table["chosen"] == {"modulus": None, "resnet_relu": None}
    assert "| resnet_relu | 9.00 | pending | pending | pending |" in sweep_module.markdown(table)
    # queued, running or failed: pending, whatever metrics DVC shows (a running experiment shows the baseline's)
    states = {"lr-0": "success", "lr-1": "running", "lr-2": "failed"}
    points = {"lr-0": (0.01, {"modulus": 5.0}), "lr-1": (0.1, {"modulus": 7.4}), "lr-2": (0.03, {"modulus": 1.0})}
    table = sweep_module.sweep_table(path, sweep, sweep_module.experiments(exp_show(points, states)))
    assert [p["val_error_pct"]["modulus"] for p in table["points"]] == [5.0, None, None]
    with pytest.raises(CommandError, match="ran modulus with lr=0.3, not 0.1"):
        sweep_module.sweep_table(path, sweep, sweep_module.experiments(exp_show({"lr-1": (0.3, {})})))


def test_table_never_replaces_finished_values_by_pending(tmp_path):
    path, _ = toy_sweep(tmp_path)
    show = tmp_path / "show.json"
    finished = {"lr-0": (0.01, {"modulus": 5.0}), "lr-1": (0.1, {"modulus": 6.0}), "lr-2": (0.03, {"modulus": 5.5})}
    show.write_text(json.dumps(exp_show(finished)))
    assert sweep_command([str(path), "table", "--show-json", str(show)]) == 0
    written = {suffix: path.with_suffix(suffix).read_text() for suffix in (".json", ".md")}
    assert "| modulus | **5.00** | 5.50 | 6.00 |" in written[".md"]
    show.write_text(json.dumps(exp_show({"lr-0": finished["lr-0"]})))  # a fresh clone: lr-1, lr-2 unknown
    with pytest.raises(CommandError, match=r"lr\.json: not written.*lr-1/modulus, lr-2/modulus"):
        sweep_command([str(path), "table", "--show-json", str(show)])
    assert {suffix: path.with_suffix(suffix).read_text() for suffix in (".json", ".md")} == written
    assert sweep_command([str(path), "table", "--show-json", str(show), "--overwrite"]) == 0
    assert "| modulus | 5.00 | pending | pending | pending |" in path.with_suffix(".md").read_text()
    path.with_suffix(".json").write_text(written[".json"])  # a sweep run in pieces: lr-0 here, lr-1/lr-2 kept
    show.write_text(json.dumps(exp_show({"lr-0": (0.01, {"modulus": 6.5})})))
    assert sweep_command([str(path), "table", "--show-json", str(show), "--keep-committed"]) == 0
    kept = json.loads(path.with_suffix(".json").read_text())
    assert [p["val_error_pct"]["modulus"] for p in kept["points"]] == [6.5, 6.0, 5.5]
    assert kept["kept"] == ["lr-1/modulus", "lr-2/modulus"] and kept["chosen"]["modulus"] == 0.03
    assert "Kept from the committed table (run in another checkout): lr-1/modulus, lr-2/modulus." in (
        path.with_suffix(".md").read_text()
    )
    path.with_suffix(".json").write_text("[1, 2")  # not a table: named, not overwritten
    with pytest.raises(CommandError, match=r"lr\.json: not a sweep table"):
        sweep_command([str(path), "table", "--show-json", str(show)])
    assert path.with_suffix(".json").read_text() == "[1, 2"


def test_queue_checks_every_point_before_queueing_any(tmp_path, monkeypatch):
    path, sweep = toy_sweep(tmp_path)
    calls = []
    monkeypatch.setattr(subprocess, "call", lambda cmd, **_: calls.append(cmd) or 0)
    assert sweep_module.queue(path, sweep, ROOT / "params.yaml", ROOT) == 0
    assert [c[-3:] for c in calls] == [["--queue", "-n", f"lr-{i}"] for i in range(3)]
    assert "+models.modulus.lr=0.1" in calls[1] and "models.resnet_relu.lr=0.1" in calls[1]
    calls.clear()
    committed = {  # lr-0 finished; lr-1 pending for resnet_relu; lr-2 committed at another value
        "points": [
            {"experiment": "lr-0", "value": 0.01, "val_error_pct": {"modulus": 5.0, "resnet_relu": 9.0}},
            {"experiment": "lr-1", "value": 0.1, "val_error_pct": {"modulus": 6.0, "resnet_relu": None}},
            {"experiment": "lr-2", "value": 0.3, "val_error_pct": {"modulus": 6.0, "resnet_relu": 7.0}},
        ]
    }
    path.with_suffix(".json").write_text(json.dumps(committed))
    assert sweep_module.queue(path, sweep, ROOT / "params.yaml", ROOT, pending=True) == 0
    assert [c[-1] for c in calls] == ["lr-1", "lr-2"]
    calls.clear()
    committed["points"][1]["val_error_pct"]["resnet_relu"] = 8.0
    committed["points"][2]["value"] = 0.03
    path.with_suffix(".json").write_text(json.dumps(committed))
    assert sweep_module.queue(path, sweep, ROOT / "params.yaml", ROOT, pending=True) == 0
    assert calls == []
    path.with_suffix(".json").write_text("[1, 2]")  # not a table: named, nothing queued
    with pytest.raises(CommandError, match=r"lr\.json: not a sweep table"):
        sweep_module.queue(path, sweep, ROOT / "params.yaml", ROOT, pending=True)
    assert calls == []
    bad = dict(sweep, values=[0.01, -1.0])  # the second point does not validate
    with pytest.raises(CommandError, match=r"value -1\.0.*lr"):
        sweep_module.queue(path, bad, ROOT / "params.yaml", ROOT)
    assert calls == []


def test_bad_sweep_files_are_refused_naming_the_problem(tmp_path):
    bad = tmp_path / "bad.yaml"
    for text, message in [
        ("preset: presets/translated.yaml\n", "expected exactly the keys"),
        (
            "preset: ../params.yaml\nset: {variants: [modulus]}\nparameter: lr\nvalues: [1, 2]\n",
            "not a file of this repository",
        ),
        ("preset: presets/translated.yaml\nset: {variants: [modulus]}\nparameter: lr\nvalues: [1]\n", "at least two"),
        ("preset: presets/translated.yaml\nset: {seeds: [0]}\nparameter: lr\nvalues: [1, 2]\n", "set.variants"),
    ]:
        bad.write_text(text)
        with pytest.raises(CommandError, match=message):
            sweep_module.load_sweep(bad, ROOT)
    assert read_yaml(SWEEPS[0])["parameter"]
