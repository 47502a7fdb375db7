"""The fused ``Pc(Std(.))`` against the unfused modules and finite differences."""

import pytest
import torch

import pcn.nn.fused_layout as fused_layout
import pcn.nn.fused_projection as sp
from pcn.nn.features import SplitFeatures
from pcn.nn.fused_projection import standardized_projection
from pcn.nn.layers import ComplexProjection, Standardization, batch_moments
from pcn.nn.phase_collapse import PhaseCollapseConfig, PhaseCollapseNet


@pytest.fixture(params=["folded", "per_sample", "per_sample_batched"])
def layout(request, monkeypatch):
    """Run a test with the batch folded into the columns (small maps) and with per-sample products, the
    weight gradients as the CPU's loop or as the GPU's batched product (made to run on the CPU here)."""
    monkeypatch.setattr(fused_layout, "FOLD_BELOW_PIXELS", 10**9 if request.param == "folded" else 0)
    if request.param == "per_sample_batched":
        monkeypatch.setattr(fused_layout, "outer_sum_loop", fused_layout.outer_sum_batched)
    return request.param


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_batched_outer_sum_equals_the_loop_and_the_definition(dtype):
    """sum_b g_b x_b^T: the GPU's batched product, the CPU's loop and an einsum in float64 agree."""
    g = torch.Generator().manual_seed(3)
    grad, x = (torch.randn(5, m, 7, generator=g, dtype=torch.float64) for m in (4, 6))  # (B, M, N), (B, C, N)
    exact = torch.einsum("bmn,bcn->mc", grad, x)
    loop = fused_layout.outer_sum_loop(grad.to(dtype), x.to(dtype))
    batched = fused_layout.outer_sum_batched(grad.to(dtype), x.to(dtype))
    assert batched.dtype == loop.dtype == (torch.float32 if dtype == torch.bfloat16 else dtype)
    tol = {torch.float64: 1e-12, torch.float32: 1e-5, torch.bfloat16: 2e-2}[dtype]
    assert torch.allclose(batched.double(), exact, rtol=tol, atol=tol * exact.abs().max())
    torch.testing.assert_close(batched, loop, rtol=tol, atol=tol * float(exact.abs().max()))


def make_parts(dtype=torch.float32, seed=0):
    """Two complex parts and two real ones, with non-zero means and unequal scales."""
    g = torch.Generator().manual_seed(seed)

    def t(c, shift):
        return (torch.randn(3, c, 4, 5, generator=g).to(dtype) * (1 + shift) + shift).requires_grad_()

    return [
        SplitFeatures(re=t(2, 0.5), im=t(2, -1.0)),
        SplitFeatures(re=t(3, 0.0), im=t(3, 2.0)),
        SplitFeatures(real=t(2, 3.0)),
        SplitFeatures(real=t(1, 0.2)),
    ]


def modules(dtype=torch.float32):
    std, proj = Standardization(5, 3).to(dtype), ComplexProjection(5, 3, 4).to(dtype)
    with torch.no_grad():
        proj.weight.copy_(torch.randn(proj.weight.shape, generator=torch.Generator().manual_seed(1)))
    return std, proj


def leaves(parts):
    return [t for p in parts for t in (p.re, p.im, p.real) if t is not None]


