"""The complex modulus :math:`|z| = \\sqrt{(\\mathrm{Re} z)^2 + (\\mathrm{Im} z)^2}` of split channels, with a finite
gradient at the origin: the phase collapse of :mod:`pcn.nn.nonlinearities`."""

from __future__ import annotations

import torch
from torch import Tensor


class StableModulus(torch.autograd.Function):
    """:math:`\\sqrt{a^2 + b^2}` with gradient ``(a, b) / |z|`` and a zero subgradient at ``z = 0``.

    The plain formula gives NaN at 0; like kymatio's ``ModulusStable`` we return 0 there.
    """

    @staticmethod
    def forward(ctx, re: Tensor, im: Tensor) -> Tensor:
        modulus = torch.hypot(re, im)  # one pass, no overflow of re^2 + im^2
        ctx.save_for_backward(re, im, modulus)
        return modulus

    @staticmethod
    def backward(ctx, grad: Tensor):
        re, im, modulus = ctx.saved_tensors
        scale = torch.div(grad, modulus).masked_fill_(modulus == 0, 0)
        return scale * re, scale * im


def modulus(re: Tensor, im: Tensor) -> Tensor:
    """Complex modulus with a finite (zero) gradient at the origin."""
    return StableModulus.apply(re, im)
