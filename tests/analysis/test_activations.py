"""Fraction of exact zeros of the non-linearities' outputs per layer, against a direct count."""

import torch

from pcn.analysis.activations import zero_fractions
from pcn.nn.phase_collapse import PhaseCollapseConfig, PhaseCollapseNet
from pcn.nn.resnet import BiasFreeResNet18, StandardResNet18
from pcn.nn.scattering import ScatteringNet


def batches(n=2, size=16, channels=1):
    torch.manual_seed(0)
    return [(torch.randn(4, channels, size, size), torch.zeros(4, dtype=torch.long)) for _ in range(n)]


def test_phase_collapse_counts_match_a_direct_count_of_rho_outputs():
    torch.manual_seed(0)
    model = PhaseCollapseNet(
        PhaseCollapseConfig(
            in_channels=1, image_size=16, widths=(4, 6), n_angles=4, nonlinearity="cst", threshold_init=0.3
        )
    ).eval()
    data = batches()
    got = zero_fractions(model, data, torch.device("cpu"))
    zeros, entries = [0, 0], [0, 0]
    with torch.no_grad():
        for x, _ in data:
            for j, out in enumerate(model.nonlinearity_outputs(x)):
                both = (out.re == 0) & (out.im == 0)
                zeros[j] += int(both.sum())
                entries[j] += both.numel()
    assert got == [z / n for z, n in zip(zeros, entries)] and 0 < got[0] < 1
    mod = PhaseCollapseNet(PhaseCollapseConfig(in_channels=1, image_size=16, widths=(4, 6), n_angles=4)).eval()
    assert zero_fractions(mod, data, torch.device("cpu")) == [0.0, 0.0]  # the modulus of noise: no zeros


def test_thresholding_zeroes_more_as_the_threshold_grows():
    data = batches(size=32, channels=3)
    torch.manual_seed(0)
    frozen = [
        zero_fractions(
            BiasFreeResNet18(3, 10, "thresh", learned=False, threshold_init=b, stem="small"), data, torch.device("cpu")
        )
        for b in (0.1, 1.0)
    ]
    assert len(frozen[0]) == 5 and all(a < b for a, b in zip(*frozen))
    assert frozen[1][0] > 0.6  # b = 1 after affine-free BatchNorm: most entries zero
    relu = zero_fractions(StandardResNet18(3, 10, stem="small"), data, torch.device("cpu"))
    assert len(relu) == 5 and all(0.2 < z < 0.8 for z in relu)
    assert zero_fractions(BiasFreeResNet18(3, 10, "abs", stem="small"), data, torch.device("cpu"))[0] == 0.0
    assert zero_fractions(ScatteringNet(1, 16, 10, J=2), batches(), torch.device("cpu")) is None
