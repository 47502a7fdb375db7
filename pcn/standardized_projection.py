"""``Pc(Std(z))`` as one autograd function: standardization folded into the projection weights.

The standardization ``Std`` is a per-channel affine map, so it can be folded into the
learned complex 1x1 projection ``Pc`` (weight ``W = A + iB``, shape K x C):

.. math::

    y = W\\,\\mathrm{diag}(s)\\,(z - \\mu) = W' z - W' \\mu, \\qquad W' = W\\,\\mathrm{diag}(s),
    \\quad s_c = (v_c + 10^{-5})^{-1/2}

with ``mu_c`` and ``v_c`` the channel mean and (total, for complex channels) variance.
The standardized tensor ``zhat = (z - mu) s`` is never materialized, and the input need
not be concatenated: the features arrive as a list of parts (complex ``(re, im)`` pairs
and real tensors) whose channels map to contiguous column ranges of ``W`` in the usual
``[complex..., real...]`` order.

Backward, with ``dy`` the output gradient and sums over the batch and pixels:

* weights: :math:`\\partial L / \\partial W = (\\sum dy\\, z^H - (\\sum dy)\\, \\mu^H)\\,
  \\mathrm{diag}(s)`;
* input: :math:`\\partial L / \\partial z = W'^H dy + \\alpha + \\beta z` per channel. In
  training mode ``mu`` and ``v`` depend on ``z`` (batch statistics) and, with
  :math:`\\hat{dz} = W^H dy` and :math:`R_c = \\sum \\mathrm{Re}(\\overline{\\hat{dz}_c}\\, \\hat z_c)
  = \\sum_k (A \\odot \\partial_A L + B \\odot \\partial_B L)_{kc}`,
  the batch-norm gradient :math:`s(\\hat{dz} - \\overline{\\hat{dz}}) - s \\hat z R / n` gives
  :math:`\\beta = -s^2 R / n` and :math:`\\alpha = -s\\, W^H (\\sum dy) / n - \\beta \\mu`. In
  evaluation mode (running statistics) ``alpha = beta = 0``.

Under torch.distributed the statistics are those of the global batch (like
:class:`pcn.layers.Standardization`): the forward all-reduces the channel sums, the backward
all-reduces ``sum dy`` and ``R``. Complex products use Gauss's 3-multiplication form in the
forward and in both backward products. Numerically this equals ``Pc(Std(cat(parts)))`` to
float32 rounding (tests compare values and gradients with the unfused modules and with
finite differences in float64). Measured on the 2-core CPU (bench/RESULTS.md): 3-10% less CPU
time over a training step's blocks and 10-15% less peak memory than the separate modules. On
small maps the products run with the batch folded into the matrix columns and the
standardization is applied in that folding copy (see :class:`_StandardizedProjectionFunction`).
"""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor

from pcn.distributed import is_distributed
from pcn.features import SplitFeatures
from pcn.layers import STD_EPS, ComplexProjection, Standardization, batch_count


def _all_reduce(t: Tensor) -> Tensor:
    if is_distributed():
        dist.all_reduce(t)
    return t


FOLD_BELOW_PIXELS = 1024


