"""Geometry of a block's wavelet filtering and the reference's FFT formulation of it.

Geometry (paper-spec section 1.3), for an input of size ``M x N``:

1. reflect-pad to ``Mp = ((M + 2) // 2 + 1) * 2`` (``(Mp - M) // 2`` before, the rest after);
2. circular convolution with the periodized filters on the ``Mp x Np`` grid;
3. optional decimation by 2 at even positions;
4. crop: rows/columns ``[2, Mp - 2)``, at every position without subsampling, at even
   positions with subsampling (the reference's crop ``[1:-1]`` of the folded grid).

:func:`fft_filter` computes exactly this by FFT (the reference code's way);
:mod:`pcn.nn.backends` holds faster equivalents.
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
    real_input: bool          # block 0: real images (the low-pass output then stays real)
    size: tuple[int, int]     # input (M, N)
    n_angles: int             # L
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


def fft_filter(x: Tensor, fourier: Tensor, pad: tuple[int, int, int, int] | None, subsample: bool) -> Tensor:
    """Reference FFT-domain filtering: pad, FFT, multiply, fold, inverse FFT, crop.

    Parameters
    ----------
    x : Tensor, (B, C, M, N), real or complex
    fourier : Tensor, (F, Mp, Np), real spectra of the filters
    pad : (top, bottom, left, right) reflection padding, or None if ``x`` is already padded
    subsample : bool
        Fold the spectrum onto the half grid,
        :math:`Y[a, b] = \\frac14 \\sum_{i, j \\in \\{0, 1\\}} Y[a + i M_p/2, b + j N_p/2]`,
        which equals decimation ``y[2u]`` of the full-resolution convolution.

    Returns
    -------
    Tensor, complex, (B, C, F, H', W')
    """
    spectrum = torch.fft.fft2(x if pad is None else reflect_pad(x, pad))  # (B, C, Mp, Np)
    product = SpectralProduct.apply(spectrum, fourier, subsample)         # (B, C, F, Mp or Mp/2, ...)
    if subsample:
        return torch.fft.ifft2(product)[..., 1:-1, 1:-1]
    return torch.fft.ifft2(product)[..., 2:-2, 2:-2]


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


def _aliased_blocks(fourier: Tensor, subsample: bool, dtype: torch.dtype) -> list[tuple[slice, slice, Tensor]]:
    """``(rows, cols, H_q)`` for each aliased quadrant ``q`` of the (F, Mp, Np) spectra.

    Without subsampling there is one block, the whole grid, with ``H_q = H``. With it there
    are four, ``(i Mp/2 .. (i+1) Mp/2, j Np/2 .. (j+1) Np/2)``, with ``H_q = H / 4`` on them.
    ``H_q`` is returned in the complex ``dtype`` of the spectrum: a complex-by-real product
    goes through a slow type-promotion path on CPU.
    """
    if not subsample:
        full = slice(None)
        return [(full, full, fourier.to(dtype))]
    _, Mp, Np = fourier.shape
    m, n = Mp // 2, Np // 2
    return [(slice(i * m, (i + 1) * m), slice(j * n, (j + 1) * n),
             (0.25 * fourier[:, i * m:(i + 1) * m, j * n:(j + 1) * n]).to(dtype))
            for i in (0, 1) for j in (0, 1)]


class SpectralProduct(torch.autograd.Function):
    """Filter spectra times an image spectrum, folded onto the half grid when subsampling.

    .. math::

        Y_{bcf}[a, b'] = \\sum_{q} X_{bc}[a + i_q M_p/2,\\, b' + j_q N_p/2]\\;
        H_q^f[a, b'], \\qquad
        \\frac{\\partial \\mathcal{L}}{\\partial X_{bc}}\\Big|_q = \\sum_f \\overline{H_q^f}\\,
        \\frac{\\partial \\mathcal{L}}{\\partial Y_{bcf}}

    This equals the reference's fold of the full product ``X[:, :, None] * H`` without
    materializing that (B, C, F, Mp, Np) tensor, and its backward is a sum over ``F`` per
    quadrant instead of autograd's broadcast-reduce through the fold (measured speed-ups in
    bench/RESULTS.md). ``H`` may be real (the reference's spectra) or complex (``fft_smooth``).
    """

    @staticmethod
    def forward(ctx, spectrum: Tensor, fourier: Tensor, subsample: bool) -> Tensor:
        # spectrum (B, C, Mp, Np) complex, fourier (F, Mp, Np) -> (B, C, F, Mp', Np') complex
        (rows, cols, h), *others = _aliased_blocks(fourier, subsample, spectrum.dtype)
        out = spectrum[:, :, None, rows, cols] * h                        # (B, C, F, Mp', Np')
        for rows, cols, h in others:                                      # in place: no temporaries
            out.addcmul_(spectrum[:, :, None, rows, cols], h)
        ctx.save_for_backward(fourier)
        ctx.subsample = subsample
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        (fourier,) = ctx.saved_tensors
        B, C, F = grad.shape[:3]
        Mp, Np = fourier.shape[1:]
        d_spectrum = grad.new_empty(B, C, Mp, Np)
        for rows, cols, h in _aliased_blocks(fourier, ctx.subsample, grad.dtype):
            h = h.conj().resolve_conj()
            acc = d_spectrum[:, :, rows, cols]                            # (B, C, Mp', Np') view
            torch.mul(grad[:, :, 0], h[0], out=acc)
            for f in range(1, F):
                acc.addcmul_(grad[:, :, f], h[f])
        return d_spectrum, None, None
