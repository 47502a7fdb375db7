"""The report over seeds: per-variant summaries, paired differences, bands and trends, on a two-seed run."""

import json

import numpy as np
import pytest
from matplotlib.colors import to_rgb

from pcn.analysis.report import REFERENCES, build_report, summary_metrics
from pcn.analysis.report_markdown import markdown


def run(test_error: float, ncm: list[float], epochs=(0.5, 0.9), fisher_falls=False) -> dict:
    """Results of one (variant, seed): what the train and evaluate stages write (separation.csv's rows: the
    input, then per layer before_rho, rho and block; every measure follows ``ncm``)."""

    def measures(a):
        return {
            "ncm_accuracy": a,
            "probe_accuracy": a + 0.01,
            "fisher": 1 / a if fisher_falls else 10 * a,
            "class_mean_share": a / 2,
            "between_share": a / 4,
        }

    layers = [{"layer": 0, "place": "input", "feature": f, **measures(ncm[0])} for f in ("spatial_mean", "flatten")]
    layers += [
        {"layer": i, "place": p, "feature": f, **measures(a)}
        for i, a in enumerate(ncm)
        if i
        for p in ("before_rho", "rho", "block")
        for f in ("spatial_mean", "flatten")
    ]
    return {
        "train": {
            "n_parameters": 1000,
            "epochs": len(epochs),
            "best_test_error": test_error - 0.5,
            "final_val_error": test_error + 1.0,
            "final_train_acc": 1.0 - test_error / 50,
        },
        "evaluate": {"test_error": test_error},
        "separation": layers,
        "history": [{"epoch": e + 1, "test_acc": a} for e, a in enumerate(epochs)],
    }


def two_seed_variants() -> dict:
    return {
        "modulus": {
            "arch": "lscat",
            "nonlinearity": "mod",
            "recipe": {"lr": 0.01, "epochs": 2, "lr_step": 1, "batch_size": 128, "lr_gamma": 0.1},
            "seeds": {0: run(2.0, [0.80, 0.85, 0.95]), 1: run(3.0, [0.80, 0.83, 0.91])},
        },
        "soft_threshold": {
            "arch": "lscat",
            "nonlinearity": "cst",
            "seeds": {0: run(12.0, [0.80, 0.79, 0.82]), 1: run(17.0, [0.80, 0.81, 0.76])},
        },
        "resnet_thresh": {
            "arch": "resnet18",
            "nonlinearity": "thresh",
            "seeds": {0: run(80.0, [0.8, 0.3]), 1: run(82.0, [0.8, 0.2])},
        },
    }


def test_summary_difference_and_band_on_two_seeds():
    report = build_report("mnist5k", two_seed_variants(), 0.95)
    rows = {r["variant"]: r for r in report["rows"]}
    mod, cst = rows["modulus"], rows["soft_threshold"]
    assert mod["test_error"]["mean"] == pytest.approx(2.5) and mod["test_error"]["n"] == 2
    assert mod["test_error"]["sd"] == pytest.approx(np.std([2.0, 3.0], ddof=1))
    # band: mean and sd over seeds at every layer
    block = mod["views"]["block/spatial_mean"]
    assert block["layers"] == [0, 1, 2] and mod["views"]["rho/flatten"]["layers"] == [1, 2]
    assert block["ncm_accuracy"]["mean"] == pytest.approx([0.80, 0.84, 0.93])
    assert block["ncm_accuracy"]["sd"][2] == pytest.approx(np.std([0.95, 0.91], ddof=1))
    assert mod["views"]["rho/flatten"]["class_mean_share"]["by_seed"] == {0: [0.425, 0.475], 1: [0.415, 0.455]}
    # paired difference: (12 - 2, 17 - 3) = (10, 14), t_{0.975, 1} = 12.706...
    (comp,) = [c for c in report["comparisons"] if c["ablation"] == "soft_threshold"]
    assert comp["reference"] == "modulus" and comp["differences"] == [10.0, 14.0]
    half = 12.706204736174698 * np.std([10.0, 14.0], ddof=1) / np.sqrt(2)
    assert comp["interval"]["low"] == pytest.approx(12.0 - half, rel=1e-8)
    assert "not distinguishable from zero" in comp["sentence"]  # two seeds: a wide interval
    assert any("resnet_thresh: no resnet18 network with the phase collapse (abs)" in n for n in report["notes"])
    # trends are computed from the mean curves
    assert block["ncm_accuracy"]["trend"]["rises"] and block["ncm_accuracy"]["rises_in_seeds"] == 2
    assert cst["views"]["block/flatten"]["ncm_accuracy"]["trend"]["rises"] is False
    assert [c["claim"] for c in report["claims"]] == list(range(1, 8))
    summary = summary_metrics(report)
    assert summary["test_error_pct"] == {"modulus": 2.5, "soft_threshold": 14.5, "resnet_thresh": 81.0}
    assert summary["val_error_pct"] == {"modulus": 3.5, "soft_threshold": 15.5, "resnet_thresh": 82.0}
    assert summary["n_seeds"] == {"modulus": 2, "soft_threshold": 2, "resnet_thresh": 2}
    from scipy import stats  # an independent interval of the mean: modulus errors 2 and 3 over its two seeds

    low, high = stats.t.interval(0.95, 1, loc=2.5, scale=stats.sem([2.0, 3.0]))
    assert low < 0 and summary["test_error_low"]["modulus"] == 0.0  # an error rate's interval stops at 0
    low = stats.t.interval(0.95, 1, loc=81.0, scale=stats.sem([80.0, 82.0]))[0]
    assert low > 0 and summary["test_error_low"]["resnet_thresh"] == pytest.approx(low, abs=1e-4)
    assert summary["test_error_high"]["modulus"] == pytest.approx(high, abs=1e-4)
    assert summary["test_error_sd"]["modulus"] == pytest.approx(np.std([2.0, 3.0], ddof=1), abs=1e-4)
    del report["rows"][0]["val_error"]  # trained without a validation split
    assert "modulus" not in summary_metrics(report)["val_error_pct"]
    json.dumps(report)  # the JSON file can be written