class _Layout:
    """How the channel products of one call are laid out as matrix products.

    * per-sample (``H W >= FOLD_BELOW_PIXELS``): activations stay (B, C, N) with ``N = H W``;
      products are ``bmm`` over the batch and weight gradients a loop of in-place ``addmm``
      (no (B, M, C) temporary).
    * folded (small maps): activations are copied once to (C, B N) so that every product is
      one matrix product. With 4x4 or 2x2 maps a per-sample product would re-read the whole
      weight matrix for a handful of columns.

    Channels are dimension 1 of a per-sample tensor and dimension 0 of a folded one.
    """

    def __init__(self, batch: int, pixels: int):
        self.batch, self.pixels = batch, pixels
        self.folded = pixels < FOLD_BELOW_PIXELS and batch > 1

    def rows(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (C, B N) folded, (B, C, N) per-sample; contiguous."""
        B, C = x.shape[:2]
        if self.folded:
            return x.reshape(B, C, -1).transpose(0, 1).reshape(C, -1)
        return x.contiguous().view(B, C, -1)

    def rows_standardized(self, x: Tensor, mean: Tensor, scale: Tensor) -> Tensor:
        """``rows((x - mean) scale)`` in one pass (folded layout only); mean, scale (C,)."""
        B, C = x.shape[:2]
        out = x.new_empty(C, B, self.pixels)
        torch.addcmul((-mean * scale).view(1, C, 1), x.reshape(B, C, -1), scale.view(1, C, 1),
                      out=out.transpose(0, 1))
        return out.view(C, -1)

    def unrows(self, t: Tensor, shape: tuple[int, ...]) -> Tensor:
        """Inverse of :meth:`rows`: a (B, C, H, W) tensor of the given shape."""
        if self.folded:
            return t.view(t.shape[0], self.batch, -1).transpose(0, 1).reshape(shape)
        return t.view(shape)

    def channel(self, v: Tensor) -> Tensor:
        """A per-channel vector (C,) broadcastable against a tensor in this layout."""
        return v.view(-1, 1) if self.folded else v.view(1, -1, 1)

    def filled(self, v: Tensor) -> Tensor:
        """A new tensor in this layout whose channel ``c`` is constant ``v[c]``."""
        shape = (v.shape[0], self.batch * self.pixels) if self.folded else (self.batch, v.shape[0], self.pixels)
        return self.channel(v).expand(shape).contiguous()

    def channel_sum(self, t: Tensor) -> Tensor:
        return t.sum(1) if self.folded else t.sum((0, 2))

    def channel_dot(self, t: Tensor, x: Tensor) -> Tensor:
        """Per-channel :math:`\\sum t x` over samples and pixels."""
        if self.folded:
            return torch.linalg.vecdot(t, x, dim=1)
        return torch.linalg.vecdot(t, x, dim=2).sum(0)

    def apply(self, w: Tensor, x: Tensor, out: Tensor | None = None) -> Tensor:
        """``w x`` per sample, (M, C) x rows(C) -> rows(M), accumulated into ``out`` if given.

        Per sample, ``w`` is made contiguous first: a batch-expanded strided view (a column
        slice or a transpose) makes ``bmm`` copy it for every sample. Folded, a transposed
        ``w`` goes to BLAS as it is.
        """
        if self.folded:
            return w @ x if out is None else out.addmm_(w, x)
        w = w.contiguous().unsqueeze(0).expand(x.shape[0], *w.shape)
        return torch.bmm(w, x) if out is None else out.baddbmm_(w, x)

    def outer_sum(self, g: Tensor, x: Tensor) -> Tensor:
        """:math:`\\sum_{b, p} g_{b, :, p}\\, x_{b, :, p}^T`: rows(M), rows(C) -> (M, C)."""
        if self.folded:
            return g @ x.t()
        acc = g.new_zeros(g.shape[1], x.shape[1])
        for gb, xb in zip(g, x):
            acc.addmm_(gb, xb.t())
        return acc


def _segments(channels: list[int], n_pairs: int) -> list[tuple[str, slice]]:
    """``(kind, weight columns)`` of every part, from the channel counts of the input tensors:
    ``n_pairs`` complex (re, im) pairs first, then real tensors."""
    out, col = [], 0
    for i in range(n_pairs):
        out.append(("complex", slice(col, col + channels[2 * i])))
        col += channels[2 * i]
    for c in channels[2 * n_pairs:]:
        out.append(("real", slice(col, col + c)))
        col += c
    return out


def _grouped(xs: list[Tensor], n_pairs: int) -> list:
    """The tensors of every part: ``(re, im)`` for complex ones, the tensor for real ones."""
    return [(xs[2 * i], xs[2 * i + 1]) for i in range(n_pairs)] + list(xs[2 * n_pairs:])


def _weights(weight: Tensor, cols: slice, scale: Tensor | None) -> tuple[Tensor, Tensor]:
    """``(A, B)`` (K, c) of the columns ``cols`` (views of the weight), or ``(A', B')`` if ``scale`` is given."""
    if scale is None:
        return weight[0, :, cols], weight[1, :, cols]
    return weight[0, :, cols] * scale[cols], weight[1, :, cols] * scale[cols]


class _StandardizedProjectionFunction(torch.autograd.Function):
    """See the module docstring. Inputs after the statistics: ``n_pairs`` (re, im) pairs, then real tensors.

    Two placements of the standardization, chosen with the layout:

    * folded (small maps, where the weight matrix is larger than the activations): the
      activations are standardized in the copy that folds them, ``zhat = (z - mu) s``, and the
      products use ``W`` itself; the statistics' gradient terms are channel sums over
      activations.
    * per-sample (large maps): ``s`` and ``mu`` go into the weights (``W'`` and the bias
      ``-W' mu``) and no activation is rewritten; the statistics' gradient terms come from
      the weight gradient.
    """

    @staticmethod
    def forward(ctx, weight: Tensor, mean_re: Tensor, mean_im: Tensor, scale: Tensor, count: int,
                batch_statistics: bool, n_pairs: int, *tensors: Tensor):
        # weight (2, K, C) = [A, B]; mean_re, mean_im, scale (C,); tensors (B, c_i, H, W)
        B, _, H, W = tensors[0].shape
        K = weight.shape[1]
        lay = _Layout(B, H * W)
        segments = _segments([t.shape[1] for t in tensors], n_pairs)
        if lay.folded:
            means = [mean_re, mean_im] * n_pairs + [mean_re] * (len(tensors) - 2 * n_pairs)
            cols = [c for kind, c in segments for _ in range(2 if kind == "complex" else 1)]
            xs = [lay.rows_standardized(t, m[c], scale[c]) for t, m, c in zip(tensors, means, cols)]
            weight_scale = None
            out_re, out_im = lay.filled(weight.new_zeros(K)), lay.filled(weight.new_zeros(K))
        else:
            xs = [lay.rows(t) for t in tensors]
            weight_scale = scale
            # bias -W' mu from one pass over the weight: [A; B] (2K, C) x [s mu_re, s mu_im] (C, 2)
            prods = weight.reshape(2 * K, -1) @ torch.stack([scale * mean_re, scale * mean_im], 1)
            a_mu, b_mu = prods[:K], prods[K:]                               # (K, 2) each
            out_re = lay.filled(b_mu[:, 1] - a_mu[:, 0])                    # -(A' mu_re - B' mu_im), rows(K)
            out_im = lay.filled(-(b_mu[:, 0] + a_mu[:, 1]))                 # -(B' mu_re + A' mu_im)
        for (kind, cols), x in zip(segments, _grouped(xs, n_pairs)):
            a, b = _weights(weight, cols, weight_scale)                    # (K, c)
            if kind == "complex":                                           # Gauss: 3 products
                u, v = x
                t1, t2 = lay.apply(a, u), lay.apply(b, v)
                lay.apply(a + b, u + v, out_im).sub_(t1).sub_(t2)
                out_re.add_(t1).sub_(t2)
            else:
                lay.apply(a, x, out_re)
                lay.apply(b, x, out_im)
        ctx.save_for_backward(weight, mean_re, mean_im, scale, *xs)
        ctx.n_pairs, ctx.count, ctx.batch_statistics = n_pairs, count, batch_statistics
        ctx.layout, ctx.shapes, ctx.segments = lay, [t.shape for t in tensors], segments
        return lay.unrows(out_re, (B, K, H, W)), lay.unrows(out_im, (B, K, H, W))

    @staticmethod
    def backward(ctx, grad_re: Tensor, grad_im: Tensor):
        weight, mean_re, mean_im, scale, *xs = ctx.saved_tensors
        lay, n_pairs, segments = ctx.layout, ctx.n_pairs, ctx.segments
        standardized = lay.folded                     # xs hold zhat (folded) or z (per-sample)
        g_re, g_im = lay.rows(grad_re), lay.rows(grad_im)                  # rows(K)
        K, C = weight.shape[1:]
        grouped = list(zip(segments, _grouped(xs, n_pairs)))

        # weight gradient: dW = sum dy zhat^H = (sum dy z^H - (sum dy) mu^H) diag(s)
        grad_weight = weight.new_empty(2, K, C)
        d_re, d_im = grad_weight                                            # dL/dA, dL/dB (views)
        g_diff = g_re - g_im
        for (kind, cols), x in grouped:
            if kind == "complex":
                u, v = x
                q1, q2 = lay.outer_sum(g_re, u), lay.outer_sum(g_im, v)
                q3 = lay.outer_sum(g_diff, u + v)
                torch.add(q1, q2, out=d_re[:, cols])                       # sum(dyr u + dyi v)
                torch.sub(q1, q2, out=d_im[:, cols]).sub_(q3)               # sum(dyi u - dyr v)
            else:
                d_re[:, cols] = lay.outer_sum(g_re, x)
                d_im[:, cols] = lay.outer_sum(g_im, x)
        sum_re, sum_im = lay.channel_sum(g_re), lay.channel_sum(g_im)      # (K,), local
        if not standardized:
            means = torch.stack([mean_re, mean_im])                         # (2, C)
            d_re.addmm_(torch.stack([sum_re, sum_im], 1), means, alpha=-1)
            d_im.addmm_(torch.stack([sum_im, -sum_re], 1), means, alpha=-1)
            grad_weight.mul_(scale)

        # input gradient, from dzhat = W^H dy per channel: s (dzhat - mean(dzhat)) - s zhat R / n
        # in training mode (R = sum dzhat . zhat), s dzhat with running statistics
        needed = iter(ctx.needs_input_grad[7:])
        wanted = [[next(needed) for _ in range(2 if kind == "complex" else 1)] for kind, _ in segments]
        dxs = []                                      # per tensor: s dzhat (per-sample) or dzhat (folded)
        g_sum = g_re + g_im
        for ((kind, cols), x), want in zip(grouped, wanted):
            if not any(want):
                dxs += [None] * len(want)
                continue
            a, b = _weights(weight, cols, None if standardized else scale)
            a_t, b_t = a.t(), b.t()                                         # (c, K)
            if kind == "complex":
                p1, p2 = lay.apply(a_t, g_re), lay.apply(b_t, g_im)
                dv = lay.apply(a_t - b_t, g_sum, p2 - p1)                   # A^T dyi - B^T dyr
                dxs += [p1.add_(p2), dv]                                    # A^T dyr + B^T dyi
            else:
                dxs.append(lay.apply(b_t, g_im, lay.apply(a_t, g_re)))
        channel_cols = [c for (kind, c), _ in grouped for _ in range(2 if kind == "complex" else 1)]
        is_imag = [i < 2 * n_pairs and i % 2 == 1 for i in range(len(xs))]
        if ctx.batch_statistics:
            n = ctx.count
            if standardized:                          # channel sums over activations
                mean_d = [torch.zeros(C, dtype=g_re.dtype, device=g_re.device) for _ in range(2)]
                R = torch.zeros(C, dtype=g_re.dtype, device=g_re.device)
                for dx, x, c, imag in zip(dxs, xs, channel_cols, is_imag):
                    if dx is not None:
                        mean_d[imag][c] += lay.channel_sum(dx)
                        R[c] += lay.channel_dot(dx, x)
                reduced = _all_reduce(torch.cat([mean_d[0], mean_d[1], R]))
                m_re, m_im, R = reduced[:C] / n, reduced[C:2 * C] / n, reduced[2 * C:]
                coef = -R / n                                               # per channel, times zhat
                offset = [-m_re, -m_im]                                     # then all times s
            else:                                     # sums from the weight gradient
                R = (weight * grad_weight).view(2 * K, C).sum(0)            # sum_k A dA + B dB
                reduced = _all_reduce(torch.cat([sum_re, sum_im, R]))
                s_re, s_im, R = reduced[:K], reduced[K:2 * K], reduced[2 * K:]
                # [A^T s_re + B^T s_im, A^T s_im - B^T s_re] from one pass over [A; B] (2K, C)
                probes = torch.stack([torch.cat([s_re, s_im]), torch.cat([s_im, -s_re])])   # (2, 2K)
                w_re, w_im = probes @ weight.reshape(2 * K, C)
                beta = -scale * scale * R / n
                coef = beta                                                 # times z
                offset = [-scale * w_re / n - beta * mean_re, -scale * w_im / n - beta * mean_im]
        grads = []
        for dx, x, c, imag, shape in zip(dxs, xs, channel_cols, is_imag, ctx.shapes):
            if dx is None:
                grads.append(None)
                continue
            if ctx.batch_statistics:
                dx.addcmul_(lay.channel(coef[c]), x).add_(lay.channel(offset[imag][c]))
            if standardized:
                dx.mul_(lay.channel(scale[c]))
            grads.append(lay.unrows(dx, shape))
        return (grad_weight, None, None, None, None, None, None, *grads)


def channel_moments(pairs: list[tuple[Tensor, Tensor]], reals: list[Tensor]) -> tuple[Tensor, Tensor, Tensor, int]:
    """Global-batch channel means and (total) variances of the parts, in float64.

    One pass per tensor for the sums and one for the sums of squares (float32 accumulation,
    which is exact enough for ``v = E|z|^2 - |E z|^2`` unless a channel's mean exceeds its
    standard deviation by orders of magnitude). Returns ``mean_re (C,)``, ``mean_im (C,)``
    (zero on real channels), ``var (C,)`` and the count ``n`` of (sample, pixel) positions.
    """
    dims = (0, 2, 3)
    s_re = [u.sum(dims) for u, _ in pairs] + [r.sum(dims) for r in reals]
    s_im = [v.sum(dims) for _, v in pairs] + [torch.zeros_like(r[0, :, 0, 0]) for r in reals]
    s_sq = [(u * u).sum(dims) + (v * v).sum(dims) for u, v in pairs] + [(r * r).sum(dims) for r in reals]
    C = sum(t.shape[0] for t in s_re)
    sums = _all_reduce(torch.cat(s_re + s_im + s_sq).double())
    n = batch_count((pairs[0][0] if pairs else reals[0]))
    mean_re, mean_im, mean_sq = sums[:C] / n, sums[C:2 * C] / n, sums[2 * C:] / n
    var = (mean_sq - mean_re * mean_re - mean_im * mean_im).clamp_min(0)
    return mean_re, mean_im, var, n


def standardized_projection(parts: list[SplitFeatures], std: Standardization, proj: ComplexProjection) -> SplitFeatures:
    """``proj(std(SplitFeatures.cat(parts)))`` without the concatenation or the standardized copy.

    Updates ``std``'s running statistics exactly like :meth:`Standardization.forward` in
    training mode, and uses them in evaluation mode.
    """
    pairs = [(p.re, p.im) for p in parts if p.re is not None]
    reals = [p.real for p in parts if p.real is not None]
    cc = sum(u.shape[1] for u, _ in pairs)
    dtype = (pairs[0][0] if pairs else reals[0]).dtype
    if std.training:
        with torch.no_grad():
            mean_re, mean_im, var, n = channel_moments(pairs, reals)
            unbiased = var * n / max(n - 1, 1)
            for name, value in (("running_mean_re", mean_re[:cc]), ("running_mean_im", mean_im[:cc]),
                                ("running_var_complex", unbiased[:cc]), ("running_mean_real", mean_re[cc:]),
                                ("running_var_real", unbiased[cc:])):
                std._update(name, value.to(dtype))
        mean_re, mean_im, var = mean_re.to(dtype), mean_im.to(dtype), var.to(dtype)
    else:
        n = 0
        mean_re = torch.cat([std.running_mean_re, std.running_mean_real])
        mean_im = torch.cat([std.running_mean_im, torch.zeros_like(std.running_mean_real)])
        var = torch.cat([std.running_var_complex, std.running_var_real])
    scale = torch.rsqrt(var + STD_EPS)
    tensors = [t for pair in pairs for t in pair] + reals
    re, im = _StandardizedProjectionFunction.apply(proj.weight, mean_re, mean_im, scale, n, std.training,
                                                   len(pairs), *tensors)
    return SplitFeatures(re=re, im=im)
