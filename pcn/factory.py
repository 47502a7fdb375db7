"""Build a model from validated parameters and a data card."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import nn

from pcn import model as phase_collapse
from pcn import resnet
from pcn.model import PhaseCollapseConfig, PhaseCollapseNet
from pcn.nonlinearities import NONLINEARITIES
from pcn.resnet import BiasFreeResNet18

#: Valid ``models.<name>.arch`` values and the non-linearities each accepts.
ARCHITECTURES = (*phase_collapse.ARCHITECTURES, resnet.ARCHITECTURE)


if TYPE_CHECKING:                      # typed configurations (pcn.config reads the choices above)
    from pcn.config import FiltersConfig, NetworkConfig, VariantConfig


def nonlinearities_of(arch: str) -> tuple[str, ...]:
    """Valid non-linearities of an architecture."""
    return resnet.RESNET_NONLINEARITIES if arch == resnet.ARCHITECTURE else NONLINEARITIES


@dataclass(frozen=True)
class InputSpec:
    """What the model needs to know about the data."""

    channels: int
    image_size: int
    num_classes: int


def threshold_init(variant: VariantConfig) -> float:
    """Initial threshold: the variant's, else the reference's (0.1 for ``cst``, 1.0 for ResNet ``thresh``)."""
    if variant.threshold_init is not None:
        return variant.threshold_init
    return 1.0 if variant.arch == resnet.ARCHITECTURE else 0.1


def phase_collapse_config(network: NetworkConfig, filters: FiltersConfig, variant: VariantConfig,
                          inputs: InputSpec) -> PhaseCollapseConfig:
    return PhaseCollapseConfig(
        in_channels=inputs.channels, image_size=inputs.image_size, num_classes=inputs.num_classes,
        widths=tuple(network.widths), n_angles=filters.n_angles, full_angles=filters.full_angles,
        factorize_from=filters.factorize_from, arch=variant.arch, nonlinearity=variant.nonlinearity,
        nonlinearity_learned=variant.learned, threshold_init=threshold_init(variant),
        gain_init=variant.gain_init, bias_init=variant.bias_init, sigma0=filters.sigma0,
        backend=filters.backend, kernel_tolerance=filters.kernel_tolerance,
        normalize_eps=network.normalize_eps)


def build_model(network: NetworkConfig, filters: FiltersConfig, variant: VariantConfig,
                inputs: InputSpec) -> nn.Module:
    """A :class:`PhaseCollapseNet` or a :class:`BiasFreeResNet18`, per ``variant.arch``."""
    if variant.arch == resnet.ARCHITECTURE:
        return BiasFreeResNet18(inputs.channels, inputs.num_classes, variant.nonlinearity, variant.learned,
                                threshold_init(variant),
                                network.resnet_stem)
    return PhaseCollapseNet(phase_collapse_config(network, filters, variant, inputs))
