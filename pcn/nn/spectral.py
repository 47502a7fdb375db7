"""The reference's FFT formulation of a block's filtering, and the spectral product the FFT backends share.

:func:`fft_filter` pads, transforms, multiplies by the filter spectra (folding them onto the
half grid when subsampling: :class:`SpectralProduct`), transforms back and crops, exactly as
the geometry of :mod:`pcn.nn.geometry` says.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pcn.nn.geometry import reflect_pad


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
    product = SpectralProduct.apply(spectrum, fourier, subsample)  # (B, C, F, Mp or Mp/2, ...)
    if subsample:
        return torch.fft.ifft2(product)[..., 1:-1, 1:-1]
    return torch.fft.ifft2(product)[..., 2:-2, 2:-2]


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
    return [
        (
            slice(i * m, (i + 1) * m),
            slice(j * n, (j + 1) * n),
            (0.25 * fourier[:, i * m : (i + 1) * m, j * n : (j + 1) * n]).to(dtype),
        )
        for i in (0, 1)
        for j in (0, 1)
    ]


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
        out = spectrum[:, :, None, rows, cols] * h  # (B, C, F, Mp', Np')
        for rows, cols, h in others:  # in place: no temporaries
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
            acc = d_spectrum[:, :, rows, cols]  # (B, C, Mp', Np') view
            torch.mul(grad[:, :, 0], h[0], out=acc)
            for f in range(1, F):
                acc.addcmul_(grad[:, :, f], h[f])
        return d_spectrum, None, None
