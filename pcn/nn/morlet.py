"""Morlet / Gabor filter bank of the phase-collapse network.

Every block of the network filters each input channel with one low-pass filter
:math:`\\phi` and ``L`` complex band-pass Morlet filters :math:`\\psi_\\ell` at a
single scale. This module builds those filters on the padded grid, in NumPy
float64, following the reference code (which itself follows kymatio 0.3).

Gabor filter, with :math:`u = (u_1, u_2)` = (row, column) measured from pixel (0, 0):

.. math::

    A = R_\\theta \\,\\mathrm{diag}(1, s^2)\\, R_\\theta^\\top / (2\\sigma^2), \\qquad
    g(u) = \\frac{s}{2 \\cdot 3.1415\\, \\sigma^2}
           \\exp\\big(-u^\\top A u + i \\xi (u_1 \\cos\\theta + u_2 \\sin\\theta)\\big)

periodized on the ``M x N`` grid by summing 5 x 5 shifted copies. (The literal
3.1415 instead of pi is the reference's and kymatio's.) The Morlet filter removes
the mean: :math:`\\psi = g_\\xi - K g_0` with :math:`K = \\sum g_\\xi / \\sum g_0`,
so :math:`\\hat\\psi(0) = 0` exactly. The low-pass is an isotropic Gabor with
:math:`\\xi = 0`.

Block filter types (paper-spec section 1.3):

* ``standard``: sigma 0.8, xi 3pi/4, slant 4/L, low-pass sigma 0.8; subsamples by 2.
* ``half`` (factorized t=0): same band-pass, low-pass sigma 0.8/sqrt(2); no subsampling.
* ``half_sub`` (factorized t=1): sigma 0.8 sqrt(3/2), xi pi/sqrt(2),
  slant sqrt(3 s^2 / (4 - s^2)), low-pass sigma 0.8/sqrt(2); subsamples by 2.

Two consecutive ``phi_{1/2}`` make ``phi_1`` (variances add), so a factorized pair
of blocks covers one octave in two half-octave steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: The reference code normalizes with this literal, not with pi.
REFERENCE_PI = 3.1415
SIGMA0 = 0.8
XI0 = 3 * math.pi / 4

FILTER_TYPES = ("standard", "half", "half_sub")


def gabor_2d(M: int, N: int, sigma: float, theta: float, xi: float, slant: float = 1.0, offset: int = 0) -> np.ndarray:
    """Periodized 2-D Gabor filter on an ``M x N`` grid (complex128, spatial domain).

    Parameters
    ----------
    M, N : int
        Grid size (rows, columns).
    sigma : float
        Envelope standard deviation along the wave vector (pixels).
    theta : float
        Orientation of the wave vector (radians).
    xi : float
        Central frequency (radians per pixel).
    slant : float
        Envelope aspect ratio ``s``; the width across the wave vector is ``sigma / s``.
    offset : int
        Grid origin, 0 for filters centred at pixel (0, 0).

    Returns
    -------
    np.ndarray, complex128, shape (M, N)
    """
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    rot_inv = np.array([[math.cos(theta), math.sin(theta)], [-math.sin(theta), math.cos(theta)]])
    curvature = rot @ np.diag([1.0, slant**2]) @ rot_inv / (2 * sigma**2)
    gabor = np.zeros((M, N), np.complex128)
    for ex in range(-2, 3):
        for ey in range(-2, 3):
            xx, yy = np.mgrid[offset + ex * M : offset + M + ex * M, offset + ey * N : offset + N + ey * N]
            arg = -(
                curvature[0, 0] * xx * xx + (curvature[0, 1] + curvature[1, 0]) * xx * yy + curvature[1, 1] * yy * yy
            ) + 1j * (xx * xi * math.cos(theta) + yy * xi * math.sin(theta))
            gabor += np.exp(arg)
    return gabor / (2 * REFERENCE_PI * sigma**2 / slant)


def morlet_2d(M: int, N: int, sigma: float, theta: float, xi: float, slant: float = 0.5, offset: int = 0) -> np.ndarray:
    """Zero-mean Morlet filter :math:`\\psi = g_\\xi - K g_0` (complex128, spatial domain).

    ``K = sum(g_xi) / sum(g_0)`` is chosen so that the filter sums to exactly zero.
    Parameters are those of :func:`gabor_2d`.
    """
    wave = gabor_2d(M, N, sigma, theta, xi, slant, offset)
    envelope = gabor_2d(M, N, sigma, theta, 0.0, slant, offset)
    return wave - (wave.sum() / envelope.sum()) * envelope


def angles(n_angles: int, full_angles: bool = False) -> list[float]:
    """Orientations :math:`\\theta_k = (\\lfloor L - L/2 - 1 \\rfloor - k)\\, \\pi / L`.

    They span the half-plane ``[-pi/2, pi/2)`` (the reference default); with
    ``full_angles`` the step is ``2 pi / L`` and they span the full circle.
    For a modulus the other half-plane adds nothing since
    :math:`\\psi_{\\theta+\\pi} = \\overline{\\psi_\\theta}`.
    """
    span = 2 * math.pi if full_angles else math.pi
    return [(int(n_angles - n_angles / 2 - 1) - k) * span / n_angles for k in range(n_angles)]


@dataclass(frozen=True)
class BandPassSpec:
    """Parameters of one block's filters (all lengths in pixels, frequencies in rad/px)."""

    sigma: float
    xi: float
    slant: float
    sigma_low: float
    subsample: bool


