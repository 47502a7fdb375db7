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
``identity`` :math:`z` (no non-linearity: a control)                 none
=========  ========================================================  ==========================

``relu`` is our addition (the reference has a real ReLU only): a rectifier on the real
and imaginary parts, which is neither a phase collapse nor phase preserving.
On a real channel ``x`` the same formulas apply with ``z = x`` (so ``mod`` gives ``|x|``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pcn.nn.features import SplitFeatures

NONLINEARITIES = ("mod", "cst", "ms", "mc", "tanh", "relu", "identity")
PHASE_EPS = 1e-6


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


#: The reference's initial values of the learned parameters: cst ``lambda``, ms ``g`` and ``b``.
CST_THRESHOLD_INIT, MS_GAIN_INIT, MS_BIAS_INIT = 0.1, 1.0, 0.0


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
    threshold_init, gain_init, bias_init : float
        Initial values of ``lambda`` (cst), ``g`` and ``b`` (ms); defaults: the reference's.
    """

    def __init__(
        self,
        kind: str,
        n_complex: int,
        n_real: int,
        learned: bool = True,
        threshold_init: float = CST_THRESHOLD_INIT,
        gain_init: float = MS_GAIN_INIT,
        bias_init: float = MS_BIAS_INIT,
    ):
        super().__init__()
        if kind not in NONLINEARITIES:
            raise ValueError(f"unknown non-linearity {kind!r}; valid: {', '.join(NONLINEARITIES)}")
        self.kind, self.n_complex, self.n_real = kind, n_complex, n_real
        n = n_complex + n_real
        inits = {"cst": {"threshold": threshold_init}, "ms": {"gain": gain_init, "bias": bias_init}}.get(kind, {})
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

    def _complex(self, re: Tensor, im: Tensor, channels: slice) -> SplitFeatures:
        if self.kind == "mod":
            return SplitFeatures(real=modulus(re, im))
        if self.kind == "relu":
            return SplitFeatures(re=torch.relu(re), im=torch.relu(im))
        if self.kind == "identity":
            return SplitFeatures(re=re, im=im)
        g = self._amplitude(modulus(re, im), channels)
        return SplitFeatures(re=g * re, im=g * im)

    def _real(self, x: Tensor, channels: slice) -> SplitFeatures:
        if self.kind == "mod":
            return SplitFeatures(real=x.abs())
        if self.kind == "relu":
            return SplitFeatures(real=torch.relu(x))
        if self.kind == "identity":
            return SplitFeatures(real=x)
        return SplitFeatures(real=self._amplitude(x.abs(), channels) * x)

    def forward_parts(self, parts: list[SplitFeatures]) -> list[SplitFeatures]:
        """The non-linearity of ``SplitFeatures.cat(parts)``, as parts (nothing is concatenated).

        Concatenating the returned list gives ``forward(SplitFeatures.cat(parts))``: the
        complex channels of every part first, then the real ones, each with its own
        per-channel parameters.
        """
        n_complex = sum(p.n_complex for p in parts)
        out_complex, out_real = [], []
        start_c, start_r = 0, n_complex
        for p in parts:
            if p.re is not None:
                out_complex.append(self._complex(p.re, p.im, slice(start_c, start_c + p.n_complex)))
                start_c += p.n_complex
            if p.real is not None:
                out_real.append(self._real(p.real, slice(start_r, start_r + p.n_real)))
                start_r += p.n_real
        return out_complex + out_real

    def forward(self, x: SplitFeatures) -> SplitFeatures:
        return SplitFeatures.cat(self.forward_parts([x]))
