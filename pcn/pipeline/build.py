"""Build a model from the validated params sections (:mod:`pcn.schema`) and a data card.

Every setting keeps its params name down to the network (``learned``, ``threshold_init``,
``kernel_tolerance``, ...). A setting left unset in params (``threshold_init: null``) takes
the network's own default, defined once in :mod:`pcn.nn`: 0.1 for the LScat ``cst``
threshold, 1.0 for the ResNet ``thresh`` threshold (the reference's values).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from pcn.names import RESNET_ARCHITECTURE, SCAT_ARCHITECTURE, STANDARD_RESNET_ARCHITECTURE
from pcn.nn.phase_collapse import PhaseCollapseConfig, PhaseCollapseNet
from pcn.nn.resnet import BiasFreeResNet18, StandardResNet18
from pcn.nn.scattering import ScatteringNet
from pcn.schema import FiltersConfig, NetworkConfig, VariantConfig


@dataclass(frozen=True)
class InputSpec:
    """What the model needs to know about the data."""

    channels: int
    image_size: int
    num_classes: int

    @classmethod
    def from_card(cls, card: dict) -> InputSpec:
        """The input of a prepared data set (its ``card.json``)."""
        return cls(card["channels"], card["image_size"], card["num_classes"])


def _unset_removed(**settings) -> dict:
    """``settings`` without those left unset (None): the network's default applies to them."""
    return {k: v for k, v in settings.items() if v is not None}


def phase_collapse_config(
    network: NetworkConfig, filters: FiltersConfig, variant: VariantConfig, inputs: InputSpec
) -> PhaseCollapseConfig:
    return PhaseCollapseConfig(
        in_channels=inputs.channels,
        image_size=inputs.image_size,
        num_classes=inputs.num_classes,
        widths=tuple(network.widths),
        n_angles=filters.n_angles,
        full_angles=filters.full_angles,
        factorize_from=filters.factorize_from,
        arch=variant.arch,
        nonlinearity=variant.nonlinearity,
        learned=variant.learned,
        sigma0=filters.sigma0,
        filter_backend=network.filter_backend,
        kernel_tolerance=network.kernel_tolerance,
        normalize_eps=network.normalize_eps,
        **_unset_removed(
            threshold_init=variant.threshold_init, gain_init=variant.gain_init, bias_init=variant.bias_init
        ),
    )


def build_model(network: NetworkConfig, filters: FiltersConfig, variant: VariantConfig, inputs: InputSpec) -> nn.Module:
    """A :class:`PhaseCollapseNet`, :class:`BiasFreeResNet18`, :class:`StandardResNet18` or
    :class:`ScatteringNet` (``filters.n_angles`` angles, ``network.scat_J`` scales), per ``variant.arch``."""
    if variant.arch == SCAT_ARCHITECTURE:
        return ScatteringNet(inputs.channels, inputs.image_size, inputs.num_classes, network.scat_J, filters.n_angles)
    if variant.arch == STANDARD_RESNET_ARCHITECTURE:
        return StandardResNet18(inputs.channels, inputs.num_classes, network.resnet_stem)
    if variant.arch == RESNET_ARCHITECTURE:
        return BiasFreeResNet18(
            inputs.channels,
            inputs.num_classes,
            variant.nonlinearity,
            variant.learned,
            stem=network.resnet_stem,
            **_unset_removed(threshold_init=variant.threshold_init),
        )
    return PhaseCollapseNet(phase_collapse_config(network, filters, variant, inputs))


class PixelInput(nn.Module):
    """A trained model that takes images as a user has them: uint8 pixels (N, C, H, W) in 0..255.

    It applies its data set's normalization itself, ``x = (pixels / 255 - mean) / std`` per channel
    (the data card's ``normalization``, as training did: :func:`pcn.data.augment.normalize`), then
    the model: the logged and served form of a model.
    """

    def __init__(self, model: nn.Module, mean, std):
        super().__init__()
        self.model = model
        channels = len(mean)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, channels, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, channels, 1, 1))

    def forward(self, pixels: Tensor) -> Tensor:  # (N, C, H, W) uint8 -> (N, classes) logits
        return self.model((pixels.float() / 255 - self.mean) / self.std)


def rebuild_model(saved: dict, inputs: InputSpec) -> nn.Module:
    """The trained model of a model file (``models/<run>/model.pt``, read with ``weights_only=True``): the network
    its saved configuration builds, with its weights, in evaluation mode on the CPU."""
    model = build_model(
        NetworkConfig(**saved["network"]),
        FiltersConfig(**saved["filters"]),
        VariantConfig(**saved["variant"]),
        inputs,
    )
    model.load_state_dict(saved["state_dict"])
    return model.eval()