def test_markdown_states_spread_interval_and_trends():
    text = markdown(build_report("cifar10", two_seed_variants(), 0.95))
    # the budget of each arm, its training accuracy over seeds and claim 6's measure of ρ in block 1 (a / 4)
    mod = "| modulus | lscat | mod | 1,000 | lr 0.01, 2 epochs, ×0.1 every 1 | 2 | 2.50 ± 0.71 | 2.00 – 3.00 |"
    assert mod in text and "| 0.940 – 0.960 | " in text
    assert [line for line in text.splitlines() if line.startswith(mod)][0].endswith("| 0.21 |")  # (0.85 + 0.83) / 8
    assert "| soft_threshold | lscat | cst | 1,000 | 2 epochs | 2 |" in text  # no recipe recorded
    assert "| soft_threshold | modulus | 2 | +12.00 | [" in text
    assert "11.7" in text  # the paper's CIFAR-10 LScat number
    assert text.startswith("## The paper's claims on cifar10")
    assert "| 3 | Replacing the modulus by complex soft-thresholding" in text
    assert (
        "modulus, block outputs, spatial mean features: nearest-class-mean test accuracy rises (0.8 → 0.93; "
        "last above input in 2 of 2 seeds)"
    ) in text
    assert "All three measures agree: classes are more separated at the last layer than at the input." in text
    assert "soft_threshold, block outputs, flatten features: nearest-class-mean test accuracy falls" in text


def test_measures_that_disagree_are_said_to_disagree():
    variants = two_seed_variants()
    variants["modulus"]["seeds"] = {s: run(2.0 + s, [0.8, 0.85, 0.95], fisher_falls=True) for s in (0, 1)}
    text = markdown(build_report("mnist5k", variants, 0.95))
    line = next(line for line in text.splitlines() if line.startswith("- modulus, block outputs, flatten"))
    assert "Fisher ratio" in line and "falls" in line and "rises" in line
    assert line.endswith("The measures disagree, so no conclusion on separation is drawn from them.")


def test_figures_are_drawn(tmp_path):
    from pcn.analysis.plots import plot_epoch_bands, plot_errors, plot_layer_bands

    variants = two_seed_variants()
    report = build_report("mnist5k", variants, 0.95)
    plot_errors(report["rows"], tmp_path / "e.png")
    plot_epoch_bands({n: [r["history"] for r in v["seeds"].values()] for n, v in variants.items()}, tmp_path / "a.png")
    panels = [("block/flatten", "fisher", "Fisher"), ("rho/flatten", "class_mean_share", "share")]
    plot_layer_bands(report["rows"], panels, tmp_path / "c.png", log=True)
    from matplotlib import colormaps
    from matplotlib.image import imread

    def has_colour(path, rgb) -> bool:  # some pixels within 2/255 of the colour
        pixels = imread(path)[..., :3]
        return int((abs(pixels - np.array(rgb[:3])).max(axis=-1) < 2 / 255).sum()) >= 5

    colours = [colormaps["tab10"](i) for i in range(len(variants))]  # a colour of its own per variant
    for name in ("a.png", "c.png"):  # one curve (and band edge) per variant, in its colour
        assert all(has_colour(tmp_path / name, c) for c in colours), name
    assert has_colour(tmp_path / "e.png", to_rgb("lightsteelblue"))  # the bars of the means
    report["rows"][0]["test_error"]["mean"] += 5  # other data, another picture
    plot_errors(report["rows"], tmp_path / "e2.png")
    assert not np.array_equal(imread(tmp_path / "e.png"), imread(tmp_path / "e2.png"))


