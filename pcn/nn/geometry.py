"""Geometry of a block's wavelet filtering: padding, subsampling, crop, output sizes.

Geometry (paper-spec section 1.3), for an input of size ``M x N``:

1. reflect-pad to ``Mp = ((M + 2) // 2 + 1) * 2`` (``(Mp - M) // 2`` before, the rest after);
2. circular convolution with the periodized filters on the ``Mp x Np`` grid;
3. optional decimation by 2 at even positions;
4. crop: rows/columns ``[2, Mp - 2)``, at every position without subsampling, at even
   positions with subsampling (the reference's crop ``[1:-1]`` of the folded grid).

Every filtering backend (:mod:`pcn.nn.backends`) follows it; :func:`pcn.nn.spectral.fft_filter`
computes it by FFT, the reference code's way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from pcn.nn.morlet import padded_size


def output_size(size: int, subsample: bool) -> int:
    """Spatial output length of a block for an input length ``size``."""
    mp = padded_size(size)
    return mp // 2 - 2 if subsample else mp - 4


@dataclass(frozen=True)
class FilterGeometry:
    """Shape bookkeeping of one block's filtering: ``C`` input channels, ``L + 1`` filters."""

    in_channels: int
    real_input: bool  # block 0: real images (the low-pass output then stays real)
    size: tuple[int, int]  # input (M, N)
    n_angles: int  # L
    subsample: bool

    @property
    def n_filters(self) -> int:
        return self.n_angles + 1

    @property
    def padded(self) -> tuple[int, int]:
        return padded_size(self.size[0]), padded_size(self.size[1])

    @property
    def pad(self) -> tuple[int, int, int, int]:
        """Reflection padding (top, bottom, left, right)."""
        (M, N), (Mp, Np) = self.size, self.padded
        return (Mp - M) // 2, (Mp - M + 1) // 2, (Np - N) // 2, (Np - N + 1) // 2

    @property
    def out_size(self) -> tuple[int, int]:
        return output_size(self.size[0], self.subsample), output_size(self.size[1], self.subsample)

    @property
    def step(self) -> int:
        return 2 if self.subsample else 1


def reflect_pad(x: Tensor, pad: tuple[int, int, int, int]) -> Tensor:
    """Reflection padding of a real or complex (B, C, M, N) tensor; ``pad`` is (top, bottom, left, right)."""
    torch_pad = (pad[2], pad[3], pad[0], pad[1])
    if x.is_complex():
        return torch.complex(F.pad(x.real, torch_pad, mode="reflect"), F.pad(x.imag, torch_pad, mode="reflect"))
    return F.pad(x, torch_pad, mode="reflect")


def smooth_size(n: int) -> int:
    """Smallest even integer ``>= n`` without prime factors above 7 (a fast FFT length)."""
    m = n + (n % 2)
    while True:
        r = m
        for p in (2, 3, 5, 7):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 2
