"""How well classes separate in a layer's features: held-out measures, accumulated in streaming passes.

A *view* is one place of one layer (:mod:`pcn.analysis.views`) under one feature definition:
``flatten`` (the whole map, ``D = C h w`` real coordinates) or ``spatial_mean`` (averaged over space
first, ``D = C``: the translation-invariant features). For features :math:`x \\in \\mathbb{R}^D` with
labels in ``K`` classes, the training pass accumulates in float64, per class ``c``: the count
:math:`n_c`, the sum :math:`s_c` and the energy :math:`\\sum \\|x\\|^2`; the test pass the same sums
and the nearest-class-mean hits. With :math:`N = \\sum n_c`, :math:`p_c = n_c / N`, training means
:math:`\\mu_c`, :math:`\\mu = \\sum_c p_c \\mu_c`, test means :math:`\\nu_c`, :math:`\\nu = \\sum_c p_c \\nu_c`
and :math:`E = \\frac 1N \\sum \\|x\\|^2` (training):

* ``ncm_accuracy``: test images classified by the nearest training class mean,
  :math:`\\hat y(x) = \\arg\\min_c \\|x - \\mu_c\\|_2` (on the full features).
* ``probe_accuracy``: test accuracy of a linear probe, ridge regression of the one-hot labels on the
  centred features, :math:`W = (\\Sigma + \\lambda I)^{-1} \\frac 1N X_c^\\top Y`, predicting
  :math:`\\arg\\max_c ((x - \\mu)^\\top W + p)_c`. :math:`\\lambda = r \\operatorname{Tr}\\Sigma / P` with ``r``
  chosen from :data:`RIDGE_GRID` by generalized cross-validation on the training features (Golub,
  Heath and Wahba 1979: :math:`\\mathrm{GCV}(\\lambda) = \\frac{\\mathrm{RSS}/N}{(1 - \\mathrm{df}/N)^2}`,
  :math:`\\mathrm{df} = \\sum_i e_i / (e_i + \\lambda)` over the eigenvalues :math:`e_i` of the covariance
  :math:`\\Sigma`), among the strengths with :math:`\\mathrm{df} \\le N/2` (GCV fails near interpolation,
  :math:`\\mathrm{df} \\to N`, where it rewards fitting noise); so the test split chooses nothing.
* ``fisher``: the Fisher ratio :math:`\\operatorname{Tr}((\\Sigma_W + \\varepsilon I)^{-1} \\Sigma_B)`, invariant to
  invertible linear maps of the features for :math:`\\varepsilon \\to 0`, unlike
  :math:`\\operatorname{Tr}\\Sigma_B / \\operatorname{Tr}\\Sigma_W` (which a learned projection can change at will).
  :math:`\\Sigma_W` is the training within-class covariance, :math:`\\varepsilon` = ``fisher_eps`` times
  :math:`\\operatorname{Tr}\\Sigma_W / P`; :math:`\\Sigma_B` is cross-fitted,
  :math:`\\sum_c p_c (\\mu_c - \\mu)(\\nu_c - \\nu)^\\top`,
  so the sampling noise of the class means (independent between the splits) does not inflate it
  as it inflates the plug-in estimate (the trace with training means alone is
  :math:`\\ge (K - 1)/N` times the within-class term even for random labels).
* ``class_mean_share``: :math:`\\sum_c p_c \\mu_c^\\top \\nu_c / E`, the share of the energy carried by the
  class means :math:`\\|E[x | c]\\|^2 / E\\|x\\|^2`, cross-fitted. At ``before_rho`` and ``rho`` it is the
  direct test of the paper's mechanism: near zero for wavelet coefficients of translation-invariant
  classes and for a phase-preserving rho of them, not for the modulus. It is not a separation
  measure (a common non-zero mean counts); after the normalization N (``block``) it says little.
* ``between_share``: :math:`\\sum_c p_c (\\mu_c - \\mu)^\\top (\\nu_c - \\nu) / E`, the share of the energy
  in the *differences* between class means (cross-fitted): what a phase collapse must create.

The cross-fitted quantities can be slightly negative when the true value is zero.
``probe_accuracy`` and ``fisher`` use the features projected to at most ``probe_dim`` = P
coordinates: views with ``D > P`` go through a fixed Gaussian random projection
:math:`R \\in \\mathbb{R}^{D \\times P}`, :math:`R_{ij} \\sim \\mathcal N(0, 1/P)` (float32, seeded per view by
:func:`projection_seed`; Johnson-Lindenstrauss: it keeps distances, not every linear separation),
so the covariances are ``P x P``; views with ``D <= P`` are used as they are.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import torch
from torch import Tensor

#: Feature definitions (module docstring).
FEATURES = ("spatial_mean", "flatten")
#: Candidate ridge strengths ``r`` (relative to the mean eigenvalue of the covariance) for the probe.
RIDGE_GRID = tuple(10.0**k for k in range(-6, 3))


@dataclass(frozen=True)
class Measure:
    """How to show one measure."""

    label: str
    log_scale: bool
    higher_separates: bool | None  # None: not a separation measure (class_mean_share)


#: The measures of every view, in the order they are reported.
MEASURES = {
    "ncm_accuracy": Measure("nearest-class-mean test accuracy", False, True),
    "probe_accuracy": Measure("linear probe test accuracy (ridge)", False, True),
    "fisher": Measure("Fisher ratio Tr((Σ_W + εI)⁻¹ Σ_B), cross-fitted", True, True),
    "class_mean_share": Measure("share of energy in class means", False, None),
    "between_share": Measure("share of energy in class-mean differences", False, True),
}


def feature_vectors(view: Tensor, feature: str) -> Tensor:
    """(B, C, h, w) real map -> (B, D) float64 vectors."""
    if feature == "flatten":
        return view.flatten(1).double()
    if feature == "spatial_mean":
        return view.mean(dim=(2, 3)).double()
    raise ValueError(f"unknown feature definition {feature!r}; valid: {', '.join(FEATURES)}")


def projection_seed(layer: int, place: str, feature: str) -> int:
    """The seed of a view's random projection: fixed by its name, the same in every run."""
    return zlib.crc32(f"{layer}/{place}/{feature}".encode())


