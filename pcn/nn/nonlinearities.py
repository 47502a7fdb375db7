"""Pointwise non-linearities: of the LScat blocks on complex (and real) channels, of the bias-free ResNet-18 on
real channels.

Each non-linearity is one class below, which holds its formula, and one line in its registry
(:data:`LSCAT_REGISTRY`, :data:`RESNET_REGISTRY`: name -> class); the registries' names are those of
:mod:`pcn.names` (checked at import), which also gives each one's family (phase collapse, phase
preserving, other). :func:`lscat_nonlinearity` and :func:`resnet_nonlinearity` build one by name.

**LScat blocks.** The phase collapse is the complex modulus :math:`\\rho(z) = |z|`. The ablations of
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

**Bias-free ResNet-18** (:mod:`pcn.nn.resnet`), on real channels ``x``:

============  =======================================================  ==============
name          formula                                                  parameters
============  =======================================================  ==============
``relu``      :math:`\\max(x, 0)`                                        none
``abs``       :math:`|x|` (sign collapse)                               none
``thresh``    :math:`\\mathrm{ReLU}(x - b) - \\mathrm{ReLU}(-x - b)`      ``b > 0`` per channel
``absdead``   :math:`\\mathrm{ReLU}(x - b) + \\mathrm{ReLU}(-x - b)`      ``b > 0`` per channel
``tanh``      :math:`\\tanh x`                                           none
``powfixed``  :math:`x / (1 + |x|)`                                     none
``identity``  :math:`x` (no non-linearity: a control)                   none
============  =======================================================  ==============

``thresh`` (soft-thresholding: the odd part of a biased ReLU, which keeps the sign) and
``absdead`` (an absolute value with a dead zone: its even part, which collapses the sign)
are the poster's decomposition of ``ReLU(x - b)``; both are in the authors' code. The
reference never trains ``b`` (a quoting bug freezes it at its initial 1.0): ``learned=False``
reproduces that. With ``learned=True`` (our default) ``b = softplus(beta)`` with a free
``beta``, so the threshold stays positive (a negative one would turn soft-thresholding into
its opposite) and its gradient never vanishes; ``threshold_init`` is its initial value.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pcn.names import LSCAT_NONLINEARITIES, RESNET_NONLINEARITIES
from pcn.nn.features import SplitFeatures
from pcn.nn.modulus import modulus

PHASE_EPS = 1e-6
#: The reference's initial values of the learned parameters: cst ``lambda``, ms ``g`` and ``b``.
CST_THRESHOLD_INIT, MS_GAIN_INIT, MS_BIAS_INIT = 0.1, 1.0, 0.0


def inverse_softplus(value: float) -> float:
    """``beta`` with ``softplus(beta) = value`` (``value > 0``)."""
    return value + math.log(-math.expm1(-value))


# ----------------------------------------------------------------------------- LScat blocks


class PointwiseNonlinearity(nn.Module):
    """An LScat non-linearity on a :class:`SplitFeatures`: the base class of those of :data:`LSCAT_REGISTRY`.

    A subclass gives the formula on complex channels (:meth:`complex_part`) and on real ones
    (:meth:`real_part`), and names its per-channel parameters in :attr:`parameter_names`.

    Parameters
    ----------
    n_complex, n_real : int
        Numbers of complex and real input channels (learned parameters are per channel).
    learned : bool
        Whether ``cst``/``ms`` parameters are trained (the reference trains them).
    threshold_init, gain_init, bias_init : float
        Initial values of ``lambda`` (cst), ``g`` and ``b`` (ms); defaults: the reference's.
    """

    #: The per-channel parameters (buffers when not learned), in the order they are registered.
    parameter_names: tuple[str, ...] = ()
    #: Whether a complex channel comes out real (the modulus) instead of complex.
    real_output = False
    #: The name of the non-linearity: its key in :data:`LSCAT_REGISTRY` (set from there).
    kind: str

    def __init__(
        self,
        n_complex: int,
        n_real: int,
        learned: bool = True,
        threshold_init: float = CST_THRESHOLD_INIT,
        gain_init: float = MS_GAIN_INIT,
        bias_init: float = MS_BIAS_INIT,
    ):
        super().__init__()
        self.n_complex, self.n_real = n_complex, n_real
        inits = {"threshold": threshold_init, "gain": gain_init, "bias": bias_init}
        for name in self.parameter_names:
            tensor = torch.full((n_complex + n_real,), float(inits[name]))
            if learned:
                self.register_parameter(name, nn.Parameter(tensor))
            else:
                self.register_buffer(name, tensor)

    def extra_repr(self) -> str:
        return f"kind={self.kind}, n_complex={self.n_complex}, n_real={self.n_real}"

    def per_channel(self, name: str, channels: slice) -> Tensor:
        """Parameter ``name`` of ``channels``, shaped (1, C, 1, 1)."""
        return getattr(self, name)[channels].view(1, -1, 1, 1)

    def complex_part(self, re: Tensor, im: Tensor, channels: slice) -> SplitFeatures:
        """rho of complex channels ``re + i im`` (B, C, H, W), the ``channels`` of the parameters."""
        raise NotImplementedError

    def real_part(self, x: Tensor, channels: slice) -> SplitFeatures:
        """rho of real channels ``x`` (B, C, H, W), the ``channels`` of the parameters."""
        raise NotImplementedError

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
                out_complex.append(self.complex_part(p.re, p.im, slice(start_c, start_c + p.n_complex)))
                start_c += p.n_complex
            if p.real is not None:
                out_real.append(self.real_part(p.real, slice(start_r, start_r + p.n_real)))
                start_r += p.n_real
        return out_complex + out_real

    def forward(self, x: SplitFeatures) -> SplitFeatures:
        return SplitFeatures.cat(self.forward_parts([x]))


class Modulus(PointwiseNonlinearity):
    """``mod``: :math:`|z|`, a real channel (:math:`|x|` on a real channel): the phase collapse."""

    real_output = True

    def complex_part(self, re: Tensor, im: Tensor, channels: slice) -> SplitFeatures:
        return SplitFeatures(real=modulus(re, im))

    def real_part(self, x: Tensor, channels: slice) -> SplitFeatures:
        return SplitFeatures(real=x.abs())


class PartsReLU(PointwiseNonlinearity):
    """``relu``: :math:`\\mathrm{ReLU}(\\mathrm{Re} z) + i\\, \\mathrm{ReLU}(\\mathrm{Im} z)` (a real channel: ReLU)."""

    def complex_part(self, re: Tensor, im: Tensor, channels: slice) -> SplitFeatures:
        return SplitFeatures(re=torch.relu(re), im=torch.relu(im))

    def real_part(self, x: Tensor, channels: slice) -> SplitFeatures:
        return SplitFeatures(real=torch.relu(x))


class ComplexIdentity(PointwiseNonlinearity):
    """``identity``: :math:`z` (no non-linearity: a control)."""

    def complex_part(self, re: Tensor, im: Tensor, channels: slice) -> SplitFeatures:
        return SplitFeatures(re=re, im=im)

    def real_part(self, x: Tensor, channels: slice) -> SplitFeatures:
        return SplitFeatures(real=x)


class PhasePreserving(PointwiseNonlinearity):
    """:math:`\\rho(z) = f(|z|)\\, z / (|z| + \\epsilon)`: a subclass gives the factor that multiplies ``z``,
    :math:`f(|z|) / (|z| + \\epsilon)` (:meth:`factor`)."""

    def factor(self, amplitude: Tensor, safe: Tensor, channels: slice) -> Tensor:
        """:math:`f(|z|) / (|z| + \\epsilon)` from ``amplitude`` :math:`= |z|` and ``safe`` :math:`= |z| + \\epsilon`
        (both (B, C, H, W))."""
        raise NotImplementedError

    def _factor(self, amplitude: Tensor, channels: slice) -> Tensor:
        return self.factor(amplitude, amplitude + PHASE_EPS, channels)

    def complex_part(self, re: Tensor, im: Tensor, channels: slice) -> SplitFeatures:
        g = self._factor(modulus(re, im), channels)
        return SplitFeatures(re=g * re, im=g * im)

    def real_part(self, x: Tensor, channels: slice) -> SplitFeatures:
        return SplitFeatures(real=self._factor(x.abs(), channels) * x)


class SoftThreshold(PhasePreserving):
    """``cst``: :math:`\\mathrm{ReLU}(1 - \\lambda / (|z| + \\epsilon))\\, z`, :math:`\\lambda` per channel."""

    parameter_names = ("threshold",)

    def factor(self, amplitude: Tensor, safe: Tensor, channels: slice) -> Tensor:
        return torch.relu(1 - self.per_channel("threshold", channels) / safe)


class ModulusSigmoid(PhasePreserving):
    """``ms``: :math:`\\sigma(g |z| + b)\\, z / (|z| + \\epsilon)`, learned ``g`` and ``b`` per channel."""

    parameter_names = ("gain", "bias")

    def factor(self, amplitude: Tensor, safe: Tensor, channels: slice) -> Tensor:
        return torch.sigmoid(self.per_channel("gain", channels) * amplitude + self.per_channel("bias", channels)) / safe


class ModuleCollapse(PhasePreserving):
    """``mc``: :math:`z / (|z| + \\epsilon)`, the phase alone."""

    def factor(self, amplitude: Tensor, safe: Tensor, channels: slice) -> Tensor:
        return 1 / safe


class AmplitudeTanh(PhasePreserving):
    """``tanh``: :math:`\\tanh(|z|)\\, z / (|z| + \\epsilon)`."""

    def factor(self, amplitude: Tensor, safe: Tensor, channels: slice) -> Tensor:
        return torch.tanh(amplitude) / safe


# ----------------------------------------------------------------------------- bias-free ResNet-18


class ResNetNonlinearity(nn.Module):
    """A non-linearity of the bias-free ResNet-18 on real channels (B, C, H, W): the base class of those of
    :data:`RESNET_REGISTRY`, whose ``forward`` is the formula.

    Parameters
    ----------
    channels : int
        Number of channels (a threshold is per channel).
    learned : bool
        Whether a threshold ``b`` is trained (as ``softplus(beta)``) or frozen (module docstring).
    threshold_init : float
        The initial threshold (``thresh``, ``absdead``).
    """

    #: The name of the non-linearity: its key in :data:`RESNET_REGISTRY` (set from there).
    kind: str

    def __init__(self, channels: int, learned: bool, threshold_init: float):
        super().__init__()
        self.learned = learned

    def extra_repr(self) -> str:
        return self.kind


class RealReLU(ResNetNonlinearity):
    """``relu``: :math:`\\max(x, 0)`."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(x)


