"""Wavelet filtering: geometry, the two backends, and an independent NumPy computation."""

import numpy as np
import pytest
import torch

from pcn.nn.features import SplitFeatures
from pcn.nn.geometry import output_size
from pcn.nn.morlet import block_filter_spec, fourier_filters, padded_size
from pcn.nn.spectral import SpectralProduct
from pcn.nn.wavelet import WaveletFilter
from pcn.pipeline.build import InputSpec


def make_filter(size, kind="half", L=4, channels=2, real=False, backend="spatial"):
    return WaveletFilter(channels, real, (size, size), block_filter_spec(kind, L), L, False, backend, 1e-7)


def numpy_reference(x: np.ndarray, size: int, kind: str, L: int) -> np.ndarray:
    """Reflect-pad, circular convolution by FFT in NumPy float64, decimate, crop (paper-spec 1.3)."""
    spec = block_filter_spec(kind, L)
    mp = padded_size(size)
    before, after = (mp - size) // 2, (mp - size + 1) // 2
    padded = np.pad(x, ((0, 0), (before, after), (before, after)), mode="reflect")
    bank = fourier_filters(mp, mp, spec, L)
    y = np.fft.ifft2(np.fft.fft2(padded)[:, None] * bank[None])  # (C, L+1, mp, mp)
    if spec.subsample:
        return y[..., ::2, ::2][..., 1:-1, 1:-1]
    return y[..., 2:-2, 2:-2]


@pytest.mark.parametrize(
    "size,kind,L",
    [(16, "half", 4), (16, "half_sub", 4), (12, "standard", 8), (7, "half", 8), (7, "half_sub", 4), (8, "half_sub", 8)],
)
@pytest.mark.parametrize("backend", ["spatial", "fft", "fft_smooth", "matrix"])
def test_matches_independent_numpy(size, kind, L, backend):
    torch.manual_seed(0)
    re, im = torch.randn(3, 2, size, size), torch.randn(3, 2, size, size)
    filt = make_filter(size, kind, L, backend=backend)
    low, band = filt(SplitFeatures(re=re, im=im))
    z = (re + 1j * im).numpy().astype(np.complex128)
    for b in range(3):
        ref = numpy_reference(z[b], size, kind, L)  # (C, L+1, H, W)
        got_low = (low.re[b] + 1j * low.im[b]).numpy()
        got_band = (band.re[b] + 1j * band.im[b]).numpy().reshape(2, L, *got_low.shape[-2:])
        scale = np.abs(ref).max()
        assert np.abs(got_low - ref[:, 0]).max() < 1e-5 * scale
        assert np.abs(got_band - ref[:, 1:]).max() < 1e-5 * scale
    assert low.re.shape[-1] == output_size(size, block_filter_spec(kind, L).subsample)


@pytest.mark.parametrize("kind", ["standard", "half"])
def test_backends_agree_on_real_input(kind):
    torch.manual_seed(1)
    x = torch.randn(4, 3, 32, 32)
    outs = []
    for backend in ("spatial", "fft", "fft_smooth", "matrix"):
        low, band = make_filter(32, kind, 4, 3, real=True, backend=backend)(SplitFeatures(real=x))
        assert low.re is None and low.real.shape == (4, 3, *low.real.shape[-2:])
        outs.append((low.real, band.re, band.im))
    for other in outs[1:]:
        for a, b in zip(outs[0], other):
            assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("subsample", [False, True])
def test_spectral_product_gradient(subsample):
    """The hand-written backward equals finite differences (float64, complex input)."""
    torch.manual_seed(2)
    spectrum = torch.randn(2, 3, 6, 8, dtype=torch.complex128, requires_grad=True)
    fourier = torch.rand(4, 6, 8, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda s: SpectralProduct.apply(s, fourier, subsample), (spectrum,))


@pytest.mark.parametrize("subsample", [False, True])
def test_spectral_product_equals_full_product_then_fold(subsample):
    """Forward and backward equal the reference's formulation: full product, mean over aliased copies."""
    torch.manual_seed(3)
    spectrum = torch.randn(2, 3, 10, 12, dtype=torch.complex64, requires_grad=True)
    fourier = torch.rand(5, 10, 12)
    grad_out = torch.randn(2, 3, 5, *((5, 6) if subsample else (10, 12)), dtype=torch.complex64)
    full = spectrum.unsqueeze(2) * fourier
    expected = full.view(2, 3, 5, 2, 5, 2, 6).mean(dim=(3, 5)) if subsample else full
    (expected_grad,) = torch.autograd.grad(expected, spectrum, grad_out)
    got = SpectralProduct.apply(spectrum, fourier, subsample)
    (got_grad,) = torch.autograd.grad(got, spectrum, grad_out)
    assert torch.allclose(got, expected, atol=1e-6)
    assert torch.allclose(got_grad, expected_grad, atol=1e-5)


def test_output_sizes():
    assert [output_size(m, True) for m in (32, 16, 8, 4, 224, 7)] == [16, 8, 4, 2, 112, 3]
    assert [output_size(m, False) for m in (32, 16, 7)] == [32, 16, 6]


def test_rejects_wrong_input():
    filt = make_filter(16)
    with pytest.raises(ValueError, match="expects complex input"):
        filt(SplitFeatures(real=torch.randn(1, 2, 16, 16)))
    with pytest.raises(ValueError, match="at least 3x3"):
        make_filter(2)
    with pytest.raises(ValueError, match="valid: auto, fft, fft_smooth, spatial, matrix"):
        make_filter(16, backend="wavelets")


@pytest.mark.parametrize(
    "preset,size,expected",
    [
        ("params.yaml", 28, ["fft", "fft", "fft", "matrix"]),
        ("presets/cifar10.yaml", 32, ["fft"] * 4 + ["matrix"] * 4),
        ("presets/imagenet.yaml", 224, ["fft_smooth"] * 2 + ["fft"] * 7 + ["matrix"] * 2),
    ],
)
def test_auto_backend_of_every_shipped_block(preset, size, expected):
    """The ``auto`` rule (pcn.nn.backends.choose_backend) on every block of the shipped presets."""
    from pcn.cli.preset import overlay
    from pcn.nn.phase_collapse import PhaseCollapseNet
    from pcn.pipeline.build import phase_collapse_config
    from pcn.schema import parse_params

    from conftest import ROOT, read_yaml

    base = read_yaml(ROOT / "params.yaml")
    params = parse_params(base if preset == "params.yaml" else overlay(base, read_yaml(ROOT / preset)))
    assert params.network.filter_backend == "auto"
    cfg = phase_collapse_config(params.network, params.filters, params.models["modulus"], InputSpec(1, size, 10))
    cfg.widths = (2,) * len(cfg.widths)  # the choice depends on sizes and filters only
    assert [b.wavelet.backend_name for b in PhaseCollapseNet(cfg).blocks] == expected


def test_backends_build_only_their_own_buffers():
    names = {}
    for backend in ("fft", "fft_smooth", "spatial", "matrix"):
        filt = make_filter(8, "half_sub", 4, backend=backend)
        names[backend] = sorted(name for name, _ in filt.backend.named_buffers())
        assert filt.state_dict() == {}  # derived from the configuration: never saved
    assert names == {
        "fft": ["spectra"],
        "fft_smooth": ["spectra"],
        "spatial": ["weight"],
        "matrix": ["operator_im", "operator_re"],
    }
