"""Held-out separation measures against independent computations (numpy, scikit-learn) on fixed features."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import RidgeClassifier
from sklearn.neighbors import NearestCentroid

from pcn.analysis.separation import (
    RIDGE_GRID,
    ViewStatistics,
    feature_vectors,
    layer_separation,
    projection_seed,
    random_projection,
)
from pcn.nn.features import SplitFeatures
from pcn.nn.nonlinearities import lscat_nonlinearity


def gaussian_classes(n_train=300, n_test=200, k=4, d=6, spread=0.8, seed=0):
    g = np.random.default_rng(seed)
    means = g.normal(size=(k, d)) * spread
    mix = g.normal(size=(d, d))  # correlated within-class noise
    y, yt = g.integers(0, k, n_train), g.integers(0, k, n_test)
    x = means[y] + g.normal(size=(n_train, d)) @ mix
    xt = means[yt] + g.normal(size=(n_test, d)) @ mix
    return x, y, xt, yt


def statistics(x, y, xt, yt, k, projection=None) -> ViewStatistics:
    s = ViewStatistics(k, x.shape[1], projection)
    for i in range(0, len(y), 64):  # streamed in batches
        s.add_train(torch.from_numpy(x[i : i + 64]), torch.from_numpy(y[i : i + 64]))
    for i in range(0, len(yt), 64):
        s.add_test(torch.from_numpy(xt[i : i + 64]), torch.from_numpy(yt[i : i + 64]))
    return s


def numpy_gcv_ridge(x, y, xt, yt, k):
    """The probe written out: explicit hat matrix for GCV, then scikit-learn's ridge classifier at that strength."""
    n = len(y)
    mu = x.mean(0)
    xc = x - mu
    yc = np.eye(k)[y] - np.eye(k)[y].mean(0)
    cov = xc.T @ xc / n
    best = None
    for r in reversed(RIDGE_GRID):
        lam = r * np.trace(cov) / x.shape[1]
        hat = xc @ np.linalg.solve(xc.T @ xc + n * lam * np.eye(x.shape[1]), xc.T)
        rss = ((yc - hat @ yc) ** 2).sum() / n
        gcv = rss / (1 - np.trace(hat) / n) ** 2 if np.trace(hat) <= n / 2 else np.inf
        if best is None or gcv < best[0]:
            best = (gcv, lam)
    clf = RidgeClassifier(alpha=n * best[1]).fit(x, y)  # ||X_c w - y||^2 + alpha ||w||^2, targets +-1
    return clf.score(xt, yt)


def numpy_measures(x, y, xt, yt, k, eps):
    n = len(y)
    p = np.bincount(y, minlength=k) / n
    mu = np.stack([x[y == c].mean(0) for c in range(k)])
    nu = np.stack([xt[yt == c].mean(0) for c in range(k)])
    within = sum(((x[y == c] - mu[c]).T @ (x[y == c] - mu[c])) for c in range(k)) / n
    reg = eps * np.trace(within) / x.shape[1]
    mu_c, nu_c = mu - p @ mu, nu - p @ nu
    between = (mu_c * p[:, None]).T @ nu_c
    energy = (x**2).sum(1).mean()
    return {
        "fisher": np.trace(np.linalg.solve(within + reg * np.eye(x.shape[1]), between)),
        "class_mean_share": (p * (mu * nu).sum(1)).sum() / energy,
        "between_share": (p * (mu_c * nu_c).sum(1)).sum() / energy,
        "trace_ratio": np.trace(between) / np.trace(within),
    }


def test_every_measure_equals_an_independent_computation():
    x, y, xt, yt = gaussian_classes()
    got = statistics(x, y, xt, yt, 4).measures(fisher_eps=1e-3)
    assert got["ncm_accuracy"] == pytest.approx(NearestCentroid().fit(x, y).score(xt, yt))
    assert got["probe_accuracy"] == pytest.approx(numpy_gcv_ridge(x, y, xt, yt, 4))
    want = numpy_measures(x, y, xt, yt, 4, 1e-3)
    for key in ("fisher", "class_mean_share", "between_share"):
        assert got[key] == pytest.approx(want[key], rel=1e-9), key


def test_fisher_ratio_is_invariant_to_invertible_maps_the_trace_ratio_is_not():
    x, y, xt, yt = gaussian_classes(n_train=2000)
    a = np.random.default_rng(1).normal(size=(6, 6)) + 3 * np.eye(6)
    plain = statistics(x, y, xt, yt, 4).measures(fisher_eps=1e-10)
    mapped = statistics(x @ a, y, xt @ a, yt, 4).measures(fisher_eps=1e-10)
    assert mapped["fisher"] == pytest.approx(plain["fisher"], rel=1e-6)
    assert mapped["probe_accuracy"] == pytest.approx(plain["probe_accuracy"], abs=0.011)
    ratio, ratio_mapped = (numpy_measures(u, y, ut, yt, 4, 0)["trace_ratio"] for u, ut in ((x, xt), (x @ a, xt @ a)))
    assert abs(ratio_mapped / ratio - 1) > 0.05


