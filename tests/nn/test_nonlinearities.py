"""Every non-linearity's values against its formula (paper-spec.md, section 3), computed independently in NumPy
complex arithmetic, with per-channel parameters that differ from their initial values."""

import subprocess
import sys

import numpy as np
import pytest
import torch

from pcn import names
from pcn.nn.features import SplitFeatures
from pcn.nn.nonlinearities import (
    LSCAT_REGISTRY,
    PHASE_EPS,
    RESNET_REGISTRY,
    lscat_nonlinearity,
    resnet_nonlinearity,
)

from conftest import ROOT

C = 5


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


#: rho(z) with lam, g, b of shape (1, C, 1, 1): the formulas of paper-spec.md, table of section 3.1.
FORMULAS = {
    "mod": lambda z, lam, g, b: np.abs(z),
    "cst": lambda z, lam, g, b: np.maximum(1 - lam / (np.abs(z) + PHASE_EPS), 0) * z,
    "ms": lambda z, lam, g, b: sigmoid(g * np.abs(z) + b) * z / (np.abs(z) + PHASE_EPS),
    "mc": lambda z, lam, g, b: z / (np.abs(z) + PHASE_EPS),
    "tanh": lambda z, lam, g, b: np.tanh(np.abs(z)) * z / (np.abs(z) + PHASE_EPS),
    "identity": lambda z, lam, g, b: z,
    "relu": lambda z, lam, g, b: np.maximum(z.real, 0) + 1j * np.maximum(z.imag, 0),
}


def data():
    rng = np.random.default_rng(0)
    z = (rng.normal(size=(3, C, 4, 4)) + 1j * rng.normal(size=(3, C, 4, 4))) * rng.uniform(0.02, 2, (1, C, 1, 1))
    lam, g, b = (rng.uniform(0.05, 0.8, C), rng.uniform(0.5, 3.0, C), rng.uniform(-1.0, 1.0, C))
    return z, lam, g, b


def with_parameters(rho, lam, g, b):
    with torch.no_grad():
        for name, value in (("threshold", lam), ("gain", g), ("bias", b)):
            if hasattr(rho, name):
                getattr(rho, name).copy_(torch.tensor(value, dtype=torch.float32))
    return rho


@pytest.mark.parametrize("kind", list(FORMULAS))
def test_complex_channels_follow_the_formula(kind):
    z, lam, g, b = data()
    rho = with_parameters(lscat_nonlinearity(kind, C, 0), lam, g, b)
    with torch.no_grad():
        out = rho(
            SplitFeatures(re=torch.tensor(z.real, dtype=torch.float32), im=torch.tensor(z.imag, dtype=torch.float32))
        )
    expected = FORMULAS[kind](z, *(p.reshape(1, C, 1, 1) for p in (lam, g, b)))
    got = out.real.numpy() if kind == "mod" else out.re.numpy() + 1j * out.im.numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", list(FORMULAS))
def test_real_channels_follow_the_formula_with_z_real(kind):
    z, lam, g, b = data()
    x = z.real
    rho = with_parameters(lscat_nonlinearity(kind, 0, C), lam, g, b)
    with torch.no_grad():
        out = rho(SplitFeatures(real=torch.tensor(x, dtype=torch.float32))).real.numpy()
    expected = FORMULAS[kind](x.astype(complex), *(p.reshape(1, C, 1, 1) for p in (lam, g, b))).real
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_parameters_are_per_channel_and_start_at_the_reference_values():
    assert torch.equal(lscat_nonlinearity("cst", 3, 2).threshold, torch.full((5,), 0.1))
    ms = lscat_nonlinearity("ms", 3, 2)
    assert torch.equal(ms.gain, torch.ones(5)) and torch.equal(ms.bias, torch.zeros(5))
    assert not list(lscat_nonlinearity("cst", 3, 2, learned=False).parameters())


RESNET_FORMULAS = {
    "relu": lambda x, t: np.maximum(x, 0),
    "abs": lambda x, t: np.abs(x),
    "thresh": lambda x, t: np.sign(x) * np.maximum(np.abs(x) - t, 0),  # real soft-thresholding
    "absdead": lambda x, t: np.maximum(np.abs(x) - t, 0),  # absolute value with a dead zone
    "identity": lambda x, t: x,
    "tanh": lambda x, t: np.tanh(x),
    "powfixed": lambda x, t: x / (1 + np.abs(x)),
}