def random_projection(dim: int, probe_dim: int, seed: int) -> Tensor | None:
    """:math:`R` (dim, probe_dim) float32 with entries N(0, 1/probe_dim), or None when ``dim <= probe_dim``."""
    if dim <= probe_dim:
        return None
    g = torch.Generator().manual_seed(seed)
    return torch.randn(dim, probe_dim, generator=g) / probe_dim**0.5


class ViewStatistics:
    """Training and test statistics of one view (module docstring), then its measures."""

    def __init__(self, n_classes: int, dim: int, projection: Tensor | None, device: torch.device | str = "cpu"):
        self.n_classes, self.dim = n_classes, dim
        self.projection = None if projection is None else projection.to(device)
        p = dim if projection is None else projection.shape[1]
        z = dict(dtype=torch.float64, device=device)
        self.counts, self.sums, self.energy = torch.zeros(n_classes, **z), torch.zeros(n_classes, dim, **z), 0.0
        self.gram, self.psums = torch.zeros(p, p, **z), torch.zeros(n_classes, p, **z)
        self.test_counts, self.test_sums = torch.zeros(n_classes, **z), torch.zeros(n_classes, dim, **z)
        self.test_projected: list[Tensor] = []
        self.test_labels: list[Tensor] = []
        self.ncm_correct = 0
        self._ncm_means: Tensor | None = None  # (K, D), fixed after training

    def _project(self, x: Tensor) -> Tensor:
        """(B, D) float64 -> (B, P) float64; the product itself in float32 (the projection is random anyway)."""
        return x if self.projection is None else (x.float() @ self.projection).double()

    def _onehot(self, labels: Tensor, x: Tensor) -> Tensor:
        return torch.nn.functional.one_hot(labels.to(x.device), self.n_classes).to(torch.float64)  # (B, K)

    def add_train(self, x: Tensor, labels: Tensor) -> None:
        """Add training features ``x`` (B, D) float64 with ``labels`` (B,)."""
        onehot = self._onehot(labels, x)
        z = self._project(x)  # (B, P)
        self.counts += onehot.sum(0)
        self.sums += onehot.T @ x
        self.energy += float((x * x).sum())
        self.gram += z.T @ z
        self.psums += onehot.T @ z

    def means(self) -> Tensor:
        """Training class means (K, D)."""
        return self.sums / self.counts.clamp_min(1)[:, None]

    def add_test(self, x: Tensor, labels: Tensor) -> None:
        """Add test features ``x`` (B, D) float64 (after every training batch)."""
        labels = labels.to(x.device)
        onehot = self._onehot(labels, x)
        self.test_counts += onehot.sum(0)
        self.test_sums += onehot.T @ x
        if self._ncm_means is None:
            self._ncm_means = self.means()
        mu = self._ncm_means
        # ||x - mu||^2 = ||x||^2 - 2 x.mu + ||mu||^2; ||x||^2 does not change the argmin
        self.ncm_correct += int((((mu * mu).sum(1)[None, :] - 2 * x @ mu.T).argmin(1) == labels).sum())
        self.test_projected.append(self._project(x))
        self.test_labels.append(labels)

    def measures(self, fisher_eps: float) -> dict[str, float]:
        """Every measure of :data:`MEASURES` (module docstring)."""
        n, k = self.counts, self.n_classes
        total = n.sum()
        p = n / total
        test_means = self.test_sums / self.test_counts.clamp_min(1)[:, None]
        mu, nu = self.means(), test_means
        mu_c, nu_c = mu - (p[:, None] * mu).sum(0), nu - (p[:, None] * nu).sum(0)
        e = self.energy / float(total)
        z_test, y_test = torch.cat(self.test_projected), torch.cat(self.test_labels)
        return {
            "ncm_accuracy": self.ncm_correct / max(1, len(y_test)),
            "probe_accuracy": ridge_probe_accuracy(self.gram, self.psums, n, z_test, y_test, k),
            "fisher": crossfit_fisher(self.gram, self.psums, n, z_test, y_test, fisher_eps),
            "class_mean_share": float((p * (mu * nu).sum(1)).sum() / e) if e > 0 else 0.0,
            "between_share": float((p * (mu_c * nu_c).sum(1)).sum() / e) if e > 0 else 0.0,
        }


