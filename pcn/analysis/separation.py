"""Class-mean separation of layer features, accumulated in one streaming pass.

For features :math:`x \\in \\mathbb{R}^D` with labels in ``K`` classes, we accumulate in
float64, per class ``c``: the count :math:`n_c`, the sum :math:`s_c = \\sum x` and the
sum of squared norms :math:`q_c = \\sum \\|x\\|^2`. Memory is ``O(K D)``, independent
of the number of images; under DDP the raw sums are all-reduced. From them
(:math:`N = \\sum n_c`, :math:`p_c = n_c / N`, :math:`\\mu_c = s_c / n_c`,
:math:`\\mu = \\sum_c p_c \\mu_c`):

* within-class variance of class c: :math:`\\sigma_c^2 = q_c / n_c - \\|\\mu_c\\|^2`
  (trace of the class covariance);
* :math:`\\mathrm{Tr}\\,\\Sigma_W = \\sum_c p_c \\sigma_c^2`,
  :math:`\\mathrm{Tr}\\,\\Sigma_B = \\sum_c p_c \\|\\mu_c - \\mu\\|^2`;
* **Fisher ratio** :math:`\\mathrm{Tr}\\,\\Sigma_B / \\mathrm{Tr}\\,\\Sigma_W` (higher = better separated);
* **CDNV** (class-distance normalized variance, Galanti et al. 2021), averaged over
  pairs :math:`i < j`: :math:`(\\sigma_i^2 + \\sigma_j^2) / (2 \\|\\mu_i - \\mu_j\\|^2)`
  (lower = better separated);
* **mean energy ratio** :math:`\\sum_c p_c \\|\\mu_c\\|^2 / (\\sum_c q_c / N)`: the share of
  the features' energy carried by class means. Phase-preserving non-linearities keep
  wavelet class means near zero (ratio near 0); the modulus does not.
* **NCM accuracy**: test samples classified by the nearest training class mean,
  :math:`\\hat y(x) = \\arg\\min_c \\|x - \\mu_c\\|_2`.

Feature definition (a parameter): ``flatten`` uses the whole map, real and imaginary
parts stacked as separate real coordinates (``D = 2 K h w`` for a complex block
output); ``spatial_mean`` averages over space first (``D = 2K``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from pcn.nn.collectives import all_reduce_sum_

#: Valid ``evaluate.feature`` values (see the module docstring).
FEATURES = ("spatial_mean", "flatten")


@dataclass(frozen=True)
class LayerMetric:
    """How to show one per-layer measure."""

    label: str
    log_scale: bool
    higher_separates: bool          # a larger value means better separated classes


#: The per-layer measures, in the order they are reported.
LAYER_METRICS = {
    "ncm_accuracy": LayerMetric("NCM test accuracy", False, True),
    "fisher_ratio": LayerMetric("Fisher ratio Tr B / Tr W", True, True),
    "cdnv": LayerMetric("class-distance normalized variance (CDNV)", True, False),
    "mean_energy_ratio": LayerMetric("share of energy in class means", False, True),
}


def feature_vectors(layer_output: Tensor, feature: str) -> Tensor:
    """(B, C, h, w) real map -> (B, D) float64 vectors."""
    if feature == "flatten":
        return layer_output.flatten(1).double()
    if feature == "spatial_mean":
        return layer_output.mean(dim=(2, 3)).double()
    raise ValueError(f"unknown feature definition {feature!r}; valid: {', '.join(FEATURES)}")


class ClassStatistics:
    """Streaming per-class count, sum and sum of squared norms (float64)."""

    def __init__(self, n_classes: int, dim: int, device: torch.device | str = "cpu"):
        self.n_classes, self.dim = n_classes, dim
        self.counts = torch.zeros(n_classes, dtype=torch.float64, device=device)
        self.sums = torch.zeros(n_classes, dim, dtype=torch.float64, device=device)
        self.sq_norms = torch.zeros(n_classes, dtype=torch.float64, device=device)

    def update(self, x: Tensor, labels: Tensor) -> None:
        """Add a batch ``x`` (B, D) with ``labels`` (B,)."""
        x = x.to(torch.float64)
        onehot = torch.nn.functional.one_hot(labels.to(x.device), self.n_classes).to(torch.float64)  # (B, K)
        self.counts += onehot.sum(0)
        self.sums += onehot.T @ x
        self.sq_norms += onehot.T @ (x * x).sum(1)

    def all_reduce(self) -> None:
        """Sum the raw statistics over all ranks (no-op outside torch.distributed)."""
        for t in (self.counts, self.sums, self.sq_norms):
            all_reduce_sum_(t)

    def means(self) -> Tensor:
        return self.sums / self.counts.clamp_min(1)[:, None]

    def measures(self) -> dict[str, float]:
        present = self.counts > 0
        n, mu, q = self.counts[present], self.means()[present], self.sq_norms[present]
        total = n.sum()
        p = n / total
        mean_sq = (mu * mu).sum(1)
        var_c = (q / n - mean_sq).clamp_min(0)
        global_mean = (p[:, None] * mu).sum(0)
        tr_w = (p * var_c).sum()
        tr_b = (p * ((mu - global_mean) ** 2).sum(1)).sum()
        k = len(n)
        dist2 = torch.cdist(mu, mu) ** 2
        iu = torch.triu_indices(k, k, 1)
        pair_var = (var_c[:, None] + var_c[None, :])[iu[0], iu[1]]
        cdnv = (pair_var / (2 * dist2[iu[0], iu[1]].clamp_min(1e-300))).mean()
        energy = q.sum() / total
        return {"fisher_ratio": float(tr_b / tr_w) if tr_w > 0 else float("inf"),
                "trace_within": float(tr_w), "trace_between": float(tr_b), "cdnv": float(cdnv),
                "mean_energy_ratio": float((p * mean_sq).sum() / energy) if energy > 0 else 0.0}


class NearestMeanCounter:
    """Counts test samples whose nearest class mean (Euclidean) is their label."""

    def __init__(self, means: Tensor):
        self.means = means.to(torch.float64)                # (K, D)
        self.mean_sq = (self.means * self.means).sum(1)     # (K,)
        self.correct = torch.zeros((), dtype=torch.float64, device=means.device)
        self.total = torch.zeros((), dtype=torch.float64, device=means.device)

    def predict(self, x: Tensor) -> Tensor:
        x = x.to(torch.float64)
        # ||x - mu||^2 = ||x||^2 - 2 x.mu + ||mu||^2; ||x||^2 does not change the argmin
        return (self.mean_sq[None, :] - 2 * x @ self.means.T).argmin(1)

    def update(self, x: Tensor, labels: Tensor) -> None:
        self.correct += (self.predict(x) == labels.to(x.device)).sum()
        self.total += labels.numel()

    def all_reduce(self) -> None:
        for t in (self.correct, self.total):
            all_reduce_sum_(t)

    def accuracy(self) -> float:
        return float(self.correct / self.total.clamp_min(1))


@torch.inference_mode()
def layer_separation(extract, train_loader, test_loader, n_classes: int, feature: str,
                     device: torch.device, max_train_samples: int = 0) -> list[dict[str, float]]:
    """Separation measures of every layer returned by ``extract(images) -> list[(B, C, h, w)]``.

    Pass 1 over ``train_loader`` accumulates class statistics (means, variances);
    pass 2 over ``test_loader`` counts nearest-class-mean hits. Returns one dict per layer
    with ``ncm_accuracy`` and the measures of :meth:`ClassStatistics.measures`
    (computed on the training features).
    """
    stats: list[ClassStatistics] | None = None
    seen = 0
    for images, labels in train_loader:
        if max_train_samples and seen >= max_train_samples:
            break
        if max_train_samples:
            images, labels = images[:max_train_samples - seen], labels[:max_train_samples - seen]
        feats = [feature_vectors(f, feature) for f in extract(images.to(device))]
        if stats is None:
            stats = [ClassStatistics(n_classes, f.shape[1], device) for f in feats]
        for s, f in zip(stats, feats):
            s.update(f, labels)
        seen += labels.numel()
    if stats is None:
        raise ValueError("layer_separation: the training loader is empty")
    for s in stats:
        s.all_reduce()
    missing = torch.nonzero(stats[0].counts == 0).flatten().tolist()
    if missing:
        limit = f"the first {max_train_samples} training images" if max_train_samples else "the training images"
        raise ValueError(f"{limit} hold no image of classes {missing}, so their class means are undefined; "
                         "raise evaluate.max_train_samples (0: all training images)")
    counters = [NearestMeanCounter(s.means()) for s in stats]
    for images, labels in test_loader:
        for c, f in zip(counters, extract(images.to(device))):
            c.update(feature_vectors(f, feature), labels)
    results = []
    for s, c in zip(stats, counters):
        c.all_reduce()
        results.append({"ncm_accuracy": c.accuracy(), **s.measures()})
    return results