@pytest.mark.parametrize("training", [True, False])
def test_equals_unfused_modules(training, layout):
    parts = make_parts()
    std_a, proj_a = modules()
    std_b, proj_b = modules()
    if not training:  # give the running statistics non-trivial values first
        with torch.no_grad():
            std_a(SplitFeatures.cat(make_parts(seed=5)))
            std_b.load_state_dict(std_a.state_dict())
        std_a.eval(), std_b.eval()
    expected = proj_a(std_a(SplitFeatures.cat(parts)))
    got = standardized_projection(parts, std_b, proj_b)
    for e, o in ((expected.re, got.re), (expected.im, got.im)):
        assert torch.allclose(o, e, atol=1e-5, rtol=1e-5)
    for name, buffer in std_a.named_buffers():
        assert torch.allclose(getattr(std_b, name), buffer, atol=1e-6), name
    cotangent = (torch.randn_like(got.re), torch.randn_like(got.im))
    inputs = leaves(parts)
    grads_e = torch.autograd.grad((expected.re, expected.im), [proj_a.weight, *inputs], cotangent)
    grads_o = torch.autograd.grad((got.re, got.im), [proj_b.weight, *inputs], cotangent)
    for e, o in zip(grads_e, grads_o):
        assert torch.allclose(o, e, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("training", [True, False])
def test_gradient_matches_finite_differences(training, layout):
    parts = make_parts(torch.float64)
    std, proj = modules(torch.float64)
    std.train(training)
    inputs = leaves(parts)

    def f(weight, *tensors):
        it = iter(tensors)
        rebuilt = [
            SplitFeatures(re=next(it), im=next(it)) if p.re is not None else SplitFeatures(real=next(it)) for p in parts
        ]
        with torch.no_grad():  # keep the running statistics fixed across probes
            saved = {k: v.clone() for k, v in std.named_buffers()}
        out = standardized_projection(rebuilt, std, _WeightView(proj, weight))
        for k, v in saved.items():
            getattr(std, k).copy_(v)
        return out.re, out.im

    weight = proj.weight.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(f, (weight, *inputs))


class _WeightView(torch.nn.Module):
    """A ComplexProjection stand-in whose weight is a given (differentiable) tensor."""

    def __init__(self, proj, weight):
        super().__init__()
        self.n_complex, self.n_real, self.out_channels = proj.n_complex, proj.n_real, proj.out_channels
        self.weight = weight


def test_batch_moments_equal_two_pass_statistics():
    parts = make_parts()
    pairs = [(p.re, p.im) for p in parts if p.re is not None]
    reals = [p.real for p in parts if p.real is not None]
    m = batch_moments(pairs, reals)
    mean_re, mean_im, var, n = m.mean_re, m.mean_im, m.var, m.count
    z = torch.cat([torch.complex(u, v) for u, v in pairs] + [r.to(torch.complex64) for r in reals], 1).detach()
    mean = z.mean((0, 2, 3))
    expected_var = (z - mean.view(1, -1, 1, 1)).abs().pow(2).mean((0, 2, 3))
    assert n == 3 * 4 * 5
    assert torch.allclose(mean_re.float(), mean.real, atol=1e-6)
    assert torch.allclose(mean_im.float(), mean.imag, atol=1e-6)
    assert torch.allclose(var.float(), expected_var, rtol=1e-5)


def fused_and_plain(arch: str, nonlinearity: str):
    """A small network with the fused Pc(Std) and its twin with the readable modules, from seed 0."""
    torch.manual_seed(0)
    kw = dict(in_channels=1, image_size=16, num_classes=3, widths=(6, 8), n_angles=4, factorize_from=1)
    cfg = dict(kw, arch=arch, nonlinearity=nonlinearity)
    fused = PhaseCollapseNet(PhaseCollapseConfig(**cfg, fused_projection=True))
    return fused, PhaseCollapseNet(PhaseCollapseConfig(**cfg, fused_projection=False))


@pytest.mark.parametrize("arch", ["lscat", "lscat_skip"])
@pytest.mark.parametrize("nonlinearity", ["mod", "cst"])
def test_network_same_with_and_without_fusion(arch, nonlinearity, layout):
    fused, plain = fused_and_plain(arch, nonlinearity)
    plain.load_state_dict(fused.state_dict())
    x, y = torch.randn(5, 1, 16, 16), torch.tensor([0, 1, 2, 0, 1])
    losses = []
    for net in (fused, plain):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        losses.append(loss.item())
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)
    for (name, p), q in zip(fused.named_parameters(), plain.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-5, rtol=1e-4), name
    for (name, b), c in zip(fused.named_buffers(), plain.buffers()):
        assert torch.allclose(b, c, atol=1e-6), name


def _relative(o, e) -> float:
    return float((o.double() - e.double()).norm() / e.double().norm())


@pytest.mark.parametrize("training", [True, False])
def test_bf16_autocast_keeps_the_fused_path_as_accurate_as_the_plain_modules(training, layout):
    """Under bf16 autocast: bf16 products, float32 statistics. Against float64, the fused function's error is
    that of the plain modules under the same autocast (measured: fused 2.5e-3 to 4.5e-3, plain 2.3e-3 to 2.9e-3
    over the outputs and every gradient, relative Euclidean norm: the bf16 rounding of the products)."""
    results = {}
    for name in ("float64", "plain", "fused"):
        dtype = torch.float64 if name == "float64" else torch.float32
        parts = make_parts(dtype)
        std, proj = modules(dtype)
        if not training:
            with torch.no_grad():
                std(SplitFeatures.cat(make_parts(dtype, seed=5)))
            std.eval()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=name != "float64"):
            out = standardized_projection(parts, std, proj) if name == "fused" else proj(std(SplitFeatures.cat(parts)))
        g = torch.Generator().manual_seed(3)
        cotangent = [torch.randn(out.re.shape, generator=g).to(out.re.dtype) for _ in range(2)]
        grads = torch.autograd.grad((out.re, out.im), [proj.weight, *leaves(parts)], cotangent)
        results[name] = (out.re, out.im, *grads)
        if name != "float64":
            assert out.re.dtype == torch.float32 and all(gr.dtype == torch.float32 for gr in grads)
        if name == "fused":
            assert all(torch.isfinite(b).all() for b in std.buffers())  # float32 statistics
    for i, (e, p, f) in enumerate(zip(results["float64"], results["plain"], results["fused"])):
        plain, fused = _relative(p, e), _relative(f, e)
        assert fused < 2e-2 and fused < 2 * plain + 2e-3, (i, fused, plain)
        assert fused > 1e-5  # the products did run in bf16


def test_bf16_autocast_saves_bf16_activations(layout):
    parts = make_parts()
    std, proj = modules()
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            standardized_projection(parts, std, proj)
    activations = [t for t in saved if t.dim() >= 2 and t.shape[0] != 2]
    assert activations and all(t.dtype == torch.bfloat16 for t in activations)


def test_network_under_autocast_takes_the_fused_path_and_matches_the_plain_modules(monkeypatch):
    fused, plain = fused_and_plain("lscat_skip", "mod")
    plain.load_state_dict(fused.state_dict())
    calls = []
    apply = sp._StandardizedProjectionFunction.apply
    monkeypatch.setattr(sp._StandardizedProjectionFunction, "apply", lambda *a: calls.append(a[7]) or apply(*a))
    x, y = torch.randn(5, 1, 16, 16), torch.tensor([0, 1, 2, 0, 1])
    grads = []
    for net in (fused, plain):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(net(x).float(), y)
        grads.append(torch.autograd.grad(loss, list(net.parameters())))
    assert calls == [torch.bfloat16, torch.bfloat16]  # both blocks, in bf16
    for (name, _), g, h in zip(fused.named_parameters(), *grads):
        assert _relative(g, h) < 3e-2, name
