"""The Table 1 baselines (Scat with kymatio, torchvision's ResNet-18) and the thresholds of the ResNet ablations."""

import math

import pytest
import torch

from pcn.nn.nonlinearities import inverse_softplus, resnet_nonlinearity
from pcn.nn.phase_collapse import count_parameters
from pcn.nn.resnet import BiasFreeResNet18, StandardResNet18
from pcn.nn.scattering import ScatteringNet, scattering_channels


def test_scat_is_kymatios_scattering_standardized():
    from kymatio.torch import Scattering2D

    torch.manual_seed(0)
    x = torch.randn(3, 1, 28, 28)
    model = ScatteringNet(1, 28, 10, J=2, L=8).eval()
    reference = Scattering2D(J=2, shape=(28, 28), L=8, max_order=2)(x).flatten(1, 2)  # (3, 81, 7, 7)
    with torch.no_grad():
        ours = model.scatter(x) * math.sqrt(1 + 1e-5)  # evaluation: running mean 0, variance 1 at start
    assert scattering_channels(2, 8) == 81 == reference.shape[1]
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)
    assert model(x).shape == (3, 10) and len(model.layer_features(x)) == 1


def test_scat_learns_only_its_classifier():
    model = ScatteringNet(1, 28, 10, J=2, L=8)
    channels, side = 81, 7
    assert count_parameters(model) == 2 * channels + channels * side * side * 10 + 10  # BatchNorm + Linear
    with pytest.raises(ValueError, match="divisible by 8"):
        ScatteringNet(1, 28, 10, J=3)


def test_standard_resnet18_has_torchvisions_parameters_and_biases():
    from torchvision.models import resnet18

    reference = sum(p.numel() for p in resnet18(num_classes=10).parameters())  # 11,181,642
    small = StandardResNet18(1, 10, stem="small")
    assert count_parameters(small) == reference - 3 * 64 * 7 * 7 + 1 * 64 * 3 * 3
    assert count_parameters(StandardResNet18(3, 10)) == reference
    assert small.net.bn1.affine and small.net.fc.bias is not None and isinstance(small.net.maxpool, torch.nn.Identity)
    x = torch.randn(2, 1, 28, 28)
    assert small(x).shape == (2, 10) and [f.shape[-1] for f in small.layer_features(x)] == [28, 28, 14, 7, 4]
    assert count_parameters(BiasFreeResNet18(3, 1000, "relu")) == 11_679_912  # the Table 3 network, unchanged


@pytest.mark.parametrize(
    "make", [lambda stem: StandardResNet18(1, 10, stem=stem), lambda stem: BiasFreeResNet18(1, 10, "relu", stem=stem)]
)
def test_resnet_stems_set_the_resolution_of_every_stage(make):
    x = torch.randn(2, 1, 40, 40)
    sides = {stem: [f.shape[-1] for f in make(stem).layer_features(x)] for stem in ("imagenet", "small", "strided")}
    assert sides == {"imagenet": [10, 10, 5, 3, 2], "small": [40, 40, 20, 10, 5], "strided": [20, 20, 10, 5, 3]}
    assert count_parameters(make("strided")) == count_parameters(make("small"))  # only the stride differs


@pytest.mark.parametrize("kind", ["thresh", "absdead"])
def test_a_learned_threshold_starts_where_asked_stays_positive_and_learns(kind):
    nl = resnet_nonlinearity(kind, 4, True, 0.3)
    torch.testing.assert_close(nl.threshold, torch.full((4,), 0.3))
    with torch.no_grad():
        nl.beta.fill_(-30.0)  # however negative the free parameter
    assert (nl.threshold > 0).all()
    nl.beta.data.fill_(inverse_softplus(0.3))
    x = torch.linspace(-2, 2, 4 * 9).view(1, 4, 3, 3)
    nl(x).pow(2).sum().backward()
    assert nl.beta.grad is not None and (nl.beta.grad != 0).all()
    with pytest.raises(ValueError, match="must be > 0"):
        resnet_nonlinearity(kind, 4, True, 0.0)


def test_the_authors_frozen_threshold_is_a_buffer():
    frozen = resnet_nonlinearity("thresh", 4, False, 1.0)
    assert not list(frozen.parameters()) and torch.equal(frozen.threshold, torch.ones(4))
    assert count_parameters(BiasFreeResNet18(3, 1000, "thresh", learned=False)) == 11_679_912  # b frozen
    assert count_parameters(BiasFreeResNet18(3, 1000, "thresh")) > 11_679_912
