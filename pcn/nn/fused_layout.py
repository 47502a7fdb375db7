"""How the fused ``Pc(Std(z))`` (:mod:`pcn.nn.fused_projection`) lays out its channel products as matrix
products: the 4-multiplication complex product for low precision, per-sample or folded layouts
(:class:`_Layout`), and the feature parts that map to column ranges of the weight matrix."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor

from pcn.nn.layers import complex_product

#: :func:`pcn.nn.layers.complex_product` with the 4 real products of the definition, for low precision.
complex_product_4 = partial(complex_product, gauss=False)

FOLD_BELOW_PIXELS = 1024


class _Layout:
    """How the channel products of one call are laid out as matrix products.

    * per-sample (``H W >= FOLD_BELOW_PIXELS``): activations stay (B, C, N) with ``N = H W``;
      products are ``bmm`` over the batch and weight gradients, on a CPU, a loop of in-place ``addmm``
      (no (B, M, C) temporary), on a GPU one batched product (:meth:`outer_sum`).
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
        torch.addcmul((-mean * scale).view(1, C, 1), x.reshape(B, C, -1), scale.view(1, C, 1), out=out.transpose(0, 1))
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
        if out is not None and out.dtype != x.dtype:  # low-precision products, float32 accumulation
            return out.add_(self.apply(w, x))
        if self.folded:
            return w @ x if out is None else out.addmm_(w, x)
        w = w.contiguous().unsqueeze(0).expand(x.shape[0], *w.shape)
        return torch.bmm(w, x) if out is None else out.baddbmm_(w, x)

    def outer_sum(self, g: Tensor, x: Tensor) -> Tensor:
        """:math:`\\sum_{b, p} g_{b, :, p}\\, x_{b, :, p}^T`: rows(M), rows(C) -> (M, C), accumulated in float32
        at least (one bf16 product per sample, summed in float32, in the low-precision path).

        Per sample, a CPU loops over the batch (no (B, M, C) temporary); a GPU makes one batched product and
        sums it: the loop's B small products per call were the largest share of a CIFAR-10 LScat+skip step on
        an H200 (bench/RESULTS.md, GPU)."""
        if self.folded:
            return (g @ x.t()).float() if g.dtype == torch.bfloat16 else g @ x.t()
        return outer_sum_batched(g, x) if g.is_cuda else outer_sum_loop(g, x)


def outer_sum_loop(g: Tensor, x: Tensor) -> Tensor:
    """Per-sample :meth:`_Layout.outer_sum` as a loop of in-place products: (B, M, N), (B, C, N) -> (M, C)."""
    low = g.dtype == torch.bfloat16
    acc = g.new_zeros(g.shape[1], x.shape[1], dtype=torch.float32 if low else g.dtype)
    for gb, xb in zip(g, x):
        if low:
            acc.add_(gb @ xb.t())
        else:
            acc.addmm_(gb, xb.t())
    return acc


def outer_sum_batched(g: Tensor, x: Tensor) -> Tensor:
    """Per-sample :meth:`_Layout.outer_sum` as one batched product (a (B, M, C) temporary) summed over the
    batch: the same per-sample products as :func:`outer_sum_loop`, summed in float32 at least."""
    low = g.dtype == torch.bfloat16
    return torch.bmm(g, x.transpose(1, 2)).sum(0, dtype=torch.float32 if low else g.dtype)  # (B, M, C) -> (M, C)


LOW_PRECISION = (torch.bfloat16, torch.float16)


def _product(t: Tensor):
    """The complex product for tensors of ``t``'s dtype: Gauss's 3 products, or the 4 of the definition in low
    precision (module docstring)."""
    return complex_product_4 if t.dtype in LOW_PRECISION else complex_product


@dataclass
class _Part:
    """One input part: its kind, its weight columns and its tensors in layout rows."""

    complex: bool
    cols: slice
    tensors: tuple[Tensor, ...]  # (re, im) or (real,)


def _parts(xs: list[Tensor], n_pairs: int) -> list[_Part]:
    """Group the flat list of tensors (``n_pairs`` (re, im) pairs, then real tensors) into parts."""
    parts, col = [], 0
    for i in range(n_pairs):
        c = xs[2 * i].shape[0 if xs[2 * i].dim() == 2 else 1]
        parts.append(_Part(True, slice(col, col + c), (xs[2 * i], xs[2 * i + 1])))
        col += c
    for x in xs[2 * n_pairs :]:
        c = x.shape[0 if x.dim() == 2 else 1]
        parts.append(_Part(False, slice(col, col + c), (x,)))
        col += c
    return parts


def _flat(parts: list[_Part]) -> list[tuple[slice, int, Tensor]]:
    """``(columns, 0 for real parts and real halves / 1 for imaginary halves, tensor)`` per input tensor."""
    return [(p.cols, i, x) for p in parts for i, x in enumerate(p.tensors)]


def _weights(weight: Tensor, cols: slice, scale: Tensor | None) -> tuple[Tensor, Tensor]:
    """``(A, B)`` (K, c) of the columns ``cols`` (views of the weight), or ``(A', B')`` if ``scale`` is given."""
    if scale is None:
        return weight[0, :, cols], weight[1, :, cols]
    return weight[0, :, cols] * scale[cols], weight[1, :, cols] * scale[cols]