class Absolute(ResNetNonlinearity):
    """``abs``: :math:`|x|`, the sign collapse."""

    def forward(self, x: Tensor) -> Tensor:
        return x.abs()


class Thresholded(ResNetNonlinearity):
    """:math:`\\mathrm{ReLU}(x - b) \\pm \\mathrm{ReLU}(-x - b)` (:attr:`odd_or_even`: -1 or +1) with a per-channel
    threshold ``b`` > 0: ``softplus(beta)`` with a learned ``beta``, or a frozen buffer (module docstring)."""

    odd_or_even: float

    def __init__(self, channels: int, learned: bool, threshold_init: float):
        super().__init__(channels, learned, threshold_init)
        if learned:
            if threshold_init <= 0:
                raise ValueError(
                    f"a learned {self.kind} threshold is softplus(beta) > 0: its initial value must be "
                    f"> 0, got {threshold_init}"
                )
            self.beta = nn.Parameter(torch.full((channels,), inverse_softplus(float(threshold_init))))
        else:
            self.register_buffer("frozen_threshold", torch.full((channels,), float(threshold_init)))

    @property
    def threshold(self) -> Tensor:
        """The per-channel threshold ``b`` (channels,): ``softplus(beta)``, or the frozen value."""
        return F.softplus(self.beta) if self.learned else self.frozen_threshold

    def forward(self, x: Tensor) -> Tensor:
        b = self.threshold.view(1, -1, 1, 1)
        return torch.relu(x - b) + self.odd_or_even * torch.relu(-x - b)


