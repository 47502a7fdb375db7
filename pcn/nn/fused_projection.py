"""``Pc(Std(z))`` as one autograd function: the fast path of a block's standardization and projection.

:class:`pcn.nn.layers.Standardization` followed by :class:`pcn.nn.layers.ComplexProjection` is the
readable specification; this module computes the same function (tests compare values,
gradients and running statistics, and check gradients against finite differences in
float64) without materializing the concatenated input or the standardized copy. It reuses
the specification's pieces: :func:`pcn.nn.layers.batch_moments`,
:meth:`pcn.nn.layers.Standardization.update_running_statistics` and
:func:`pcn.nn.layers.complex_product`.

``Std`` is a per-channel affine map, so it folds into the projection (weight ``W = A + iB``,
K x C):

.. math::

    y = W\\,\\mathrm{diag}(s)\\,(z - \\mu) = W' z - W' \\mu, \\qquad W' = W\\,\\mathrm{diag}(s),
    \\quad s_c = (v_c + 10^{-5})^{-1/2}

The features arrive as a list of parts (complex ``(re, im)`` pairs and real tensors) whose
channels map to contiguous column ranges of ``W`` in the usual ``[complex..., real...]``
order. Two placements of the standardization, chosen by :class:`pcn.nn.fused_layout._Layout`:

* per-sample (large maps): ``s`` and ``mu`` go into the weights (``W'`` and the bias
  ``-W' mu``) and no activation is rewritten;
* folded (small maps, where the weight matrix is larger than the activations): the
  activations are standardized in the copy that folds the batch into matrix columns,
  ``zhat = (z - mu) s``, and the products use ``W`` itself.

Backward, with ``dy`` the output gradient and sums over the batch and pixels, in three parts:

* :func:`_weight_gradient`: :math:`\\partial L / \\partial W = (\\sum dy\\, z^H - (\\sum dy)\\,
  \\mu^H)\\,\\mathrm{diag}(s) = \\sum dy\\, \\hat z^H`;
* :func:`_input_gradient`: :math:`\\hat{dz} = W^H dy` per channel (times ``s``);
* :func:`_statistics_terms`: in training mode ``mu`` and ``v`` depend on ``z``, and with
  :math:`R_c = \\sum \\mathrm{Re}(\\overline{\\hat{dz}_c}\\, \\hat z_c)` the batch-norm gradient
  :math:`s(\\hat{dz} - \\overline{\\hat{dz}}) - s \\hat z R / n` adds
  :math:`\\alpha + \\beta z` per channel, :math:`\\beta = -s^2 R / n`,
  :math:`\\alpha = -s\\, W^H (\\sum dy) / n - \\beta \\mu`. In evaluation mode (running
  statistics) there is no such term.

Under torch.distributed the statistics are those of the global batch: the forward's
moments are all-reduced (:func:`pcn.nn.layers.batch_moments`), the backward all-reduces
``sum dy`` and ``R``.

Under autocast (``train.amp``, bf16) the same function runs with **bf16 products and float32
statistics**: the moments, ``s``, ``mu``, the bias, every channel sum and the accumulation of the
outputs and of the weight gradient stay in float32; the activations are saved in bf16 (half the
memory of the float32 path) and the products use the 4-multiplication complex form
(:func:`pcn.nn.fused_layout.complex_product_4`), as the plain modules do under autocast, because Gauss's form loses
accuracy in low precision. Tests bound its difference to the plain modules under autocast.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pcn.nn.collectives import all_reduce_sum_
from pcn.nn.features import SplitFeatures
from pcn.nn.fused_layout import _flat, _Layout, _Part, _parts, _product, _weights, complex_product_4
from pcn.nn.layers import STD_EPS, ComplexProjection, Standardization, batch_moments


def _weight_gradient(
    lay: _Layout,
    parts: list[_Part],
    weight: Tensor,
    g_re: Tensor,
    g_im: Tensor,
    mean_re: Tensor,
    mean_im: Tensor,
    scale: Tensor,
    standardized: bool,
) -> Tensor:
    """:math:`\\partial L / \\partial [A, B]` (2, K, C): :math:`\\sum dy\\, \\hat z^H`.

    Folded, the saved activations are ``zhat`` already; per-sample they are ``z`` and
    :math:`\\sum dy\\, \\hat z^H = (\\sum dy\\, z^H - (\\sum dy)\\, \\mu^H)\\,\\mathrm{diag}(s)`.
    """
    K, C = weight.shape[1:]
    grad = weight.new_empty(2, K, C)
    d_re, d_im = grad  # dL/dA, dL/dB (views)
    product = _product(g_re)
    g_sum = None if product is complex_product_4 else g_re + g_im
    for p in parts:
        if p.complex:  # dy z^H = (g_re + i g_im)(u - i v)^T
            re, im = product(lay.outer_sum, g_re, g_im, *p.tensors, conj_u=True, left=g_sum)
            d_re[:, p.cols], d_im[:, p.cols] = re, im
        else:
            d_re[:, p.cols] = lay.outer_sum(g_re, p.tensors[0])
            d_im[:, p.cols] = lay.outer_sum(g_im, p.tensors[0])
    if not standardized:
        sum_re, sum_im = (lay.channel_sum(g).to(weight.dtype) for g in (g_re, g_im))  # (K,)
        means = torch.stack([mean_re, mean_im])  # (2, C)
        d_re.addmm_(torch.stack([sum_re, sum_im], 1), means, alpha=-1)  # - Re((sum dy) mu^H)
        d_im.addmm_(torch.stack([sum_im, -sum_re], 1), means, alpha=-1)  # - Im((sum dy) mu^H)
        grad.mul_(scale)
    return grad


def _input_gradient(
    lay: _Layout,
    parts: list[_Part],
    weight: Tensor,
    g_re: Tensor,
    g_im: Tensor,
    scale: Tensor | None,
    wanted: list[bool],
) -> list[Tensor | None]:
    """:math:`W^H dy` for every input tensor (``W'`` per-sample, i.e. ``scale`` given), in layout rows."""
    dxs: list[Tensor | None] = []
    product = _product(g_re)
    g_sum = None if product is complex_product_4 else g_re + g_im
    flags = iter(wanted)
    for p in parts:
        want = [next(flags) for _ in p.tensors]
        if not any(want):
            dxs += [None] * len(want)
            continue
        a, b = (w.to(g_re.dtype) for w in _weights(weight, p.cols, scale))
        if p.complex:  # (A^T - i B^T)(g_re + i g_im)
            dxs += product(lay.apply, a.t(), b.t(), g_re, g_im, conj_a=True, right=g_sum)
        else:
            dxs.append(lay.apply(b.t(), g_im, lay.apply(a.t(), g_re)))
    return dxs


def _statistics_terms(
    lay: _Layout,
    parts: list[_Part],
    dxs: list[Tensor | None],
    weight: Tensor,
    grad_weight: Tensor,
    g_re: Tensor,
    g_im: Tensor,
    mean_re: Tensor,
    mean_im: Tensor,
    scale: Tensor,
    count: int,
    standardized: bool,
) -> tuple[Tensor, list[Tensor]]:
    """Per channel ``(coef, [offset_re, offset_im])`` of the statistics' gradient, ``coef x + offset``.

    Folded (``x = zhat``): ``coef = -R / n``, ``offset = -mean(dzhat)``, all to be multiplied
    by ``s``. Per-sample (``x = z``): ``coef = beta``, ``offset = alpha`` (module docstring),
    with ``R`` and ``W^H sum dy`` taken from the weight gradient.
    """
    C, n = weight.shape[2], count
    if standardized:  # channel sums over the activations
        sums = torch.zeros(3, C, dtype=weight.dtype, device=g_re.device)  # [sum dzhat_re, sum dzhat_im, R]
        for dx, (cols, imag, x) in zip(dxs, _flat(parts)):
            if dx is not None:
                sums[imag, cols] += lay.channel_sum(dx)
                sums[2, cols] += lay.channel_dot(dx, x)
        m_re, m_im, R = all_reduce_sum_(sums.view(-1)).view(3, C)
        return -R / n, [-m_re / n, -m_im / n]
    K = weight.shape[1]
    R = (weight * grad_weight).view(2 * K, C).sum(0)  # sum_k A dA + B dB
    reduced = all_reduce_sum_(torch.cat([lay.channel_sum(g).to(R.dtype) for g in (g_re, g_im)] + [R]))
    s_re, s_im, R = reduced[:K], reduced[K : 2 * K], reduced[2 * K :]
    # [A^T s_re + B^T s_im, A^T s_im - B^T s_re] from one pass over [A; B] (2K, C)
    probes = torch.stack([torch.cat([s_re, s_im]), torch.cat([s_im, -s_re])])  # (2, 2K)
    w_re, w_im = probes @ weight.reshape(2 * K, C)
    beta = -scale * scale * R / n
    return beta, [-scale * w_re / n - beta * mean_re, -scale * w_im / n - beta * mean_im]


class _StandardizedProjectionFunction(torch.autograd.Function):
    """See the module docstring. Inputs after the statistics: ``n_pairs`` (re, im) pairs, then real tensors."""

    @staticmethod
    def forward(
        ctx,
        weight: Tensor,
        mean_re: Tensor,
        mean_im: Tensor,
        scale: Tensor,
        count: int,
        batch_statistics: bool,
        n_pairs: int,
        low_dtype: torch.dtype | None,
        *tensors: Tensor,
    ):
        # weight (2, K, C) = [A, B]; mean_re, mean_im, scale (C,); tensors (B, c_i, H, W)
        # low_dtype: None (float32 products) or bf16 (products in bf16, the rest in float32: module docstring)
        with torch.autocast(tensors[0].device.type, enabled=False):  # every cast below is explicit
            return _StandardizedProjectionFunction._forward(
                ctx, weight, mean_re, mean_im, scale, count, batch_statistics, n_pairs, low_dtype, tensors
            )

    @staticmethod
    def _forward(ctx, weight, mean_re, mean_im, scale, count, batch_statistics, n_pairs, low_dtype, tensors):
        B, _, H, W = tensors[0].shape
        K = weight.shape[1]
        lay = _Layout(B, H * W)

        def cast(t: Tensor) -> Tensor:
            return t if low_dtype is None else t.to(low_dtype)

        if lay.folded:
            channel_parts = _parts(list(tensors), n_pairs)
            xs = [
                cast(lay.rows_standardized(t, m[p.cols], scale[p.cols]))
                for p in channel_parts
                for t, m in zip(p.tensors, (mean_re, mean_im))
            ]
            weight_scale = None
            out_re, out_im = lay.filled(weight.new_zeros(K)), lay.filled(weight.new_zeros(K))
        else:
            xs = [cast(lay.rows(t)) for t in tensors]
            weight_scale = scale
            # bias -W' mu from one pass over the weight: [A; B] (2K, C) x [s mu_re, s mu_im] (C, 2)
            prods = weight.reshape(2 * K, -1) @ torch.stack([scale * mean_re, scale * mean_im], 1)
            a_mu, b_mu = prods[:K], prods[K:]  # (K, 2) each
            out_re = lay.filled(b_mu[:, 1] - a_mu[:, 0])  # -(A' mu_re - B' mu_im), rows(K)
            out_im = lay.filled(-(b_mu[:, 0] + a_mu[:, 1]))  # -(B' mu_re + A' mu_im)
        for p in _parts(xs, n_pairs):
            a, b = (cast(w) for w in _weights(weight, p.cols, weight_scale))  # (K, c)
            if p.complex:
                _product(a)(lay.apply, a, b, *p.tensors, out=(out_re, out_im))
            else:
                lay.apply(a, p.tensors[0], out_re)
                lay.apply(b, p.tensors[0], out_im)
        ctx.save_for_backward(weight, mean_re, mean_im, scale, *xs)
        ctx.n_pairs, ctx.count, ctx.batch_statistics = n_pairs, count, batch_statistics
        ctx.layout, ctx.shapes, ctx.low_dtype = lay, [(t.shape, t.dtype) for t in tensors], low_dtype
        return lay.unrows(out_re, (B, K, H, W)), lay.unrows(out_im, (B, K, H, W))

    @staticmethod
    def backward(ctx, grad_re: Tensor, grad_im: Tensor):
        with torch.autocast(grad_re.device.type, enabled=False):
            return _StandardizedProjectionFunction._backward(ctx, grad_re, grad_im)

    @staticmethod
    def _backward(ctx, grad_re: Tensor, grad_im: Tensor):
        weight, mean_re, mean_im, scale, *xs = ctx.saved_tensors
        lay = ctx.layout
        standardized = lay.folded  # xs hold zhat (folded) or z (per-sample)
        g_re, g_im = lay.rows(grad_re), lay.rows(grad_im)  # rows(K)
        if ctx.low_dtype is not None:
            g_re, g_im = g_re.to(ctx.low_dtype), g_im.to(ctx.low_dtype)
        parts = _parts(xs, ctx.n_pairs)
        grad_weight = _weight_gradient(lay, parts, weight, g_re, g_im, mean_re, mean_im, scale, standardized)
        dxs = _input_gradient(
            lay, parts, weight, g_re, g_im, None if standardized else scale, list(ctx.needs_input_grad[8:])
        )
        if ctx.batch_statistics:
            coef, offset = _statistics_terms(
                lay, parts, dxs, weight, grad_weight, g_re, g_im, mean_re, mean_im, scale, ctx.count, standardized
            )
        grads = []
        for dx, (cols, imag, x), (shape, dtype) in zip(dxs, _flat(parts), ctx.shapes):
            if dx is None:
                grads.append(None)
                continue
            if ctx.batch_statistics:
                dx.addcmul_(lay.channel(coef[cols]), x).add_(lay.channel(offset[imag][cols]))
            if standardized:
                dx.mul_(lay.channel(scale[cols]))
            grads.append(lay.unrows(dx, shape).to(dtype))
        return (grad_weight, None, None, None, None, None, None, None, *grads)


def standardized_projection(parts: list[SplitFeatures], std: Standardization, proj: ComplexProjection) -> SplitFeatures:
    """``proj(std(SplitFeatures.cat(parts)))`` without the concatenation or the standardized copy.

    Updates ``std``'s running statistics exactly like :meth:`Standardization.forward` in
    training mode, and uses them in evaluation mode.
    """
    pairs = [(p.re, p.im) for p in parts if p.re is not None]
    reals = [p.real for p in parts if p.real is not None]
    dtype = (pairs[0][0] if pairs else reals[0]).dtype
    if std.training:
        with torch.no_grad():
            moments = batch_moments(pairs, reals)
            std.update_running_statistics(moments)
        n = moments.count
        mean_re, mean_im, var = (t.to(dtype) for t in (moments.mean_re, moments.mean_im, moments.var))
    else:
        n = 0
        mean_re, mean_im, var = std.running_moments()
    scale = torch.rsqrt(var + STD_EPS)
    tensors = [t for pair in pairs for t in pair] + reals
    device = tensors[0].device.type
    low_dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
    re, im = _StandardizedProjectionFunction.apply(
        proj.weight, mean_re, mean_im, scale, n, std.training, len(pairs), low_dtype, *tensors
    )
    return SplitFeatures(re=re, im=im)
