"""The reference code's formulation of the same network, for equivalence tests and benchmarks.

:class:`ReferenceFFTNet` shares the parameters of a :class:`pcn.nn.phase_collapse.PhaseCollapseNet`
and computes its training-mode forward pass the way the authors' code does:

* native ``complex64`` tensors everywhere (real channels carried with a zero
  imaginary part);
* filtering by FFT (pad, FFT, multiply, fold the spectrum, inverse FFT, crop);
* complex batch standardization over all concatenated channels;
* ``Pc`` as one real ``conv2d`` of ``[Re x; Im x]`` with the block weight
  ``[[A, -B], [B, A]]`` (4 real multiplications per complex one, also for real channels);
* the per-pixel normalization.

It is not meant for training; it exists so that our faster implementation can be
checked against, and timed against, the straightforward formulation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pcn.nn.features import SplitFeatures
from pcn.nn.geometry import reflect_pad
from pcn.nn.layers import STD_EPS
from pcn.nn.phase_collapse import PhaseCollapseBlock, PhaseCollapseNet


def reference_fft_filter(x: Tensor, fourier: Tensor, pad: tuple[int, int, int, int], subsample: bool) -> Tensor:
    """Pad, FFT, multiply, fold (mean over the 2 x 2 aliased copies), inverse FFT, crop: (B, C, F, H', W')."""
    product = torch.fft.fft2(reflect_pad(x, pad)).unsqueeze(2) * fourier  # (B, C, F, Mp, Np)
    if subsample:
        B, C, Fn, Mp, Np = product.shape
        product = product.view(B, C, Fn, 2, Mp // 2, 2, Np // 2).mean(dim=(3, 5))
        return torch.fft.ifft2(product)[..., 1:-1, 1:-1]
    return torch.fft.ifft2(product)[..., 2:-2, 2:-2]


def complex_standardize(z: Tensor) -> Tensor:
    """Batch standardization of complex (B, C, H, W): ``(z - E z) / sqrt(E|z - E z|^2 + eps)``."""
    mean = z.mean(dim=(0, 2, 3), keepdim=True)
    centred = z - mean
    var = (centred.real**2 + centred.imag**2).mean(dim=(0, 2, 3), keepdim=True)
    return centred / torch.sqrt(var + STD_EPS)


def block_real_conv(z: Tensor, weight: Tensor) -> Tensor:
    """Complex 1x1 convolution via one real conv2d with the (2K, 2C) block matrix ``[[A, -B], [B, A]]``."""
    a, b = weight  # (K, C) each
    block = torch.cat([torch.cat([a, -b], 1), torch.cat([b, a], 1)], 0)  # (2K, 2C)
    y = F.conv2d(torch.cat([z.real, z.imag], 1), block[:, :, None, None])
    if y.dtype == torch.bfloat16:  # under bf16 autocast: torch.complex takes float16/32/64 only
        y = y.float()
    k = weight.shape[1]
    return torch.complex(y[:, :k], y[:, k:])


class ReferenceFFTBlock(nn.Module):
    def __init__(self, block: PhaseCollapseBlock):
        super().__init__()
        self.block = block

    def forward(self, x: Tensor) -> Tensor:
        blk = self.block
        w = blk.wavelet
        z = reference_fft_filter(x, w.fourier, w.geometry.pad, w.geometry.subsample)  # (B, C, L+1, H, W) complex
        B, C, _, H, W = z.shape
        low = z[:, :, 0]
        band = z[:, :, 1:].reshape(B, C * w.geometry.n_angles, H, W)
        low_split = SplitFeatures(real=low.real) if w.geometry.real_input else SplitFeatures(re=low.real, im=low.imag)
        band_split = SplitFeatures(re=band.real, im=band.imag)
        if blk.arch == "lscat":
            feats = SplitFeatures.cat([low_split, blk.rho(band_split)])
        else:
            linear = SplitFeatures.cat([low_split, band_split])
            feats = SplitFeatures.cat([linear, blk.rho(linear)])
        z = complex_standardize(feats.to_complex())  # (B, Cin, H, W) complex
        z = block_real_conv(z, blk.proj.weight)  # (B, K, H, W) complex
        norm = torch.sqrt((z.real**2 + z.imag**2).sum(1, keepdim=True))
        return z / norm


class ReferenceFFTNet(nn.Module):
    """Training-mode forward of ``model`` in the reference formulation (shares its parameters)."""

    def __init__(self, model: PhaseCollapseNet):
        super().__init__()
        self.model = model
        self.ref_blocks = [ReferenceFFTBlock(b) for b in model.blocks]

    def forward(self, x: Tensor) -> Tensor:
        z = x
        for block in self.ref_blocks:
            z = block(z)
        clf = self.model.classifier
        return clf.fc(torch.flatten(clf.bn(torch.cat([z.real, z.imag], 1)), 1))
