"""The phase-collapse network: parameter counts, shapes, phase invariance, reference equivalence, gradients."""

import cmath

import pytest
import torch

from pcn.nn.features import SplitFeatures
from pcn.nn.layers import ComplexProjection, Standardization, normalize_pixels, unitary_init
from pcn.nn.modulus import modulus
from pcn.nn.nonlinearities import lscat_nonlinearity
from pcn.nn.phase_collapse import PhaseCollapseConfig, PhaseCollapseNet, count_parameters
from pcn.nn.reference import ReferenceFFTNet

CIFAR = dict(
    in_channels=3,
    image_size=32,
    num_classes=10,
    widths=(64, 128, 256, 512, 512, 512, 512, 512),
    n_angles=4,
    factorize_from=0,
)
IMAGENET = dict(
    in_channels=3,
    image_size=224,
    num_classes=1000,
    widths=(32, 64, 64, 128, 256, 512, 512, 512, 512, 512, 256),
    n_angles=8,
    factorize_from=1,
)


@pytest.mark.parametrize(
    "preset,arch,nonlinearity,expected",
    [
        (CIFAR, "lscat", "mod", 12_251_018),
        (CIFAR, "lscat_skip", "mod", 24_459_018),
        (IMAGENET, "lscat", "mod", 29_052_584),
        (IMAGENET, "lscat_skip", "mod", 53_495_144),
        (CIFAR, "lscat", "cst", 12_261_014),
        (CIFAR, "lscat_skip", "cst", 24_471_513),
        (CIFAR, "lscat", "ms", 12_271_010),
        (CIFAR, "lscat_skip", "ms", 24_484_008),
    ],
)
def test_parameter_counts_equal_reference(preset, arch, nonlinearity, expected):
    model = PhaseCollapseNet(PhaseCollapseConfig(**preset, arch=arch, nonlinearity=nonlinearity))
    assert count_parameters(model) == expected


def test_block_shapes_cifar():
    model = PhaseCollapseNet(PhaseCollapseConfig(**{**CIFAR, "widths": (4, 4, 8, 8, 8, 8, 8, 8)}))
    assert model.state_dict().keys() == {k for k, _ in model.named_parameters()} | {
        k for k, _ in model.named_buffers() if "wavelet" not in k
    }  # filters are rebuilt, never saved
    feats = model.forward_features(torch.randn(2, 3, 32, 32))
    assert [f.re.shape[-1] for f in feats] == [32, 16, 16, 8, 8, 4, 4, 2]
    assert all(f.real is None and f.re.shape[1] == w for f, w in zip(feats, model.cfg.widths))
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_block_shapes_imagenet():
    cfg = PhaseCollapseConfig(**{**IMAGENET, "widths": (2,) * 11, "num_classes": 5})
    assert cfg.spatial_sizes() == [224, 112, 112, 56, 56, 28, 28, 14, 14, 7, 6, 3]
    feats = PhaseCollapseNet(cfg).forward_features(torch.randn(1, 3, 224, 224))
    assert [f.re.shape[-1] for f in feats] == cfg.spatial_sizes()[1:]


def test_invalid_configurations_are_rejected():
    with pytest.raises(ValueError, match="do not fit a 16x16 image"):
        PhaseCollapseNet(PhaseCollapseConfig(image_size=16, widths=(4,) * 8))
    with pytest.raises(ValueError, match="valid: mod, cst, ms, mc, tanh, relu"):
        PhaseCollapseNet(PhaseCollapseConfig(nonlinearity="softplus"))
    with pytest.raises(ValueError, match="valid: lscat, lscat_skip"):
        PhaseCollapseNet(PhaseCollapseConfig(arch="skip"))


def test_modulus_is_phase_invariant_and_others_equivariant():
    torch.manual_seed(0)
    re, im = torch.randn(2, 6, 5, 5), torch.randn(2, 6, 5, 5)
    rotation = cmath.exp(0.7j)
    rre = re * rotation.real - im * rotation.imag
    rim = re * rotation.imag + im * rotation.real
    mod = lscat_nonlinearity("mod", 6, 0)
    assert torch.allclose(mod(SplitFeatures(re=re, im=im)).real, mod(SplitFeatures(re=rre, im=rim)).real, atol=1e-6)
    assert not torch.allclose(mod(SplitFeatures(re=re, im=im)).real, re.abs(), atol=1e-3)  # not |Re z|
    for kind in ("cst", "ms", "mc", "tanh"):  # phase preserving: rho(e^{ia} z) = e^{ia} rho(z)
        rho = lscat_nonlinearity(kind, 6, 0)
        out, rot_out = rho(SplitFeatures(re=re, im=im)), rho(SplitFeatures(re=rre, im=rim))
        assert torch.allclose(rot_out.re, out.re * rotation.real - out.im * rotation.imag, atol=1e-5), kind
        assert torch.allclose(rot_out.im, out.re * rotation.imag + out.im * rotation.real, atol=1e-5), kind
        assert not torch.allclose(rot_out.re, out.re, atol=1e-3)  # and not phase invariant


