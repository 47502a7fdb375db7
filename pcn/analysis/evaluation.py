"""A trained model's test accuracy, class separation and zero fractions, in one pass over the test split.

What the evaluate stage measures is the composition :func:`three_pass_evaluation` (the readable specification):

1. the test accuracy, top-1, top-5 and loss (:func:`pcn.train.epoch.run_test_pass`);
2. the separation measures of every view (:func:`pcn.analysis.separation.layer_separation` at the places of
   :func:`pcn.analysis.views.layer_views`): a pass over the training split for the class statistics, then one
   over the test split;
3. the fraction of exact zeros of every layer's non-linearity outputs (:func:`pcn.analysis.activations.zero_fractions`),

each of which reads the whole test split and runs the model on it. :func:`evaluate_model` computes the same numbers,
bit for bit (tests/analysis/test_evaluation.py), with one pass over the test split and one forward pass per test
batch: the views of a batch come with its non-linearity outputs (hooks on a ResNet's non-linearity modules; the
parts of rho of every block of a phase-collapse network, :meth:`pcn.nn.phase_collapse.PhaseCollapseNet.probe_pass`)
and its last layer's features, from which the network's head gives the logits.

The separation rows get a ``zero_fraction`` column: for layer ``j >= 1`` at place ``rho``, the zero fraction
:math:`z_j` of the layer (NaN where not measurable), NaN at every other place.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor, nn

from pcn.analysis.activations import ZeroCounts, counting_zeros, zero_fractions
from pcn.analysis.separation import add_test_views, layer_separation, separation_rows, train_statistics
from pcn.analysis.views import layer_views
from pcn.train.epoch import EpochStats, checked_stats, loss_and_hits, run_test_pass

Batches = Iterable[tuple[Tensor, Tensor]]


def with_zero_fractions(rows: list[dict], zeros: list[float | None]) -> list[float | None]:
    """Fill the ``zero_fraction`` of every separation row (module docstring) from the per-layer ``zeros``
    (layer 1 first); returns ``zeros`` padded with None to the number of layers."""
    n_layers = max(r["layer"] for r in rows)
    zeros = zeros + [None] * (n_layers - len(zeros))
    for r in rows:  # layer j >= 1: zeros[j - 1]
        z = zeros[r["layer"] - 1] if r["place"] == "rho" else None
        r["zero_fraction"] = math.nan if z is None else z
    return zeros


def three_pass_evaluation(
    model: nn.Module, train_batches: Batches, test_batches: Batches, *settings
) -> tuple[EpochStats, list[dict], list[float | None]]:
    """The specification of :func:`evaluate_model`: its three measures one after the other, each passing over
    ``test_batches`` (which must be iterable three times, e.g. a list). ``settings``: ``num_classes, device,
    probe_dim, fisher_eps[, max_train_samples]``, as for :func:`evaluate_model`."""
    device = settings[1]
    acc = run_test_pass(model, test_batches, device)
    rows = layer_separation(lambda images: layer_views(model, images), train_batches, test_batches, *settings)
    zeros = zero_fractions(model, test_batches, device) or []
    return acc, rows, with_zero_fractions(rows, zeros)


def _probed_forward(model: nn.Module, images: Tensor, zeros: ZeroCounts) -> tuple[Tensor, list[dict[str, Tensor]]]:
    """The logits (B, K) and the views of :func:`layer_views` of ``images``, from one forward pass; the zeros of
    a phase-collapse network's rho outputs are added to ``zeros`` (a ResNet's are counted by hooks)."""
    if hasattr(model, "probe_pass"):
        points, rho_parts, features = model.probe_pass(images)
        for layer, parts in enumerate(rho_parts):
            for part in parts:  # the parts of rho's output: their counts add up to those of the whole
                zeros.add(layer, part)
        return model.classifier(features), [{"input": images}, *points]
    views = layer_views(model, images)
    return model.head(views[-1]["block"]), views


@torch.inference_mode()
def evaluate_model(
    model: nn.Module,
    train_batches: Batches,
    test_batches: Batches,
    num_classes: int,
    device: torch.device,
    probe_dim: int,
    fisher_eps: float,
    max_train_samples: int = 0,
) -> tuple[EpochStats, list[dict], list[float | None]]:
    """Test accuracy, separation rows (with their ``zero_fraction``) and per-layer zero fractions of ``model``
    (module docstring), with one pass over ``test_batches``: the same numbers as :func:`three_pass_evaluation`.

    Parameters
    ----------
    model : nn.Module
        A :class:`~pcn.nn.phase_collapse.PhaseCollapseNet`, a ResNet of :mod:`pcn.nn.resnet` or a
        :class:`~pcn.nn.scattering.ScatteringNet`; put in evaluation mode.
    train_batches, test_batches : iterables of (images (B, C, H, W), labels (B,))
        The training split (class statistics: its first ``max_train_samples`` images if > 0) and the test split.
    num_classes, probe_dim, fisher_eps, max_train_samples
        As :func:`pcn.analysis.separation.layer_separation`.

    Returns
    -------
    accuracy : EpochStats
        Loss, top-1 and top-5 accuracy over the test split (:func:`pcn.train.epoch.run_test_pass`).
    rows : list of dict
        One row per (layer, place, feature): the measures of :data:`pcn.analysis.separation.MEASURES`, ``dim``
        and ``zero_fraction``.
    zeros : list of float or None
        :math:`z_j` of layers ``j = 1 ... L`` (None where not measurable).
    """
    model.eval()
    stats = train_statistics(
        lambda images: layer_views(model, images), train_batches, num_classes, device, probe_dim, max_train_samples
    )
    totals, count, zeros = torch.zeros(3, dtype=torch.float64, device=device), 0, ZeroCounts()
    with counting_zeros(model, zeros):
        for images, labels in test_batches:
            logits, views = _probed_forward(model, images.to(device), zeros)
            totals += loss_and_hits(logits.float(), labels)
            count += labels.shape[0]
            add_test_views(stats, views, labels)
    accuracy = checked_stats(totals, count, device)  # a non-finite loss stops here, as in the specification
    rows = separation_rows(stats, fisher_eps)
    measurable = hasattr(model, "nonlinearity_modules") or hasattr(model, "nonlinearity_outputs")
    return accuracy, rows, with_zero_fractions(rows, zeros.fractions() if measurable else [])