def _within_class_covariance(gram: Tensor, class_sums: Tensor, counts: Tensor) -> Tensor:
    """:math:`\\Sigma_W = \\frac 1N (\\sum x x^\\top - \\sum_c s_c s_c^\\top / n_c)` (P, P)."""
    present = counts > 0
    s, n = class_sums[present], counts[present]
    return (gram - (s.T / n) @ s) / counts.sum()


def ridge_probe_accuracy(
    gram: Tensor, class_sums: Tensor, counts: Tensor, x_test: Tensor, y_test: Tensor, n_classes: int
) -> float:
    """Test accuracy of the ridge probe whose strength is chosen by GCV on the training moments.

    ``gram`` (P, P) = :math:`\\sum x x^\\top`, ``class_sums`` (K, P), ``counts`` (K,) over the training features;
    ``x_test`` (M, P), ``y_test`` (M,).
    """
    n = counts.sum()
    p = counts / n
    mean = class_sums.sum(0) / n  # (P,)
    cov = gram / n - torch.outer(mean, mean)  # (P, P)
    cross = (class_sums - counts[:, None] * mean).T / n  # (P, K) = X_c^T Y / N
    evals, evecs = torch.linalg.eigh(cov)
    evals = evals.clamp_min(0)
    bv = evecs.T @ cross  # (P, K)
    b2 = (bv * bv).sum(1)  # (P,)
    scale = float(evals.mean()) or 1.0
    y_energy = float(1 - (p * p).sum())  # Tr(Y_c^T Y_c) / N
    best = None
    for r in reversed(RIDGE_GRID):  # ties (and all df > N / 2) keep the strongest
        lam = r * scale
        rss = y_energy - 2 * float((b2 / (evals + lam)).sum()) + float((evals * b2 / (evals + lam) ** 2).sum())
        df = float((evals / (evals + lam)).sum())
        gcv = rss / (1 - df / float(n)) ** 2 if df <= float(n) / 2 else float("inf")
        if best is None or gcv < best[0]:
            best = (gcv, lam)
    weights = evecs @ (bv / (evals + best[1])[:, None])  # (P, K)
    scores = (x_test - mean) @ weights + p  # (M, K)
    return float((scores.argmax(1) == y_test).double().mean()) if len(y_test) else 0.0


