"""Four exact ways to compute a block's wavelet filtering, behind one small interface.

Every backend is an ``nn.Module`` built from a :class:`~pcn.nn.geometry.FilterGeometry`
and the block's real filter spectra ``fourier`` (F, Mp, Np); it registers only the buffers
it needs (derived from the filters, so never checkpointed) and maps the block input
(a :class:`~pcn.nn.features.SplitFeatures`, real for block 0, complex otherwise) to the real
and imaginary parts of every filter output, two tensors of shape (B, C, F, H', W'). All four
compute the reference's function (:func:`~pcn.nn.spectral.fft_filter`); tests check each
against an independent NumPy computation.

==============  ==========================================================================
``fft``         the reference formulation: reflect-pad, FFT, multiply, fold, inverse FFT, crop
``fft_smooth``  the truncated spatial kernels applied by FFT on a zero-padded grid whose sides
                have no prime factor above 7 (the reference's ImageNet grids 116 = 4 x 29 and
                228 = 12 x 19 make FFTs slow); exact up to the kernel truncation tolerance
``spatial``     one grouped convolution with the truncated kernels on the circularly padded
                map, evaluated only at the kept outputs; exact up to the truncation tolerance
``matrix``      the whole filtering (padding, filters, crop, subsampling) as one dense
                (M N) x (F H' W') complex matrix, built by ``fft`` on basis images in float64;
                for small maps, where it replaces many tiny FFTs by one matrix product
==============  ==========================================================================

``auto`` applies :func:`choose_backend` per block; the rule is stated there, once.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pcn.names import BACKENDS
from pcn.nn.features import SplitFeatures
from pcn.nn.geometry import FilterGeometry, smooth_size
from pcn.nn.morlet import spatial_kernels
from pcn.nn.spectral import SpectralProduct, fft_filter

AUTO_MAX_MATRIX_PIXELS = 64  # input maps up to 8 x 8
AUTO_MAX_SPATIAL_TAPS = 49  # kernels up to 7 x 7
AUTO_MAX_SMOOTH_AREA_RATIO = 1.3  # measured break-even of a larger but 7-smooth FFT grid


class TruncatedKernels:
    """The filters as spatial kernels truncated below ``kernel_tolerance`` (relative), and the input
    window that a "valid" correlation with them needs to produce exactly the kept outputs.

    ``window`` is the window's size, taken from the reflect- then circularly-padded input
    starting at padded index 2 (the first kept output); ``lead`` adds samples before it so
    that, with subsampling, the kept outputs fall on even indices of a linear convolution
    (an even kernel side shifts them by one).
    """

    def __init__(self, geometry: FilterGeometry, fourier: np.ndarray, kernel_tolerance: float):
        kernels, a0, b0 = spatial_kernels(fourier, kernel_tolerance)  # (F, ka, kb) complex128
        self.kernels = kernels
        ka, kb = self.size = kernels.shape[1:]
        self.circular = (kb - 1 - b0, b0, ka - 1 - a0, a0)  # F.pad order (left, right, top, bottom)
        crop = 4 if geometry.subsample else 3
        self.window = tuple(p - crop - 2 + k for p, k in zip(geometry.padded, (ka, kb)))
        self.lead = tuple((k - 1) % 2 if geometry.subsample else 0 for k in (ka, kb))

    @property
    def taps(self) -> int:
        return self.size[0] * self.size[1]

    def smooth_grid(self) -> tuple[int, int]:
        """FFT grid of ``fft_smooth``: the window (with its lead) rounded up to 7-smooth sides."""
        return tuple(smooth_size(w + e) for w, e in zip(self.window, self.lead))


def padded_window(
    x: SplitFeatures, geometry: FilterGeometry, kernels: TruncatedKernels, lead: tuple[int, int] = (0, 0)
) -> Tensor:
    """Reflect- then circularly-padded input, cut to what the kept outputs need.

    Returns (B, C, Wa, Wb) for a real input, (B, C, 2, Wa, Wb) (real, imaginary) for a complex
    one, with ``lead`` extra samples before the first needed one.
    """
    C = geometry.in_channels
    if geometry.real_input:
        stacked = x.real  # (B, C, M, N)
    else:
        B, _, M, N = x.re.shape
        stacked = torch.stack([x.re, x.im], dim=2).reshape(B, 2 * C, M, N)
    top, bottom, left, right = geometry.pad
    padded = F.pad(stacked, (left, right, top, bottom), mode="reflect")  # (B, C', Mp, Np)
    padded = F.pad(padded, kernels.circular, mode="circular")  # (B, C', Mp+ka-1, Np+kb-1)
    (la, lb), (wa, wb) = lead, kernels.window
    window = padded[:, :, 2 - la : 2 + wa, 2 - lb : 2 + wb]
    if geometry.real_input:
        return window
    return window.reshape(window.shape[0], C, 2, *window.shape[-2:])


class FilterBackend(nn.Module):
    """Interface: ``forward(x) -> (re, im)``, each (B, C, F, H', W')."""

    name = ""

    def __init__(self, geometry: FilterGeometry):
        super().__init__()
        self.geometry = geometry

    def extra_repr(self) -> str:
        return self.name


class FFTBackend(FilterBackend):
    name = "fft"

    def __init__(self, geometry: FilterGeometry, fourier: np.ndarray, kernel_tolerance: float):
        super().__init__(geometry)
        self.register_buffer("spectra", torch.tensor(fourier, dtype=torch.float32), persistent=False)

    def forward(self, x: SplitFeatures) -> tuple[Tensor, Tensor]:
        g = self.geometry
        if g.real_input:
            z = x.real
        else:
            B, C, M, N = x.re.shape
            top, bottom, left, right = g.pad
            re, im = (
                F.pad(torch.stack([x.re, x.im], 1).reshape(B, 2 * C, M, N), (left, right, top, bottom), mode="reflect")
                .view(B, 2, C, *g.padded)
                .unbind(1)
            )
            z = torch.complex(re, im)
        z = fft_filter(z, self.spectra, g.pad if g.real_input else None, g.subsample)
        return torch.view_as_real(z).unbind(-1)


class SmoothFFTBackend(FilterBackend):
    """Linear convolution of the window with the truncated kernels, by FFT on a 7-smooth grid.

    With the window zero-padded to ``Q >= W`` samples, the circular convolution of length
    ``Q`` equals the linear one at indices ``k - 1 .. W - 1`` (the outputs a "valid"
    correlation keeps); subsampling folds the spectrum, which keeps the even indices, and
    ``k - 1 + lead`` is even.
    """

    name = "fft_smooth"

    def __init__(self, geometry: FilterGeometry, fourier: np.ndarray, kernel_tolerance: float):
        super().__init__(geometry)
        self.kernels = TruncatedKernels(geometry, fourier, kernel_tolerance)
        self.grid = self.kernels.smooth_grid()
        ka, kb = self.kernels.size
        padded = np.zeros((len(fourier), *self.grid), dtype=np.complex128)
        padded[:, :ka, :kb] = self.kernels.kernels
        self.register_buffer(
            "spectra", torch.tensor(np.fft.fft2(padded), dtype=torch.complex64), persistent=False
        )  # (F, Qa, Qb)

    def forward(self, x: SplitFeatures) -> tuple[Tensor, Tensor]:
        g, k = self.geometry, self.kernels
        window = padded_window(x, g, k, k.lead)
        z = window if g.real_input else torch.complex(*window.unbind(2))  # (B, C, Wa, Wb)
        product = SpectralProduct.apply(torch.fft.fft2(z, s=self.grid), self.spectra, g.subsample)
        first = [(size - 1 + e) // g.step for size, e in zip(k.size, k.lead)]
        H, W = g.out_size
        z = torch.fft.ifft2(product)[..., first[0] : first[0] + H, first[1] : first[1] + W]
        return torch.view_as_real(z).unbind(-1)


class SpatialBackend(FilterBackend):
    """One dense ``conv2d`` per input channel (channels folded into the batch).

    Complex input ``z = a + i b`` and filter ``h = h_r + i h_i``:
    ``Re(h * z) = h_r * a - h_i * b`` and ``Im(h * z) = h_i * a + h_r * b``; the output
    channels are ``[Re f_0..f_L, Im f_0..f_L]`` per input channel.
    """

    name = "spatial"

    def __init__(self, geometry: FilterGeometry, fourier: np.ndarray, kernel_tolerance: float):
        super().__init__(geometry)
        self.kernels = TruncatedKernels(geometry, fourier, kernel_tolerance)
        flipped = self.kernels.kernels[:, ::-1, ::-1]  # correlation = flipped convolution
        hr, hi = flipped.real, flipped.imag
        if geometry.real_input:
            rows = [[h] for h in hr] + [[h] for h in hi]
        else:
            rows = [[a, -b] for a, b in zip(hr, hi)] + [[b, a] for a, b in zip(hr, hi)]
        self.register_buffer(
            "weight", torch.tensor(np.array(rows), dtype=torch.float32), persistent=False
        )  # (2F, 1 or 2, ka, kb)

    def forward(self, x: SplitFeatures) -> tuple[Tensor, Tensor]:
        g = self.geometry
        window = padded_window(x, g, self.kernels)
        B, C = window.shape[:2]
        n_in = 1 if g.real_input else 2
        out = F.conv2d(window.reshape(B * C, n_in, *self.kernels.window), self.weight, stride=g.step)
        return out.view(B, C, 2, g.n_filters, *out.shape[-2:]).unbind(2)


class MatrixBackend(FilterBackend):
    """Filtering as one matrix product: ``[Re y | Im y] = a [Re T | Im T] + b [-Im T | Re T]``
    for an input ``a + i b`` (filtering is complex-linear), ``T`` built from ``fft`` applied in
    float64 to the basis images."""

    name = "matrix"

    def __init__(self, geometry: FilterGeometry, fourier: np.ndarray, kernel_tolerance: float):
        super().__init__(geometry)
        M, N = geometry.size
        basis = torch.eye(M * N, dtype=torch.complex128).view(M * N, 1, M, N)
        T = fft_filter(basis, torch.tensor(fourier, dtype=torch.float64), geometry.pad, geometry.subsample).reshape(
            M * N, -1
        )  # (M N, F H' W')
        self.register_buffer(
            "operator_re", torch.cat([T.real, T.imag], 1).float().contiguous(), persistent=False
        )  # (M N, 2 F H' W')
        if not geometry.real_input:
            self.register_buffer("operator_im", torch.cat([-T.imag, T.real], 1).float().contiguous(), persistent=False)

    def forward(self, x: SplitFeatures) -> tuple[Tensor, Tensor]:
        g = self.geometry
        t = x.any_tensor()
        B, C, M, N = t.shape
        if g.real_input:
            out = x.real.reshape(B * C, M * N) @ self.operator_re  # (B C, 2 F H' W')
        else:
            out = torch.addmm(
                x.re.reshape(B * C, M * N) @ self.operator_re, x.im.reshape(B * C, M * N), self.operator_im
            )
        return out.view(B, C, 2, g.n_filters, *g.out_size).unbind(2)


BACKEND_CLASSES = {cls.name: cls for cls in (FFTBackend, SmoothFFTBackend, SpatialBackend, MatrixBackend)}


def choose_backend(geometry: FilterGeometry, kernels: TruncatedKernels) -> str:
    """The ``auto`` rule, applied per block:

    1. ``matrix`` if the input map has at most ``AUTO_MAX_MATRIX_PIXELS`` (64) pixels;
    2. else ``spatial`` if the truncated kernel has at most ``AUTO_MAX_SPATIAL_TAPS`` (49) taps;
    3. else ``fft_smooth`` if a side of the reference's padded grid has a prime factor above 7
       and the 7-smooth grid of ``fft_smooth`` has at most ``AUTO_MAX_SMOOTH_AREA_RATIO`` (1.3)
       times the padded grid's area;
    4. else ``fft``.

    What it gives for the shipped presets (tested in tests/nn/test_wavelet.py): mnist5k ``fft`` for
    the 28x28 and 14x14 blocks, ``matrix`` for 7x7; CIFAR-10 ``fft`` for 32x32 and 16x16,
    ``matrix`` from 8x8 on; ImageNet ``fft_smooth`` for blocks 0 and 1 (padded grids 228 and
    116), ``fft`` for the blocks on 112x112 (subsampled) down to 14x14, ``matrix`` for 7x7 and 6x6.
    No shipped block has a kernel of at most 49 taps, so ``spatial`` is only used when chosen.
    """
    M, N = geometry.size
    if M * N <= AUTO_MAX_MATRIX_PIXELS:
        return "matrix"
    if kernels.taps <= AUTO_MAX_SPATIAL_TAPS:
        return "spatial"
    (Mp, Np), (Qa, Qb) = geometry.padded, kernels.smooth_grid()
    rough = any(smooth_size(p) != p for p in (Mp, Np))
    if rough and Qa * Qb <= AUTO_MAX_SMOOTH_AREA_RATIO * Mp * Np:
        return "fft_smooth"
    return "fft"


def build_backend(name: str, geometry: FilterGeometry, fourier: np.ndarray, kernel_tolerance: float) -> FilterBackend:
    """The backend ``name`` (one of :data:`BACKENDS`; ``auto`` applies :func:`choose_backend`)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown filtering backend {name!r}; valid: {', '.join(BACKENDS)}")
    if name == "auto":
        name = choose_backend(geometry, TruncatedKernels(geometry, fourier, kernel_tolerance))
    return BACKEND_CLASSES[name](geometry, fourier, kernel_tolerance)
