"""Filter-bank properties and agreement with kymatio's Morlet/Gabor filters."""

import math

import numpy as np
import pytest

from pcn.nn.morlet import (
    angles,
    base_slant,
    block_filter_spec,
    block_filter_type,
    fourier_filters,
    gabor_2d,
    morlet_2d,
    padded_size,
    spatial_kernels,
)

kymatio_bank = pytest.importorskip("kymatio.scattering2d.filter_bank")


@pytest.mark.parametrize(
    "M,N,sigma,theta,xi,slant",
    [
        (36, 36, 0.8, math.pi / 4, 3 * math.pi / 4, 1.0),
        (20, 20, 0.8 * math.sqrt(1.5), -math.pi / 2, math.pi / math.sqrt(2), 1.0),
        (60, 44, 0.8, 3 * math.pi / 8, 3 * math.pi / 4, 0.5),
        (12, 12, 0.98, 0.1, 2.2, 0.447),
    ],
)
def test_agrees_with_kymatio(M, N, sigma, theta, xi, slant):
    ours = morlet_2d(M, N, sigma, theta, xi, slant).astype(np.complex64)
    theirs = kymatio_bank.morlet_2d(M, N, sigma, theta, xi, slant).astype(np.complex64)
    assert np.allclose(ours, theirs, rtol=1e-5, atol=1e-6 * np.abs(theirs).max())
    g_ours = gabor_2d(M, N, sigma, theta, xi, slant).astype(np.complex64)
    g_theirs = kymatio_bank.gabor_2d(M, N, sigma, theta, xi, slant).astype(np.complex64)
    assert np.allclose(g_ours, g_theirs, rtol=1e-5, atol=1e-6 * np.abs(g_theirs).max())


def test_angles_match_reference():
    assert np.allclose(angles(4), [math.pi / 4, 0, -math.pi / 4, -math.pi / 2])
    assert np.allclose(angles(8), [k * math.pi / 8 for k in (3, 2, 1, 0, -1, -2, -3, -4)])
    full = angles(4, full_angles=True)
    assert np.allclose(full, [math.pi / 2, 0, -math.pi / 2, -math.pi])
    assert base_slant(4) == 1.0 and base_slant(8) == 0.5 and base_slant(8, True) == 1.0


def test_padded_sizes():
    assert [padded_size(m) for m in (32, 16, 8, 4, 224, 7)] == [36, 20, 12, 8, 228, 10]


def test_block_schedule():
    assert [block_filter_type(i, 0) for i in range(4)] == ["half", "half_sub", "half", "half_sub"]
    assert [block_filter_type(i, 1) for i in range(3)] == ["standard", "half", "half_sub"]
    half_sub = block_filter_spec("half_sub", 8)
    assert half_sub.subsample and math.isclose(half_sub.xi, math.pi / math.sqrt(2))
    assert math.isclose(half_sub.slant, math.sqrt(0.2))
    assert not block_filter_spec("half", 4).subsample
    # two half-octave low-passes make the standard one: variances add
    half, standard = block_filter_spec("half", 4), block_filter_spec("standard", 4)
    assert math.isclose(2 * half.sigma_low**2, standard.sigma_low**2)


@pytest.mark.parametrize("kind,L", [("standard", 4), ("half", 4), ("half_sub", 4), ("standard", 8), ("half_sub", 8)])
def test_fourier_properties(kind, L):
    M = 36
    spec = block_filter_spec(kind, L)
    bank = fourier_filters(M, M, spec, L)  # (L+1, M, M)
    phi, psi = bank[0], bank[1:]
    assert abs(phi[0, 0] - 1) < 0.01  # low-pass has unit DC gain
    assert np.abs(psi[:, 0, 0]).max() < 1e-12  # band-pass filters have zero mean
    freqs = 2 * math.pi * np.fft.fftfreq(M)
    for theta, filt in zip(angles(L), psi):
        # the peak lies near xi (cos theta, sin theta), up to the sign of the half-plane
        i, j = np.unravel_index(np.argmax(filt), filt.shape)
        peak = np.array([freqs[i], freqs[j]])
        target = spec.xi * np.array([math.cos(theta), math.sin(theta)])
        wrapped = [peak - target + 2 * math.pi * np.array([a, b]) for a in (-1, 0, 1) for b in (-1, 0, 1)]
        assert min(np.linalg.norm(w) for w in wrapped) < 2.5 * (2 * math.pi / M) + 0.35
        assert 0.9 < filt.max() < 1.05
    # Littlewood-Paley sum with the conjugate half-plane: bounded above and below (not a tight frame).
    # The half_sub bank (xi = pi/sqrt(2)) leaves a gap near the highest frequencies that the
    # preceding half block covers, hence its lower bound.
    conj = psi[:, (-np.arange(M)) % M][:, :, (-np.arange(M)) % M]
    lp = (psi**2).sum(0) + (conj**2).sum(0) + phi**2
    assert lp.min() > (0.05 if kind == "half_sub" else 0.2) and lp.max() < 1.7


def test_spatial_kernels_reproduce_the_filters():
    bank = fourier_filters(20, 20, block_filter_spec("half", 4), 4)
    spatial = np.fft.ifft2(bank)  # h(v) at index v mod 20
    full, a0, b0 = spatial_kernels(bank, 0.0)
    assert full.shape[1:] == (20, 20) and a0 == 10
    assert np.allclose(full[:, a0, b0], spatial[:, 0, 0])
    tolerance = 1e-7
    truncated, a1, b1 = spatial_kernels(bank, tolerance)
    ka, kb = truncated.shape[1:]
    assert ka < 20 and kb < 20  # something was dropped
    kept = np.zeros((20, 20), bool)
    kept[np.ix_((np.arange(ka) - a1) % 20, (np.arange(kb) - b1) % 20)] = True
    rows, cols = (np.arange(ka) - a1) % 20, (np.arange(kb) - b1) % 20
    assert np.array_equal(truncated, spatial[:, rows][:, :, cols])  # kept values are exact
    dropped = np.abs(spatial[:, ~kept])
    assert dropped.max() <= tolerance * np.abs(spatial).max()  # dropped values are below the tolerance
    assert dropped.max() > 0  # (and they were not all zero)
