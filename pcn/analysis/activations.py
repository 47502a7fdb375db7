"""How sparse the non-linearities make the features: the fraction of exact zeros of their outputs, per layer.

For layer ``j >= 1`` (block ``j`` of a phase-collapse network; the stem, then the 4 stages of a
ResNet), over the test images,

.. math::

    z_j = \\frac{\\#\\{\\text{entries } e \\text{ of } \\rho\\text{'s outputs in layer } j : e = 0\\}}
               {\\#\\{\\text{entries}\\}}

where a complex entry is zero when both its real and imaginary parts are. Where it is taken:
the output of rho itself (before standardization and projection in a block; every ReLU-like
call of a ResNet stage, after BatchNorm). A thresholding that kills most of its input shows
up here (the authors' ``thresh`` at ``b = 1`` after affine-free BatchNorm); the modulus and
tanh give almost no exact zeros. A network without such outputs (the Scat baseline, whose
modulus is inside kymatio) gets None.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from pcn.nn.features import SplitFeatures


def _zeros(x) -> tuple[int, int]:
    """(exact zeros, entries) of a real tensor or of a :class:`SplitFeatures` (complex zero: both parts)."""
    if not isinstance(x, SplitFeatures):
        return int((x == 0).sum()), x.numel()
    zeros, entries = 0, 0
    if x.re is not None:
        zeros, entries = int(((x.re == 0) & (x.im == 0)).sum()), x.re.numel()
    if x.real is not None:
        zeros, entries = zeros + int((x.real == 0).sum()), entries + x.real.numel()
    return zeros, entries


class ZeroCounts:
    """Exact zeros and entries of the non-linearity outputs, per layer (index 0: layer 1)."""

    def __init__(self):
        self.counts: list[list[int]] = []

    def add(self, layer: int, x) -> None:
        """Count the zeros of ``x`` (a real tensor or a :class:`SplitFeatures`) in ``layer``."""
        while len(self.counts) <= layer:
            self.counts.append([0, 0])
        z, n = _zeros(x)
        self.counts[layer][0] += z
        self.counts[layer][1] += n

    def fractions(self) -> list[float | None]:
        """:math:`z_j` of every layer counted (None for a layer without entries)."""
        return [z / n if n else None for z, n in self.counts]


@contextmanager
def counting_zeros(model: nn.Module, counts: ZeroCounts):
    """While in this context, every forward pass of ``model`` adds the outputs of its non-linearity modules (a
    ResNet's ``nonlinearity_modules()``, by layer) to ``counts``; nothing for a model without such modules."""
    hooks = []
    if hasattr(model, "nonlinearity_modules"):
        for layer, modules in enumerate(model.nonlinearity_modules()):
            for module in modules:
                hooks.append(module.register_forward_hook(lambda m, i, out, layer=layer: counts.add(layer, out)))
    try:
        yield counts
    finally:
        for hook in hooks:
            hook.remove()


@torch.no_grad()
def zero_fractions(
    model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], device: torch.device
) -> list[float] | None:
    """:math:`z_j` of every layer ``j >= 1`` (module docstring), over ``batches``; None if not measurable."""
    hooked = hasattr(model, "nonlinearity_modules")
    if not hooked and not hasattr(model, "nonlinearity_outputs"):
        return None
    counts = ZeroCounts()
    with counting_zeros(model, counts):
        model.eval()
        for images, _ in batches:
            images = images.to(device)
            if hooked:
                model(images)
            else:
                for layer, out in enumerate(model.nonlinearity_outputs(images)):
                    counts.add(layer, out)
    return counts.fractions()