@pytest.mark.parametrize("kind", ["mod", "cst"])
def test_lscat_block_band_pass_path_is_invariant_to_the_input_phase_only_with_the_modulus(kind):
    """A whole LScat block (Fw, rho, Std, Pc, N; evaluation mode) whose projection reads only the band-pass
    channels: rotating the phase of its complex input, z -> e^{ia} z, rotates every wavelet coefficient
    (the filtering is complex-linear), the modulus removes the rotation, so the block's output is unchanged.
    With a phase-preserving rho (cst) the rotation goes through and the output changes."""
    torch.manual_seed(0)
    model = PhaseCollapseNet(
        PhaseCollapseConfig(in_channels=1, image_size=16, widths=(4, 6), n_angles=4, nonlinearity=kind)
    ).eval()
    block = model.blocks[1]
    with torch.no_grad():
        block.proj.weight[..., :4] = 0  # drop the low-pass: the first 4 (complex) channels of Pc's input
        x = model.blocks[0](SplitFeatures(real=torch.randn(3, 1, 16, 16)))
        rotation = cmath.exp(1.3j)
        rotated = SplitFeatures(
            re=x.re * rotation.real - x.im * rotation.imag, im=x.re * rotation.imag + x.im * rotation.real
        )
        a, b = block(x), block(rotated)
    assert block.proj.n_complex + block.proj.n_real == 4 + 16  # low-pass 4, band-pass 4 x L=4
    assert a.re.abs().max() > 0.1  # the band-pass path carries the output
    invariant = torch.allclose(a.re, b.re, atol=1e-5) and torch.allclose(a.im, b.im, atol=1e-5)
    assert invariant == (kind == "mod")


def test_stable_modulus_gradient_at_zero():
    re = torch.zeros(3, requires_grad=True)
    im = torch.tensor([0.0, 3.0, 0.0], requires_grad=True)
    modulus(re, im).sum().backward()
    assert torch.isfinite(re.grad).all() and torch.isfinite(im.grad).all()
    assert im.grad.tolist() == [0.0, 1.0, 0.0]


@pytest.mark.parametrize("arch", ["lscat", "lscat_skip"])
@pytest.mark.parametrize("nonlinearity", ["mod", "cst", "tanh"])
@pytest.mark.parametrize("backend", ["spatial", "fft", "fft_smooth", "matrix"])
def test_equals_reference_fft_formulation(arch, nonlinearity, backend):
    torch.manual_seed(0)
    cfg = PhaseCollapseConfig(
        in_channels=3, image_size=16, widths=(8, 12, 12), arch=arch, nonlinearity=nonlinearity, filter_backend=backend
    )
    model = PhaseCollapseNet(cfg).train()
    x = torch.randn(4, 3, 16, 16)
    ours, reference = model(x), ReferenceFFTNet(model)(x)
    assert torch.allclose(ours, reference, rtol=1e-4, atol=1e-4 * float(reference.abs().max()))


def test_unitary_init():
    w = unitary_init(4, 10)
    c = torch.complex(w[0], w[1]).to(torch.complex128)
    assert torch.allclose(c @ c.conj().T, torch.eye(4, dtype=torch.complex128), atol=1e-5)
    w = unitary_init(10, 4)
    c = torch.complex(w[0], w[1]).to(torch.complex128)
    assert torch.allclose(c.conj().T @ c, torch.eye(4, dtype=torch.complex128), atol=1e-5)


def test_projection_matches_complex_matmul():
    torch.manual_seed(0)
    proj = ComplexProjection(3, 2, 5)
    x = SplitFeatures(re=torch.randn(2, 3, 4, 4), im=torch.randn(2, 3, 4, 4), real=torch.randn(2, 2, 4, 4))
    w = torch.complex(proj.weight[0], proj.weight[1])
    expected = torch.einsum("kc,bchw->bkhw", w, x.to_complex())
    y = proj(x)
    assert torch.allclose(torch.complex(y.re, y.im), expected, atol=1e-5)


def test_standardization_and_normalization():
    torch.manual_seed(0)
    std = Standardization(2, 1)
    x = SplitFeatures(
        re=3 + 2 * torch.randn(8, 2, 5, 5), im=-1 + torch.randn(8, 2, 5, 5), real=5 + 4 * torch.randn(8, 1, 5, 5)
    )
    y = std(x)
    z = torch.complex(y.re, y.im)
    assert torch.allclose(z.mean(dim=(0, 2, 3)).abs(), torch.zeros(2), atol=1e-5)
    assert torch.allclose((z.abs() ** 2).mean(dim=(0, 2, 3)), torch.ones(2), atol=1e-3)
    assert torch.allclose(y.real.std(dim=(0, 2, 3), unbiased=False), torch.ones(1), atol=1e-3)
    assert std.running_mean_re.abs().sum() > 0 and len(list(std.parameters())) == 0
    n = normalize_pixels(y)
    norms = (n.re**2 + n.im**2).sum(1) + (n.real**2).sum(1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)


def test_gradcheck_float64_tiny_model():
    torch.manual_seed(0)
    cfg = PhaseCollapseConfig(
        in_channels=1, image_size=8, num_classes=3, widths=(2, 3), n_angles=3, arch="lscat_skip", nonlinearity="cst"
    )
    model = PhaseCollapseNet(cfg).double().train()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()  # fixed statistics: gradcheck perturbs one input at a time
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda inp: model(inp), (x,), eps=1e-6, atol=1e-5, fast_mode=True)
