"""The learned scattering network with phase collapses (Guth, Zarka, Mallat, ICLR 2022).

One block, for an input ``x`` with ``C`` channels (``Fw`` = fixed wavelet filtering,
``rho`` = pointwise non-linearity, ``Std`` = standardization, ``Pc`` = learned complex
1x1 convolution, ``N`` = per-pixel normalization):

* ``lscat``:      ``N(Pc(Std([x * phi, rho(x * psi_1), ..., rho(x * psi_L)])))``,
  ``C (1 + L)`` channels into ``Pc``; the low-pass stays linear.
* ``lscat_skip``: ``N(Pc(Std([Wx, rho(Wx)])))`` with ``Wx = [x * phi, x * psi_l]``,
  ``2 C (1 + L)`` channels into ``Pc``; the linear coefficients skip the non-linearity.

(The reference's ``run.py`` labels these ``skip=True``/``skip=False`` the other way
round; we name them explicitly.) The classifier is the only part with biases:
BatchNorm2d over the real and imaginary parts of the last block, flattened without
spatial pooling, then a Linear layer.

Which code computes ``Pc(Std(.))`` (the same function either way; tests compare them):

* the fused :func:`pcn.nn.fused_projection.standardized_projection` by default, in training
  and evaluation, in float32, and under autocast (``train.amp``: bf16 products, float32 statistics);
* the plain modules :class:`pcn.nn.layers.Standardization` then :class:`pcn.nn.layers.ComplexProjection`
  (the readable specification) with ``fused_projection=False``, and in a model
  passed through :func:`with_plain_projection` (the exported MLflow model: the fused function's
  hand-written backward does not survive ``torch.export``, the plain modules do).

The filtering backend of each block is chosen by :func:`pcn.nn.backends.choose_backend`
unless ``filter_backend`` names one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from pcn.names import BACKENDS, LSCAT_ARCHITECTURES, LSCAT_NONLINEARITIES
from pcn.nn.features import SplitFeatures
from pcn.nn.fused_projection import standardized_projection
from pcn.nn.geometry import output_size
from pcn.nn.layers import ComplexProjection, GlobalBatchNorm2d, Standardization, normalize_pixels
from pcn.nn.morlet import block_filter_spec, block_filter_type
from pcn.nn.nonlinearities import CST_THRESHOLD_INIT, MS_BIAS_INIT, MS_GAIN_INIT, lscat_nonlinearity
from pcn.nn.wavelet import WaveletFilter


@dataclass
class PhaseCollapseConfig:
    """Architecture of a phase-collapse network (defaults: the paper's CIFAR-10 LScat)."""

    in_channels: int = 3  # image channels
    image_size: int = 32  # square input side
    num_classes: int = 10
    widths: tuple[int, ...] = (64, 128, 256, 512, 512, 512, 512, 512)  # Pc output channels per block
    n_angles: int = 4  # L
    full_angles: bool = False  # angles over 2 pi instead of pi
    factorize_from: int = 0  # F: blocks i < F use standard filters
    arch: str = "lscat"  # one of pcn.names.LSCAT_ARCHITECTURES (module docstring)
    nonlinearity: str = "mod"  # one of pcn.names.LSCAT_NONLINEARITIES (pcn.nn.nonlinearities)
    learned: bool = True  # train cst/ms parameters (reference: yes)
    threshold_init: float = CST_THRESHOLD_INIT  # cst lambda
    gain_init: float = MS_GAIN_INIT  # ms g
    bias_init: float = MS_BIAS_INIT  # ms b
    sigma0: float = 0.8
    filter_backend: str = "auto"  # one of pcn.names.BACKENDS (same function; speed differs)
    kernel_tolerance: float = 1e-7
    normalize_eps: float = 0.0  # 0 = reference (no epsilon)
    fused_projection: bool = True  # Std folded into Pc (same function, faster): module docstring

    def validate(self) -> None:
        if self.arch not in LSCAT_ARCHITECTURES:
            raise ValueError(f"arch {self.arch!r} is not valid; valid: {', '.join(LSCAT_ARCHITECTURES)}")
        if self.nonlinearity not in LSCAT_NONLINEARITIES:
            valid = ", ".join(LSCAT_NONLINEARITIES)
            raise ValueError(f"nonlinearity {self.nonlinearity!r} is not valid; valid: {valid}")
        if self.filter_backend not in BACKENDS:
            raise ValueError(f"filter_backend {self.filter_backend!r} is not valid; valid: {', '.join(BACKENDS)}")
        if not self.widths:
            raise ValueError("widths must list at least one block width")
        size = self.image_size
        for i, _ in enumerate(self.widths):
            if size < 3:
                raise ValueError(
                    f"{len(self.widths)} blocks do not fit a {self.image_size}x{self.image_size} image: "
                    f"block {i} would get a {size}x{size} input (at least 3x3 is needed)"
                )
            size = output_size(size, self.block_spec(i).subsample)
        if size < 1:
            raise ValueError(f"{len(self.widths)} blocks reduce a {self.image_size}-pixel image to nothing")

    def block_spec(self, i: int):
        return block_filter_spec(
            block_filter_type(i, self.factorize_from), self.n_angles, self.full_angles, self.sigma0
        )

    def spatial_sizes(self) -> list[int]:
        """Input side of every block, then the final side."""
        sizes = [self.image_size]
        for i in range(len(self.widths)):
            sizes.append(output_size(sizes[-1], self.block_spec(i).subsample))
        return sizes


class PhaseCollapseBlock(nn.Module):
    """``Fw -> rho -> Std -> Pc -> N`` (see the module docstring)."""

    def __init__(self, cfg: PhaseCollapseConfig, index: int, in_channels: int, real_input: bool, size: int):
        super().__init__()
        L = cfg.n_angles
        self.arch, self.normalize_eps, self.fused = cfg.arch, cfg.normalize_eps, cfg.fused_projection
        self.wavelet = WaveletFilter(
            in_channels,
            real_input,
            (size, size),
            cfg.block_spec(index),
            L,
            cfg.full_angles,
            cfg.filter_backend,
            cfg.kernel_tolerance,
        )
        low_complex, low_real = (0, in_channels) if real_input else (in_channels, 0)
        if cfg.arch == "lscat":  # rho on the band-pass channels only
            rho_complex, rho_real = in_channels * L, 0
        else:  # rho on all of Wx
            rho_complex, rho_real = low_complex + in_channels * L, low_real
        self.rho = lscat_nonlinearity(
            cfg.nonlinearity, rho_complex, rho_real, cfg.learned, cfg.threshold_init, cfg.gain_init, cfg.bias_init
        )
        real_output = self.rho.real_output  # the modulus: complex channels come out real
        rho_out_complex = 0 if real_output else rho_complex
        rho_out_real = rho_complex + rho_real if real_output else rho_real
        if cfg.arch == "lscat":
            n_complex, n_real = low_complex + rho_out_complex, low_real + rho_out_real
        else:
            n_complex = low_complex + in_channels * L + rho_out_complex
            n_real = low_real + rho_out_real
        self.std = Standardization(n_complex, n_real)
        self.proj = ComplexProjection(n_complex, n_real, cfg.widths[index])
        self.out_size = self.wavelet.out_size[0]

    def _filtered(self, x: SplitFeatures) -> tuple[SplitFeatures, SplitFeatures, list[SplitFeatures]]:
        """``(low, band, rho parts)``: ``Fw x`` split, and rho of the band-pass (lscat) or of all of it (skip)."""
        low, band = self.wavelet(x)
        return low, band, self.rho.forward_parts([band] if self.arch == "lscat" else [low, band])

    def nonlinearity_output(self, x: SplitFeatures) -> SplitFeatures:
        """rho's output in this block: where the paper's argument lives (before Std and Pc)."""
        return SplitFeatures.cat(self._filtered(x)[2])

    def probe(self, x: SplitFeatures) -> tuple[SplitFeatures, SplitFeatures, SplitFeatures, list[SplitFeatures]]:
        """``(block output, x * psi, rho(x * psi), rho's parts)``: the output, the band-pass channels before and
        after rho, and rho's whole output as parts (what :meth:`nonlinearity_output` concatenates).

        In ``lscat_skip`` rho also acts on the low-pass ``x * phi``; that part is left out of ``rho(x * psi)``: the
        paper's argument is about the band-pass coefficients, whose class means vanish for translation-invariant
        classes.
        """
        low, band, rho = self._filtered(x)
        rho_inputs = [band] if self.arch == "lscat" else [low, band]
        band_part = sum(p.re is not None for p in rho_inputs) - 1  # rho's parts: complex inputs first, in order
        return self._project(low, band, rho), band, rho[band_part], rho

    def forward(self, x: SplitFeatures) -> SplitFeatures:
        low, band, rho = self._filtered(x)
        return self._project(low, band, rho)

    def _project(self, low: SplitFeatures, band: SplitFeatures, rho: list[SplitFeatures]) -> SplitFeatures:
        """``N(Pc(Std(.)))`` of the channels that enter the projection (module docstring)."""
        parts = [low, *rho] if self.arch == "lscat" else [low, band, *rho]
        # which path runs when: see the module docstring
        if self.fused:
            projected = standardized_projection(parts, self.std, self.proj)
        else:
            projected = self.proj(self.std(SplitFeatures.cat(parts)))
        return normalize_pixels(projected, self.normalize_eps)


class ComplexClassifier(nn.Module):
    """BatchNorm2d (affine) over ``[Re, Im]`` of the last block, flatten (no pooling), Linear with bias."""

    def __init__(self, channels: int, size: int, num_classes: int):
        super().__init__()
        self.bn = GlobalBatchNorm2d(2 * channels)
        self.fc = nn.Linear(2 * channels * size * size, num_classes)

    def forward(self, x: SplitFeatures) -> Tensor:
        return self.fc(torch.flatten(self.bn(x.stacked_real()), 1))


class PhaseCollapseNet(nn.Module):
    """Stack of :class:`PhaseCollapseBlock` followed by :class:`ComplexClassifier`."""

    def __init__(self, cfg: PhaseCollapseConfig):
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        blocks, channels, real, size = [], cfg.in_channels, True, cfg.image_size
        for i, width in enumerate(cfg.widths):
            block = PhaseCollapseBlock(cfg, i, channels, real, size)
            blocks.append(block)
            channels, real, size = width, False, block.out_size
        self.blocks = nn.ModuleList(blocks)
        self.classifier = ComplexClassifier(channels, size, cfg.num_classes)

    def forward_features(self, x: Tensor) -> list[SplitFeatures]:
        """Outputs of every block for images ``x`` (B, C, H, W)."""
        feats, z = [], SplitFeatures(real=x)
        for block in self.blocks:
            z = block(z)
            feats.append(z)
        return feats

    def nonlinearity_outputs(self, x: Tensor) -> list[SplitFeatures]:
        """rho's output in every block for images ``x`` (B, C, H, W)."""
        out, z = [], SplitFeatures(real=x)
        for block in self.blocks:
            out.append(block.nonlinearity_output(z))
            z = block(z)
        return out

    def probe_points(self, x: Tensor) -> list[dict[str, Tensor]]:
        """Per block, real views (B, C, h, w) of the band-pass coefficients before rho (``before_rho``), after
        it (``rho``) and of the block output (``block``): where :mod:`pcn.analysis.views` measures."""
        out, z = [], SplitFeatures(real=x)
        for block in self.blocks:
            z, band, rho, _ = block.probe(z)
            out.append({"before_rho": band.stacked_real(), "rho": rho.stacked_real(), "block": z.stacked_real()})
        return out

    def probe_pass(self, x: Tensor) -> tuple[list[dict[str, Tensor]], list[list[SplitFeatures]], SplitFeatures]:
        """One forward pass of images ``x`` (B, C, H, W) that gives :meth:`probe_points`, rho's output in every block
        as parts (concatenated: :meth:`nonlinearity_outputs`) and the last block's output (:attr:`classifier`
        gives the logits of :meth:`forward` from it)."""
        points, rhos, z = [], [], SplitFeatures(real=x)
        for block in self.blocks:
            z, band, rho, parts = block.probe(z)
            points.append({"before_rho": band.stacked_real(), "rho": rho.stacked_real(), "block": z.stacked_real()})
            rhos.append(parts)
        return points, rhos, z

    def layer_features(self, x: Tensor) -> list[Tensor]:
        """Real views (B, 2K, h, w) of every block output, for separation measurements."""
        return [f.stacked_real() for f in self.forward_features(x)]

    def forward(self, x: Tensor) -> Tensor:
        z = SplitFeatures(real=x)
        for block in self.blocks:
            z = block(z)
        return self.classifier(z)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of real parameters (a complex weight counts twice)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def with_plain_projection(model: nn.Module) -> nn.Module:
    """Switch every :class:`PhaseCollapseBlock` of ``model`` to the plain ``Std -> Pc`` modules; returns it.

    The same function as the fused path (tested); used before ``torch.export``, whose graph of the
    fused function cannot run with gradients enabled.
    """
    for module in model.modules():
        if isinstance(module, PhaseCollapseBlock):
            module.fused = False
    return model