@pytest.mark.parametrize("kind", list(RESNET_FORMULAS))
def test_resnet_nonlinearities_follow_their_formula(kind):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, C, 3, 3)) * 2
    t = rng.uniform(0.1, 1.5, C)
    nl = resnet_nonlinearity(kind, C, True, 1.0)
    if kind in ("thresh", "absdead"):
        with torch.no_grad():  # b = softplus(beta)
            nl.beta.copy_(torch.tensor(np.log(np.expm1(t)), dtype=torch.float32))
    out = nl(torch.tensor(x, dtype=torch.float32)).detach().numpy()
    np.testing.assert_allclose(out, RESNET_FORMULAS[kind](x, t.reshape(1, C, 1, 1)), rtol=1e-5, atol=1e-6)


def lscat_rho(kind: str):
    """rho of complex numbers z (numpy, (3, C, 4, 4)) through the LScat non-linearity ``kind``, as complex numbers."""
    _, lam, g, b = data()
    rho = with_parameters(lscat_nonlinearity(kind, C, 0), lam, g, b)

    def apply(z):
        with torch.no_grad():
            f = torch.tensor
            out = rho(SplitFeatures(re=f(z.real, dtype=torch.float32), im=f(z.imag, dtype=torch.float32)))
        return out.real.numpy() + 0j if out.re is None else out.re.numpy() + 1j * out.im.numpy()

    return apply


def resnet_rho(kind: str):
    """rho of real numbers x (numpy, (2, C, 3, 3)) through the ResNet non-linearity ``kind``."""
    nl = resnet_nonlinearity(kind, C, True, 0.5)
    return lambda x: nl(torch.tensor(x.real, dtype=torch.float32)).detach().numpy() + 0j


def observed_family(rho, z, phases) -> str:
    """The family of ``rho`` (pcn.names) from what it does to ``z`` when each entry's phase turns by ``phases``:
    a phase collapse does not see the turn, rho(u z) = rho(z); a phase-preserving rho turns with it,
    rho(u z) = u rho(z), and multiplies z by a factor >= 0, rho(z) = f z with f >= 0, without being linear
    (rho(2 z) != 2 rho(z)); anything else is other."""

    def close(a, b):
        return np.allclose(a, b, rtol=1e-4, atol=1e-5)

    out, turned = rho(z), rho(phases * z)
    if close(turned, out):
        return names.PHASE_COLLAPSE
    factor = out * np.conj(z)  # f |z|^2 where rho(z) = f z
    parallel = close(factor.imag, 0) and (factor.real >= -1e-6).all()
    if close(turned, phases * out) and parallel and not close(rho(2 * z), 2 * out):
        return names.PHASE_PRESERVING
    return names.OTHER


@pytest.mark.parametrize("kind", names.LSCAT_NONLINEARITIES)
def test_each_lscat_nonlinearity_does_what_its_family_says(kind):
    z, *_ = data()
    phases = np.exp(1j * np.random.default_rng(2).uniform(0.3, 2 * np.pi - 0.3, z.shape))
    assert observed_family(lscat_rho(kind), z, phases) == names.LSCAT_FAMILIES[kind]
    x, signs = z.real + 0j, np.where(np.random.default_rng(3).random(z.shape) < 0.5, -1.0, 1.0)
    assert observed_family(lscat_rho(kind), x, signs) == names.LSCAT_FAMILIES[kind]  # on real numbers: the sign


@pytest.mark.parametrize("kind", names.RESNET_NONLINEARITIES)
def test_each_resnet_nonlinearity_does_what_its_family_says(kind):
    x = np.random.default_rng(4).normal(size=(2, C, 3, 3)) * 2 + 0j
    signs = np.where(np.random.default_rng(5).random(x.shape) < 0.5, -1.0, 1.0)
    assert observed_family(resnet_rho(kind), x, signs) == names.RESNET_FAMILIES[kind]


def test_the_registries_hold_the_names_of_pcn_names():
    """The registries are checked against pcn.names at import: a name listed there and not registered stops it."""
    assert set(LSCAT_REGISTRY) == set(names.LSCAT_NONLINEARITIES)
    assert set(RESNET_REGISTRY) == set(names.RESNET_NONLINEARITIES)
    assert {k: cls.kind for k, cls in LSCAT_REGISTRY.items()} == {k: k for k in LSCAT_REGISTRY}
    script = "import pcn.names as n\nn.RESNET_NONLINEARITIES += ('softsign',)\nimport pcn.nn.nonlinearities\n"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode != 0 and "pcn.names lists" in result.stderr and "softsign" in result.stderr