def test_crossfitted_shares_are_near_zero_for_random_labels_where_the_plugin_is_not():
    g = np.random.default_rng(2)
    x, xt = g.normal(size=(400, 50)), g.normal(size=(400, 50))
    y, yt = g.integers(0, 10, 400), g.integers(0, 10, 400)
    got = statistics(x, y, xt, yt, 10).measures(1e-3)
    mu = np.stack([x[y == c].mean(0) for c in range(10)])
    plugin = (np.bincount(y) / 400 * ((mu - x.mean(0)) ** 2).sum(1)).sum() / (x**2).sum(1).mean()
    assert plugin > 0.015  # about (K - 1) / N
    assert abs(got["between_share"]) < 0.3 * plugin and abs(got["fisher"]) < 0.2


def _random_phase_classes(n, seed):
    """Complex channels z = a_c e^{i theta}: the class sets the amplitudes, the phase is uniform (circularly
    symmetric classes, as translation-invariant classes make wavelet coefficients)."""
    g = torch.Generator().manual_seed(seed)
    amplitudes = torch.tensor([[2.0, 0.5, 1.0], [0.5, 2.0, 1.0], [1.0, 1.0, 0.3]])
    y = torch.randint(0, 3, (n,), generator=g)
    theta = 2 * torch.pi * torch.rand(n, 3, 4, 4, generator=g)
    a = amplitudes[y][:, :, None, None] * (1 + 0.1 * torch.randn(n, 3, 4, 4, generator=g))
    return SplitFeatures(re=a * torch.cos(theta), im=a * torch.sin(theta)), y


@pytest.mark.parametrize("kind", ["cst", "ms", "mc", "tanh", "identity"])
def test_phase_preserving_rho_keeps_class_means_near_zero_the_modulus_does_not(kind):
    z, y = _random_phase_classes(600, 0)
    zt, yt = _random_phase_classes(600, 1)
    shares = {}
    for rho in (kind, "mod"):
        f = lscat_nonlinearity(rho, 3, 0).eval()
        with torch.no_grad():
            x, xt = (feature_vectors(f(v).stacked_real(), "spatial_mean").numpy() for v in (z, zt))
        shares[rho] = statistics(x, y.numpy(), xt, yt.numpy(), 3).measures(1e-3)
    assert abs(shares[kind]["class_mean_share"]) < 0.01 and abs(shares[kind]["between_share"]) < 0.01
    assert shares["mod"]["class_mean_share"] > 0.5 and shares["mod"]["between_share"] > 0.1
    assert shares["mod"]["ncm_accuracy"] > 0.9 > 0.6 > shares[kind]["ncm_accuracy"]


def test_wide_views_are_randomly_projected_and_still_separate():
    g = np.random.default_rng(3)
    means = g.normal(size=(4, 300)) * 0.3
    y, yt = g.integers(0, 4, 300), g.integers(0, 4, 200)
    x, xt = means[y] + g.normal(size=(300, 300)), means[yt] + g.normal(size=(200, 300))
    assert random_projection(300, 300, 0) is None
    r = random_projection(300, 32, projection_seed(1, "block", "flatten"))
    assert r.shape == (300, 32) and torch.equal(r, random_projection(300, 32, projection_seed(1, "block", "flatten")))
    assert abs(float(r.pow(2).sum(1).mean()) - 1) < 0.1  # E ||R^T e_i||^2 = 1: distances kept on average
    projected = statistics(x, y, xt, yt, 4, r).measures(1e-3)
    full = statistics(x, y, xt, yt, 4).measures(1e-3)
    assert projected["ncm_accuracy"] == full["ncm_accuracy"]  # NCM and shares use every coordinate
    assert full["probe_accuracy"] > 0.95 and projected["probe_accuracy"] > 0.5  # a projection loses some


def test_layer_separation_rows_per_layer_place_and_feature():
    torch.manual_seed(0)
    labels = torch.arange(48) % 3
    images = torch.randn(48, 2, 4, 4) + labels[:, None, None, None]
    batches = [(images[i : i + 16], labels[i : i + 16]) for i in range(0, 48, 16)]
    rows = layer_separation(
        lambda im: [{"input": im}, {"rho": im.abs(), "block": 2 * im}],
        batches,
        batches,
        3,
        torch.device("cpu"),
        probe_dim=8,
        fisher_eps=1e-3,
    )
    keys = [(r["layer"], r["place"], r["feature"], r["dim"]) for r in rows]
    assert keys == [
        (0, "input", "spatial_mean", 2),
        (0, "input", "flatten", 32),
        (1, "rho", "spatial_mean", 2),
        (1, "rho", "flatten", 32),
        (1, "block", "spatial_mean", 2),
        (1, "block", "flatten", 32),
    ]
    assert rows[4]["ncm_accuracy"] == rows[0]["ncm_accuracy"] and rows[4]["fisher"] == pytest.approx(rows[0]["fisher"])
    with pytest.raises(ValueError, match="valid: spatial_mean, flatten"):
        feature_vectors(images, "pool")


def test_too_few_training_samples_for_every_class_is_refused_by_name():
    x = torch.randn(40, 2, 2, 2)
    labels = torch.arange(40) // 10  # sorted by class, as the data are
    batches = [(x[i : i + 8], labels[i : i + 8]) for i in range(0, 40, 8)]
    with pytest.raises(
        ValueError,
        match=r"first 12 training images hold no image of classes \[2, 3\].*"
        r"evaluate\.max_train_samples",
    ):
        layer_separation(
            lambda im: [{"input": im}], batches, batches, 4, torch.device("cpu"), 4, 1e-3, max_train_samples=12
        )
    assert len(layer_separation(lambda im: [{"input": im}], batches, batches, 4, torch.device("cpu"), 4, 1e-3)) == 2