def base_slant(n_angles: int, full_angles: bool = False) -> float:
    """Envelope slant ``4 / L`` (``4 / (L/2)`` with full angles), as in the reference."""
    return 4.0 / (n_angles / 2 if full_angles else n_angles)


def block_filter_type(block_index: int, factorize_from: int) -> str:
    """Filter type of a block: ``standard`` before ``factorize_from``, then alternating.

    Blocks ``i >= F`` alternate ``half`` (t = (i - F) mod 2 = 0, no subsampling) and
    ``half_sub`` (t = 1, subsampling by 2).
    """
    if block_index < factorize_from:
        return "standard"
    return "half" if (block_index - factorize_from) % 2 == 0 else "half_sub"


def block_filter_spec(
    filter_type: str, n_angles: int, full_angles: bool = False, sigma0: float = SIGMA0, xi0: float = XI0
) -> BandPassSpec:
    """Filter parameters of one block type (see the module docstring)."""
    slant = base_slant(n_angles, full_angles)
    if filter_type == "standard":
        return BandPassSpec(sigma0, xi0, slant, sigma0, True)
    if filter_type == "half":
        return BandPassSpec(sigma0, xi0, slant, sigma0 / math.sqrt(2), False)
    if filter_type == "half_sub":
        if slant >= 2:
            raise ValueError(
                f"factorized half-octave filters need a slant 4/L < 2 (n_angles >= 3, or >= 5 with "
                f"full_angles); got n_angles={n_angles}, full_angles={full_angles}"
            )
        return BandPassSpec(
            sigma0 * math.sqrt(1.5),
            xi0 * 4 / (3 * math.sqrt(2)),
            math.sqrt(3 * slant**2 / (4 - slant**2)),
            sigma0 / math.sqrt(2),
            True,
        )
    raise ValueError(f"unknown filter type {filter_type!r}; valid: {', '.join(FILTER_TYPES)}")


def padded_size(size: int) -> int:
    """Padded length ``((M + 2) // 2 + 1) * 2`` (kymatio's formula with J = 1)."""
    return ((size + 2) // 2 + 1) * 2


def fourier_filters(M: int, N: int, spec: BandPassSpec, n_angles: int, full_angles: bool = False) -> np.ndarray:
    """Real Fourier transforms of ``[phi, psi_1, ..., psi_L]`` on the ``M x N`` grid.

    Returns
    -------
    np.ndarray, float64, shape (L + 1, M, N)
        ``Re(fft2(filter))``; the imaginary part vanishes up to rounding because the
        filters are Hermitian (:math:`\\psi(-u) = \\overline{\\psi(u)}`).
    """
    low = gabor_2d(M, N, spec.sigma_low, 0.0, 0.0, 1.0)
    bank = [np.fft.fft2(low).real]
    for theta in angles(n_angles, full_angles):
        bank.append(np.fft.fft2(morlet_2d(M, N, spec.sigma, theta, spec.xi, spec.slant)).real)
    return np.stack(bank)


def spatial_kernels(fourier: np.ndarray, tolerance: float) -> tuple[np.ndarray, int, int]:
    """Truncated spatial kernels of a Fourier filter bank, for direct convolution.

    The FFT path computes a circular convolution with :math:`h = \\mathrm{ifft2}(\\hat h)`
    on the padded grid. We keep the offsets ``v`` in a window ``[-a, b]`` (per axis)
    that contains every value with ``|h(v)| > tolerance * max|h|``; the whole period is
    kept when the window would be as large as the grid. Convolution over that window
    with circular padding then equals the FFT path up to the dropped values.

    Parameters
    ----------
    fourier : np.ndarray, shape (F, M, N)
        Real Fourier filters.
    tolerance : float
        Relative magnitude below which kernel values are dropped (0 keeps everything).

    Returns
    -------
    kernels : np.ndarray, complex128, shape (F, ka, kb)
        ``kernels[f, i, j] = h_f(i - a0, j - b0)`` (convolution, not correlation, order).
    a0, b0 : int
        Offsets of the window's first row/column (the window is ``[-a0, ka - 1 - a0]``).
    """
    n_filters, M, N = fourier.shape
    spatial = np.fft.ifft2(fourier)  # (F, M, N) complex, h(v) at index v mod M
    magnitude = np.abs(spatial).max(axis=0)
    keep = magnitude > tolerance * magnitude.max()

    def radius(length: int, mask_1d: np.ndarray) -> int:
        offsets = np.arange(length)
        signed = np.where(offsets <= length // 2, offsets, offsets - length)
        return int(np.abs(signed[mask_1d]).max()) if mask_1d.any() else 0

    r_rows = radius(M, keep.any(axis=1))
    r_cols = radius(N, keep.any(axis=0))

    def window(length: int, r: int) -> tuple[int, int]:
        if 2 * r + 1 >= length:  # the whole period: offsets [-(length // 2), length - 1 - length // 2]
            return length // 2, length
        return r, 2 * r + 1

    a0, ka = window(M, r_rows)
    b0, kb = window(N, r_cols)
    rows = (np.arange(ka) - a0) % M
    cols = (np.arange(kb) - b0) % N
    return spatial[:, rows][:, :, cols], a0, b0