def crossfit_fisher(
    gram: Tensor, class_sums: Tensor, counts: Tensor, x_test: Tensor, y_test: Tensor, eps: float
) -> float:
    """The cross-fitted Fisher ratio
    :math:`\\operatorname{Tr}((\\Sigma_W + \\varepsilon I)^{-1} \\sum_c p_c (\\mu_c - \\mu)(\\nu_c - \\nu)^\\top)`,
    training :math:`\\Sigma_W` and means :math:`\\mu_c`, test means :math:`\\nu_c` (module docstring);
    ``eps`` is relative to :math:`\\operatorname{Tr}\\Sigma_W / P`."""
    n_classes, dim = class_sums.shape
    p = counts / counts.sum()
    within = _within_class_covariance(gram, class_sums, counts)
    reg = eps * float(torch.trace(within)) / dim
    onehot = torch.nn.functional.one_hot(y_test, n_classes).to(torch.float64)
    test_means = (onehot.T @ x_test) / onehot.sum(0).clamp_min(1)[:, None]  # (K, P)
    train_means = class_sums / counts.clamp_min(1)[:, None]
    mu = train_means - p @ train_means
    nu = test_means - p @ test_means
    solved = torch.linalg.solve(within + reg * torch.eye(dim, dtype=within.dtype, device=within.device), nu.T)
    return float((p * (mu * solved.T).sum(1)).sum())


def train_statistics(
    views_of, train_batches, n_classes: int, device: torch.device, probe_dim: int, max_train_samples: int = 0
) -> dict[tuple[int, str, str], ViewStatistics]:
    """Pass 1 of :func:`layer_separation`: the training statistics of every view ``(layer, place, feature)``.

    Raises ``ValueError`` if the batches are empty or miss a class.
    """
    stats: dict[tuple[int, str, str], ViewStatistics] = {}
    seen = 0
    for images, labels in train_batches:
        if max_train_samples and seen >= max_train_samples:
            break
        if max_train_samples:
            images, labels = images[: max_train_samples - seen], labels[: max_train_samples - seen]
        for layer, views in enumerate(views_of(images.to(device))):
            for place, view in views.items():
                for feature in FEATURES:
                    x = feature_vectors(view, feature)
                    key = (layer, place, feature)
                    if key not in stats:
                        projection = random_projection(x.shape[1], probe_dim, projection_seed(*key))
                        stats[key] = ViewStatistics(n_classes, x.shape[1], projection, device)
                    stats[key].add_train(x, labels)
        seen += labels.numel()
    if not stats:
        raise ValueError("layer_separation: the training batches are empty")
    counts = next(iter(stats.values())).counts
    missing = torch.nonzero(counts == 0).flatten().tolist()
    if missing:
        limit = f"the first {max_train_samples} training images" if max_train_samples else "the training images"
        raise ValueError(
            f"{limit} hold no image of classes {missing}, so their class means are undefined; "
            "raise evaluate.max_train_samples (0: all training images)"
        )
    return stats


def add_test_views(stats: dict[tuple[int, str, str], ViewStatistics], views: list[dict], labels: Tensor) -> None:
    """Add the views ``[{place: (B, C, h, w)}]`` of one test batch with ``labels`` (B,) to ``stats``."""
    for layer, places in enumerate(views):
        for place, view in places.items():
            for feature in FEATURES:
                stats[(layer, place, feature)].add_test(feature_vectors(view, feature), labels)


def separation_rows(stats: dict[tuple[int, str, str], ViewStatistics], fisher_eps: float) -> list[dict]:
    """One row per view: ``layer``, ``place``, ``feature``, ``dim`` and every measure of :data:`MEASURES`."""
    return [
        {"layer": layer, "place": place, "feature": feature, "dim": s.dim, **s.measures(fisher_eps)}
        for (layer, place, feature), s in stats.items()
    ]


@torch.inference_mode()
def layer_separation(
    views_of,
    train_batches,
    test_batches,
    n_classes: int,
    device: torch.device,
    probe_dim: int,
    fisher_eps: float,
    max_train_samples: int = 0,
) -> list[dict]:
    """Every measure of every view, one row per (layer, place, feature).

    ``views_of(images) -> [{place: (B, C, h, w)}]`` (:func:`pcn.analysis.views.layer_views`). Pass 1 over
    ``train_batches`` accumulates the training statistics (the first ``max_train_samples`` images if > 0),
    pass 2 over ``test_batches`` the held-out ones.
    """
    stats = train_statistics(views_of, train_batches, n_classes, device, probe_dim, max_train_samples)
    for images, labels in test_batches:
        add_test_views(stats, views_of(images.to(device)), labels)
    return separation_rows(stats, fisher_eps)