class RealSoftThreshold(Thresholded):
    """``thresh``: :math:`\\mathrm{ReLU}(x - b) - \\mathrm{ReLU}(-x - b)`, soft-thresholding (keeps the sign)."""

    odd_or_even = -1.0


class DeadZoneAbsolute(Thresholded):
    """``absdead``: :math:`\\mathrm{ReLU}(x - b) + \\mathrm{ReLU}(-x - b) = \\mathrm{ReLU}(|x| - b)`, sign collapse."""

    odd_or_even = 1.0


class RealTanh(ResNetNonlinearity):
    """``tanh``: :math:`\\tanh x`."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(x)


class PowFixed(ResNetNonlinearity):
    """``powfixed``: :math:`x / (1 + |x|)`."""

    def forward(self, x: Tensor) -> Tensor:
        return x / (1 + x.abs())


class RealIdentity(ResNetNonlinearity):
    """``identity``: :math:`x` (no non-linearity: a control)."""

    def forward(self, x: Tensor) -> Tensor:
        return x


# ----------------------------------------------------------------------------- registries

#: The LScat non-linearities by name (:data:`pcn.names.LSCAT_NONLINEARITIES`).
LSCAT_REGISTRY: dict[str, type[PointwiseNonlinearity]] = {
    "mod": Modulus,
    "cst": SoftThreshold,
    "ms": ModulusSigmoid,
    "mc": ModuleCollapse,
    "tanh": AmplitudeTanh,
    "relu": PartsReLU,
    "identity": ComplexIdentity,
}
#: The bias-free ResNet-18 non-linearities by name (:data:`pcn.names.RESNET_NONLINEARITIES`).
RESNET_REGISTRY: dict[str, type[ResNetNonlinearity]] = {
    "relu": RealReLU,
    "abs": Absolute,
    "thresh": RealSoftThreshold,
    "absdead": DeadZoneAbsolute,
    "tanh": RealTanh,
    "powfixed": PowFixed,
    "identity": RealIdentity,
}
for _registry, _names in ((LSCAT_REGISTRY, LSCAT_NONLINEARITIES), (RESNET_REGISTRY, RESNET_NONLINEARITIES)):
    if set(_registry) != set(_names):
        raise ImportError(f"pcn.nn.nonlinearities registers {sorted(_registry)}, but pcn.names lists {sorted(_names)}")
    for _name, _cls in _registry.items():
        _cls.kind = _name


def lscat_nonlinearity(kind: str, *args, **kwargs) -> PointwiseNonlinearity:
    """The LScat non-linearity ``kind`` (:data:`LSCAT_REGISTRY`), built with the arguments of
    :class:`PointwiseNonlinearity` (``n_complex, n_real, learned, threshold_init, gain_init, bias_init``)."""
    if kind not in LSCAT_REGISTRY:
        raise ValueError(f"unknown non-linearity {kind!r}; valid: {', '.join(LSCAT_NONLINEARITIES)}")
    return LSCAT_REGISTRY[kind](*args, **kwargs)


def resnet_nonlinearity(kind: str, *args, **kwargs) -> ResNetNonlinearity:
    """The bias-free ResNet-18 non-linearity ``kind`` (:data:`RESNET_REGISTRY`), built with the arguments of
    :class:`ResNetNonlinearity` (``channels, learned, threshold_init``)."""
    if kind not in RESNET_REGISTRY:
        raise ValueError(f"unknown ResNet non-linearity {kind!r}; valid: {', '.join(RESNET_NONLINEARITIES)}")
    return RESNET_REGISTRY[kind](*args, **kwargs)
