"""Pointwise non-linearities on complex (and real) channels.

The phase collapse is the complex modulus :math:`\\rho(z) = |z|`. The ablations of
the paper's Table 2 keep the phase and act on the amplitude only,
:math:`\\rho(z) = f(|z|)\\, z / (|z| + \\epsilon)` with :math:`\\epsilon = 10^{-6}`:

=========  ========================================================  ==========================
name       formula                                                   learned per channel
=========  ========================================================  ==========================
``mod``    :math:`|z|` (real output)                                 none
``cst``    :math:`\\mathrm{ReLU}(1 - \\lambda / (|z| + \\epsilon))\\, z`   :math:`\\lambda` (init 0.1)
``ms``     :math:`\\sigma(g |z| + b)\\, z / (|z| + \\epsilon)`            g (init 1), b (init 0)
``mc``     :math:`z / (|z| + \\epsilon)`                                none
``tanh``   :math:`\\tanh(|z|)\\, z / (|z| + \\epsilon)`                   none
``relu``   :math:`\\mathrm{ReLU}(\\mathrm{Re} z) + i\\, \\mathrm{ReLU}(\\mathrm{Im} z)`  none
=========  ========================================================  ==========================

``relu`` is our addition (the reference has a real ReLU only): a rectifier on the real
and imaginary parts, which is neither a phase collapse nor phase preserving.
On a real channel ``x`` the same formulas apply with ``z = x`` (so ``mod`` gives ``|x|``).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from pcn.features import SplitFeatures

NONLINEARITIES = ("mod", "cst", "ms", "mc", "tanh", "relu")
PHASE_EPS = 1e-6


class StableModulus(torch.autograd.Function):
    """:math:`\\sqrt{a^2 + b^2}` with gradient ``(a, b) / |z|`` and a zero subgradient at ``z = 0``.

    The plain formula gives NaN at 0; like kymatio's ``ModulusStable`` we return 0 there.
    """

    @staticmethod
    def forward(ctx, re: Tensor, im: Tensor) -> Tensor:
        modulus = torch.sqrt(re * re + im * im)
        ctx.save_for_backward(re, im, modulus)
        return modulus

    @staticmethod
    def backward(ctx, grad: Tensor):
        re, im, modulus = ctx.saved_tensors
        scale = torch.where(modulus > 0, grad / modulus, torch.zeros_like(grad))
        return scale * re, scale * im


def modulus(re: Tensor, im: Tensor) -> Tensor:
    """Complex modulus with a finite (zero) gradient at the origin."""
    return StableModulus.apply(re, im)


class PointwiseNonlinearity(nn.Module):
    """Apply one of :data:`NONLINEARITIES` to a :class:`SplitFeatures`.

    Parameters
    ----------
    kind : str
        One of :data:`NONLINEARITIES`.
    n_complex, n_real : int
        Numbers of complex and real input channels (learned parameters are per channel).
    learned : bool
        Whether ``cst``/``ms`` parameters are trained (the reference trains them).
    threshold, gain, bias : float
        Initial values of ``lambda`` (cst), ``g`` and ``b`` (ms).
    """

    def __init__(self, kind: str, n_complex: int, n_real: int, learned: bool = True,
                 threshold: float = 0.1, gain: float = 1.0, bias: float = 0.0):
        super().__init__()
        if kind not in NONLINEARITIES:
            raise ValueError(f"unknown non-linearity {kind!r}; valid: {', '.join(NONLINEARITIES)}")
        self.kind, self.n_complex, self.n_real = kind, n_complex, n_real
        n = n_complex + n_real
        inits = {"cst": {"threshold": threshold}, "ms": {"gain": gain, "bias": bias}}.get(kind, {})
        for name, value in inits.items():
            tensor = torch.full((n,), float(value))
            if learned:
                self.register_parameter(name, nn.Parameter(tensor))
            else:
                self.register_buffer(name, tensor)

    def extra_repr(self) -> str:
        return f"kind={self.kind}, n_complex={self.n_complex}, n_real={self.n_real}"

    def _amplitude(self, amplitude: Tensor, channels: slice) -> Tensor:
        """Gain ``f(|z|) / (|z| + eps)`` multiplying ``z`` (phase-preserving kinds)."""
        def per_channel(p):
            return p[channels].view(1, -1, 1, 1)
        safe = amplitude + PHASE_EPS
        if self.kind == "cst":
            return torch.relu(1 - per_channel(self.threshold) / safe)
        if self.kind == "ms":
            return torch.sigmoid(per_channel(self.gain) * amplitude + per_channel(self.bias)) / safe
        if self.kind == "mc":
            return 1 / safe
        if self.kind == "tanh":
            return torch.tanh(amplitude) / safe
        raise AssertionError(self.kind)

    def forward(self, x: SplitFeatures) -> SplitFeatures:
        cc = x.n_complex
        complex_part, real_part = SplitFeatures(), SplitFeatures()
        if x.re is not None:
            if self.kind == "mod":
                complex_part = SplitFeatures(real=modulus(x.re, x.im))
            elif self.kind == "relu":
                complex_part = SplitFeatures(re=torch.relu(x.re), im=torch.relu(x.im))
            else:
                g = self._amplitude(modulus(x.re, x.im), slice(0, cc))
                complex_part = SplitFeatures(re=g * x.re, im=g * x.im)
        if x.real is not None:
            if self.kind == "mod":
                real_part = SplitFeatures(real=x.real.abs())
            elif self.kind == "relu":
                real_part = SplitFeatures(real=torch.relu(x.real))
            else:
                real_part = SplitFeatures(real=self._amplitude(x.real.abs(), slice(cc, None)) * x.real)
        return SplitFeatures.cat([complex_part, real_part])