@pytest.mark.parametrize("n", [1, 3, 10, 17, 20, 25])
def test_every_curve_gets_its_own_colour(n):
    from pcn.analysis.plots import curve_colors

    colors = curve_colors(n)
    assert len(colors) == n and len(set(colors)) == n


def test_many_variants_are_drawn_with_the_legend_beside_the_axes(tmp_path):
    from pcn.analysis.plots import plot_layer_bands

    rows = build_report("mnist5k", two_seed_variants(), 0.95)["rows"]
    many = [dict(row, variant=f"{row['variant']}_{i}") for i in range(9) for row in rows]  # 18 curves
    plot_layer_bands(many, [("block/flatten", "ncm_accuracy", "NCM test accuracy")], tmp_path / "n.png")
    from matplotlib.image import imread

    height, width = imread(tmp_path / "n.png").shape[:2]
    assert width > 1.8 * height  # widened for the legend column (9 x 4.6 inches)


def test_table1_has_the_papers_layout_with_our_baselines():
    variants = two_seed_variants()
    variants["scat"] = {
        "arch": "scat",
        "nonlinearity": "mod",
        "seeds": {0: run(9.0, [0.8, 0.9]), 1: run(11.0, [0.8, 0.9])},
    }
    variants["resnet_standard"] = {
        "arch": "resnet18_standard",
        "nonlinearity": "relu",
        "seeds": {0: run(1.0, [0.8, 0.9]), 1: run(2.0, [0.8, 0.9])},
    }
    report = build_report("translated_mnist", variants, 0.95)
    columns = {c["column"]: c for c in report["table1"]}
    assert list(columns) == ["Scat", "LScat", "LScat+skip", "ResNet"]
    assert columns["Scat"]["variant"] == "scat" and columns["Scat"]["test_error"]["mean"] == pytest.approx(10.0)
    assert columns["LScat"]["variant"] == "modulus" and columns["LScat+skip"]["variant"] is None
    assert columns["ResNet"]["test_error"]["mean"] == pytest.approx(1.5)
    text = markdown(report)
    table = text[text.index("### Table 1") : text.index("### Ablations")]
    assert "| | Scat | LScat | LScat+skip | ResNet |" in table
    assert "10.00 ± 1.41 (n = 2)" in table and "not selected" in table
    assert "| paper, CIFAR-10 | 27.7 | 11.7 | 7.7 | 8.8 |" in table
    assert "| paper, ImageNet top-1 | 73.0 | 35.9 | 30.1 | 30.2 |" in table


def test_each_architecture_is_compared_with_its_plain_phase_collapse():
    """The references come from the families of pcn.names: the first phase collapse of an architecture (the
    ResNet's absolute value, not its thresholded absdead), a baseline without one compared with its own ReLU."""
    assert REFERENCES == {
        "lscat": "mod",
        "lscat_skip": "mod",
        "resnet18": "abs",
        "resnet18_standard": "relu",
        "scat": "mod",
    }


def test_resampled_splits_widen_every_interval_by_nadeau_bengio():
    variants = two_seed_variants()
    plain = build_report("mnist5k", variants, 0.95)
    assert plain["resampling"] == 0.0 and "no resampling correction" in markdown(plain)  # sizes not recorded
    sizes = {0: {"n_train": 3600, "n_test": 1000}, 1: {"n_train": 3000, "n_test": 1000}}
    for v in variants.values():
        for seed, r in v["seeds"].items():
            r["evaluate"]["resampled_split"] = sizes[seed]
    report = build_report("mnist5k", variants, 0.95)
    r = (1000 / 3600 + 1000 / 3000) / 2
    assert report["resampling"] == pytest.approx(r)
    (comp,) = [c for c in report["comparisons"] if c["ablation"] == "soft_threshold"]
    half = 12.706204736174698 * np.std([10.0, 14.0], ddof=1) * np.sqrt(1 / 2 + r)
    assert (comp["interval"]["low"], comp["interval"]["high"]) == pytest.approx((12.0 - half, 12.0 + half))
    claim3 = report["claims"][2]["comparisons"][0]
    assert claim3["interval"]["resampling"] == pytest.approx(r) and claim3["interval"]["low"] == comp["interval"]["low"]
    assert f"r = n_test / n_train = {r:.4g}" in markdown(report)
    mean_high = summary_metrics(report)["test_error_high"]["resnet_thresh"]
    assert mean_high == pytest.approx(
        81.0 + 12.706204736174698 * np.std([80.0, 82.0], ddof=1) * np.sqrt(0.5 + r), abs=1e-4
    )
    variants["modulus"]["seeds"][1]["evaluate"]["resampled_split"] = None  # one run on a shared split: no ratio
    assert build_report("mnist5k", variants, 0.95)["resampling"] == 0.0
