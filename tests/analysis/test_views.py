"""Where the measures are taken: each place equals an independent computation of what its name says."""

import pytest
import torch

from pcn.analysis.views import layer_views
from pcn.nn.features import SplitFeatures
from pcn.nn.phase_collapse import PhaseCollapseConfig, PhaseCollapseNet
from pcn.nn.resnet import BiasFreeResNet18, StandardResNet18
from pcn.nn.scattering import ScatteringNet


@pytest.mark.parametrize("arch", ["lscat", "lscat_skip"])
@pytest.mark.parametrize("rho", ["mod", "cst"])
def test_phase_collapse_places_are_band_pass_coefficients_rho_of_them_and_the_block_output(arch, rho):
    torch.manual_seed(0)
    model = PhaseCollapseNet(
        PhaseCollapseConfig(
            arch=arch, nonlinearity=rho, widths=[4, 6], n_angles=4, in_channels=1, image_size=16, num_classes=3
        )
    ).eval()
    for block in model.blocks:  # distinct per-channel thresholds: the channel order matters
        if rho == "cst":
            block.rho.threshold.data = torch.rand_like(block.rho.threshold)
    x = torch.randn(5, 1, 16, 16)
    views = layer_views(model, x)
    assert list(views[0]) == ["input"] and torch.equal(views[0]["input"], x)
    z = SplitFeatures(real=x)
    for block, places in zip(model.blocks, views[1:]):
        low, band = block.wavelet(z)
        assert torch.equal(places["before_rho"], band.stacked_real())  # (B, 2 C L, h, w)
        if rho == "mod":  # |x * psi|, channel by channel
            want = torch.sqrt(band.re**2 + band.im**2)
        else:  # (1 - lambda / |z|)_+ z
            offset = low.n_complex if arch == "lscat_skip" else 0  # rho's complex channels first
            lam = block.rho.threshold[offset : offset + band.n_complex]
            scale = torch.relu(1 - lam.view(1, -1, 1, 1) / torch.sqrt(band.re**2 + band.im**2))
            want = torch.cat([scale * band.re, scale * band.im], 1)
        torch.testing.assert_close(places["rho"], want, rtol=1e-5, atol=1e-6)
        z = block(z)
        torch.testing.assert_close(places["block"], z.stacked_real())


def test_resnet_places_are_the_last_nonlinearity_of_each_stage():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    for model, rho in (
        (StandardResNet18(3, 10, stem="small"), torch.relu),
        (BiasFreeResNet18(3, 10, "abs", stem="small"), torch.abs),
    ):
        model.eval()
        views = layer_views(model, x)
        blocks = model.layer_features(x)
        assert len(views) == 6
        for places, block in zip(views[1:], blocks):
            assert set(places) == {"before_rho", "rho", "block"}
            assert torch.equal(places["rho"], rho(places["before_rho"]))
            assert (places["before_rho"] < 0).any()  # not overwritten in place
            torch.testing.assert_close(places["block"], block)
        torch.testing.assert_close(views[2]["rho"], views[2]["block"])  # a stage ends with its rho


def test_scat_has_only_its_block_output():
    views = layer_views(ScatteringNet(1, 16, 10, J=2).eval(), torch.randn(2, 1, 16, 16))
    assert [list(v) for v in views] == [["input"], ["block"]]
