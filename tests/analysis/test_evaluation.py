"""The one-pass evaluation gives the numbers of its three-pass specification bit for bit, reading the test once."""

import math

import pytest
import torch

from pcn.analysis.evaluation import evaluate_model, three_pass_evaluation
from pcn.nn.phase_collapse import PhaseCollapseConfig, PhaseCollapseNet
from pcn.nn.resnet import BiasFreeResNet18, StandardResNet18
from pcn.nn.scattering import ScatteringNet

CLASSES = 3


def lscat(arch: str, rho: str) -> PhaseCollapseNet:
    cfg = PhaseCollapseConfig(
        in_channels=1, image_size=16, num_classes=CLASSES, widths=(4, 6), arch=arch, nonlinearity=rho
    )
    return PhaseCollapseNet(cfg)


MODELS = {
    "lscat_skip_cst": lambda: lscat("lscat_skip", "cst"),  # rho on complex and real parts: zeros of both
    "lscat_mod": lambda: lscat("lscat", "mod"),
    "resnet_thresh": lambda: BiasFreeResNet18(1, CLASSES, "thresh", learned=False, threshold_init=0.2, stem="small"),
    "resnet_standard": lambda: StandardResNet18(1, CLASSES, stem="small"),  # in-place ReLU, called twice a block
    "scat": lambda: ScatteringNet(1, 16, CLASSES, J=2),  # no accessible non-linearity: no zeros
}


def batches(n_images: int, batch: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Random images (the last batch smaller), labels cycling over the classes."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n_images, 1, 16, 16, generator=g) * torch.rand(n_images, 1, 1, 1, generator=g) * 3
    labels = torch.arange(n_images) % CLASSES
    return [(images[i : i + batch], labels[i : i + batch]) for i in range(0, n_images, batch)]


class OnePass:
    """Batches that can be iterated once only."""

    def __init__(self, items):
        self.items, self.passes = items, 0

    def __iter__(self):
        self.passes += 1
        assert self.passes == 1, "the test split was read twice"
        return iter(self.items)


def same(a, b) -> bool:
    """Exact equality, NaN equal to NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return type(a) is type(b) and a == b


@pytest.mark.parametrize("name", MODELS)
def test_one_pass_gives_the_three_pass_numbers_bit_for_bit(name):
    torch.manual_seed(0)
    model = MODELS[name]()
    with torch.no_grad():  # BatchNorm running statistics that are not their initial values
        model(torch.randn(32, 1, 16, 16) * 2 + 0.3)
    train, test = batches(41, 16, seed=1), batches(27, 8, seed=2)
    settings = (CLASSES, torch.device("cpu"), 16, 1e-3, 35)  # probe_dim 16: projected and plain views
    expected = three_pass_evaluation(model.train(), train, test, *settings)
    once = OnePass(test)
    got = evaluate_model(model.train(), train, once, *settings)
    assert once.passes == 1
    assert got[0] == expected[0]  # loss, top-1, top-5 and count
    rows, want = got[1], expected[1]
    assert [list(r) for r in rows] == [list(r) for r in want]
    bad = [(r["layer"], r["place"], r["feature"], k) for r, w in zip(rows, want) for k in r if not same(r[k], w[k])]
    assert not bad, bad
    assert got[2] == expected[2]
    if name != "scat":  # the zero fractions are there, and in the rho rows
        assert len(got[2]) == max(r["layer"] for r in rows) and all(z is not None for z in got[2])
        assert [r["zero_fraction"] for r in rows if r["place"] == "rho" and r["feature"] == "flatten"] == got[2]
    else:
        assert got[2] == [None] and all(math.isnan(r["zero_fraction"]) for r in rows)
