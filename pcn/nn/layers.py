"""Learned-scattering layers: standardization ``Std``, complex projection ``Pc``, normalization ``N``.

These modules are the readable specification of a block's ``N(Pc(Std(.)))``. The fused
:mod:`pcn.nn.fused_projection` computes the same ``Pc(Std(.))`` faster and reuses the
pieces defined here: :func:`batch_moments` (the statistics),
:meth:`Standardization.update_running_statistics` and :func:`complex_product` (Gauss's
3-multiplication complex matrix product).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from pcn.nn.collectives import global_sum, world_size
from pcn.nn.features import SplitFeatures

STD_EPS = 1e-5


def batch_count(x: Tensor) -> int:
    """Number of (sample, pixel) positions per channel in the global batch.

    Every rank processes batches of the same size (pcn's samplers shard evenly), so this is
    the local count times the number of processes, known without communication.
    """
    return x.numel() // x.shape[1] * world_size()


def ema_(running: Tensor, value: Tensor, momentum: float) -> None:
    """Running average in place: ``running <- (1 - momentum) running + momentum value``."""
    running.mul_(1 - momentum).add_(momentum * value.detach().to(running.dtype))


@dataclass
class Moments:
    """Per-channel statistics of a global batch of mixed complex and real channels.

    ``mean_re``, ``mean_im`` (zero on real channels) and ``var`` (the total variance
    :math:`\\mathbb{E}|z - \\mu|^2`) have one entry per channel, complex channels first;
    ``count`` is the number of (sample, pixel) positions ``n``.
    """

    mean_re: Tensor
    mean_im: Tensor
    var: Tensor
    count: int


def batch_moments(pairs: list[tuple[Tensor, Tensor]], reals: list[Tensor]) -> Moments:
    """Global-batch channel means and total variances of complex ``(re, im)`` pairs and real tensors.

    .. math::

        \\mu_c = \\frac1n \\sum z_c, \\qquad v_c = \\frac1n \\sum |z_c|^2 - |\\mu_c|^2

    over the batch and pixels (and over all ranks). One pass per tensor for the sums and one
    for the sums of squares, combined in float64: accurate unless a channel's mean exceeds its
    standard deviation by orders of magnitude, which standardized block inputs never do.
    Differentiable (the plain :class:`Standardization` backpropagates through it).
    Returned in float64.
    """
    dims = (0, 2, 3)
    s_re = [u.sum(dims) for u, _ in pairs] + [r.sum(dims) for r in reals]
    s_im = [v.sum(dims) for _, v in pairs] + [torch.zeros_like(r[0, :, 0, 0]) for r in reals]
    s_sq = [(u * u).sum(dims) + (v * v).sum(dims) for u, v in pairs] + [(r * r).sum(dims) for r in reals]
    C = sum(t.shape[0] for t in s_re)
    sums = global_sum(torch.cat(s_re + s_im + s_sq).double())
    n = batch_count(pairs[0][0] if pairs else reals[0])
    mean_re, mean_im, mean_sq = sums[:C] / n, sums[C : 2 * C] / n, sums[2 * C :] / n
    var = (mean_sq - mean_re * mean_re - mean_im * mean_im).clamp_min(0)
    return Moments(mean_re, mean_im, var, n)


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose training statistics cover the global batch across ranks.

    Identical to ``nn.BatchNorm2d`` in a single process; unlike ``nn.SyncBatchNorm`` it
    also works on CPU (gloo).
    """

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and world_size() > 1):
            return super().forward(x)
        m = batch_moments([], [x])
        mean, var = m.mean_re.to(x.dtype), m.var.to(x.dtype)
        with torch.no_grad():
            self.num_batches_tracked += 1
            ema_(self.running_mean, mean, self.momentum)
            ema_(self.running_var, var * m.count / max(m.count - 1, 1), self.momentum)
        y = (x - mean.view(1, -1, 1, 1)) * torch.rsqrt(var + self.eps).view(1, -1, 1, 1)
        if self.affine:
            y = y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return y


class Standardization(nn.Module):
    """Affine-free batch standardization of complex and real channels.

    Per channel ``c``, over (batch, H, W), in training mode:

    .. math::

        \\mu_c = \\mathbb{E}[x_c], \\qquad v_c = \\mathbb{E}|x_c - \\mu_c|^2, \\qquad
        y_c = (x_c - \\mu_c) / \\sqrt{v_c + 10^{-5}}

    with a complex mean and the total (real plus imaginary) variance for complex
    channels; real and imaginary parts are not whitened separately. Running statistics,
    with momentum ``m = 0.1`` and ``n = B H W``: ``running_mu <- (1 - m) running_mu + m mu``
    and ``running_v <- (1 - m) running_v + m v n / (n - 1)`` (unbiased), starting at 0 and 1;
    evaluation uses them. There are no learned parameters.
    """

    def __init__(self, n_complex: int, n_real: int, momentum: float = 0.1):
        super().__init__()
        self.n_complex, self.n_real, self.momentum = n_complex, n_real, momentum
        self.register_buffer("running_mean_re", torch.zeros(n_complex))
        self.register_buffer("running_mean_im", torch.zeros(n_complex))
        self.register_buffer("running_var_complex", torch.ones(n_complex))
        self.register_buffer("running_mean_real", torch.zeros(n_real))
        self.register_buffer("running_var_real", torch.ones(n_real))

    def extra_repr(self) -> str:
        return f"n_complex={self.n_complex}, n_real={self.n_real}"

    @torch.no_grad()
    def update_running_statistics(self, m: Moments) -> None:
        """Fold one training batch's :class:`Moments` into the running statistics."""
        unbiased = m.var * m.count / max(m.count - 1, 1)
        cc = self.n_complex
        for running, value in (
            (self.running_mean_re, m.mean_re[:cc]),
            (self.running_mean_im, m.mean_im[:cc]),
            (self.running_var_complex, unbiased[:cc]),
            (self.running_mean_real, m.mean_re[cc:]),
            (self.running_var_real, unbiased[cc:]),
        ):
            ema_(running, value, self.momentum)

    def running_moments(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(mean_re, mean_im, var)`` of the running statistics, complex channels first."""
        return (
            torch.cat([self.running_mean_re, self.running_mean_real]),
            torch.cat([self.running_mean_im, torch.zeros_like(self.running_mean_real)]),
            torch.cat([self.running_var_complex, self.running_var_real]),
        )

    def forward(self, x: SplitFeatures) -> SplitFeatures:
        pairs = [(x.re, x.im)] if x.re is not None else []
        reals = [x.real] if x.real is not None else []
        if self.training:
            m = batch_moments(pairs, reals)
            self.update_running_statistics(m)
            mean_re, mean_im, var = (t.to(x.any_tensor().dtype) for t in (m.mean_re, m.mean_im, m.var))
        else:
            mean_re, mean_im, var = self.running_moments()
        scale = torch.rsqrt(var + STD_EPS)

        def standardize(t: Tensor, mean: Tensor, cols: slice) -> Tensor:
            return (t - mean[cols].view(1, -1, 1, 1)) * scale[cols].view(1, -1, 1, 1)

        cc = self.n_complex
        out = SplitFeatures()
        if x.re is not None:
            out.re, out.im = standardize(x.re, mean_re, slice(0, cc)), standardize(x.im, mean_im, slice(0, cc))
        if x.real is not None:
            out.real = standardize(x.real, mean_re, slice(cc, None))
        return out


def unitary_init(out_channels: int, in_channels: int, generator: torch.Generator | None = None) -> Tensor:
    """Complex weight with orthonormal rows (K <= Cin) or columns (K > Cin).

    Draw :math:`G \\in \\mathbb{C}^{K \\times C}` with i.i.d. standard complex Gaussian
    entries, take the thin SVD :math:`G = U S V^H` and return ``U`` if ``K > C`` else
    :math:`V^H`. Returned as a real tensor (2, K, C): ``[Re W, Im W]``.
    """
    g = torch.complex(
        torch.randn(out_channels, in_channels, generator=generator),
        torch.randn(out_channels, in_channels, generator=generator),
    )
    u, _, vh = torch.linalg.svd(g, full_matrices=False)
    w = u if out_channels > in_channels else vh
    w = w.to(torch.complex64)
    return torch.stack([w.real, w.imag]).contiguous()


MatMul = Callable[..., Tensor]  # mm(x, y) -> x y, or mm(x, y, out) -> out += x y


def complex_product(
    mm: MatMul,
    a: Tensor,
    b: Tensor,
    u: Tensor,
    v: Tensor,
    *,
    conj_a: bool = False,
    conj_u: bool = False,
    left: Tensor | None = None,
    right: Tensor | None = None,
    out: tuple[Tensor, Tensor] | None = None,
    gauss: bool = True,
) -> tuple[Tensor, Tensor]:
    """Real and imaginary parts of :math:`(a + i s_a b)(u + i s_u v)` with 3 real products (Gauss), or 4.

    With :math:`s_a = -1` if ``conj_a`` (else 1) and :math:`s_u` likewise for ``conj_u``:

    .. math::

        t_1 = a u, \\quad t_2 = b v, \\quad t_3 = (a + s_a b)(u + s_u v), \\qquad
        \\mathrm{Re} = t_1 - s_a s_u t_2, \\quad \\mathrm{Im} = t_3 - t_1 - s_a s_u t_2

    ``mm(x, y)`` is the real product (a matrix product, an einsum, a sum of outer products)
    and must return a new tensor. ``left`` and ``right`` may pass a precomputed :math:`a + s_a b`
    and :math:`u + s_u v` (shared by several products). With ``out=(re, im)`` the result is accumulated
    into those tensors (``mm(x, y, out)`` must then accumulate into ``out``), which saves the fused path's
    temporaries.

    With ``gauss=False``, the 4 real products of the definition, for low precision (where Gauss's form loses
    accuracy): :math:`(a u - s_a s_u b v) + i (s_u a v + s_a b u)`; ``left`` and ``right`` are then ignored and
    ``out`` (if given) gets the result added.
    """
    sign = (-1 if conj_a else 1) * (-1 if conj_u else 1)
    if not gauss:
        re = mm(a, u).sub_(mm(b, v), alpha=sign)
        im = mm(a, v).mul_(-1 if conj_u else 1).add_(mm(b, u), alpha=-1 if conj_a else 1)
        if out is None:
            return re, im
        out[0].add_(re)
        out[1].add_(im)
        return out
    t1, t2 = mm(a, u), mm(b, v)
    if left is None:
        left = a - b if conj_a else a + b
    if right is None:
        right = u - v if conj_u else u + v
    if out is None:  # t1, t2, t3 are new tensors: update them in place
        im = mm(left, right).sub_(t1).sub_(t2, alpha=sign)
        return t1.sub_(t2, alpha=sign), im
    re, im = out
    mm(left, right, im).sub_(t1).sub_(t2, alpha=sign)
    re.add_(t1).sub_(t2, alpha=sign)
    return re, im


class ComplexProjection(nn.Module):
    """Learned complex 1x1 convolution ``Pc`` without bias: :math:`y_k = \\sum_c W_{kc} x_c`.

    With ``W = A + iB``, complex input ``u + iv`` and real input channels ``r``:

    .. math::

        \\mathrm{Re}\\, y = A_c u - B_c v + A_r r, \\qquad \\mathrm{Im}\\, y = B_c u + A_c v + B_r r

    The complex part uses :func:`complex_product` (3 real products instead of 4) and real
    channels cost 2: ``3 Cc + 2 Cr`` real products per output channel instead of the
    reference's ``4 (Cc + Cr)``. Under autocast (bf16) the 4-multiplication form is used,
    since Gauss's form loses accuracy in low precision. The weight is stored as
    (2, K, Cc + Cr) = ``[A, B]`` (planar, so that ``A`` and ``B`` are contiguous matrices);
    weight decay acts on ``|w|^2``; input channel order is ``[complex..., real...]``.
    """

    def __init__(self, n_complex: int, n_real: int, out_channels: int):
        super().__init__()
        self.n_complex, self.n_real, self.out_channels = n_complex, n_real, out_channels
        self.weight = nn.Parameter(unitary_init(out_channels, n_complex + n_real))

    def extra_repr(self) -> str:
        return f"n_complex={self.n_complex}, n_real={self.n_real}, out_channels={self.out_channels}"

    @staticmethod
    def _mm(w: Tensor, x: Tensor) -> Tensor:
        # (O, C) x (B, C, H, W) -> (B, O, H, W); under CUDA autocast this runs in bf16
        return torch.einsum("oc,bchw->bohw", w, x).to(x.dtype)

    def forward(self, x: SplitFeatures) -> SplitFeatures:
        a, b = self.weight  # (K, Cc + Cr) each
        cc, k = self.n_complex, self.out_channels
        re = im = None
        if x.re is not None:
            ac, bc = a[:, :cc], b[:, :cc]
            if torch.is_autocast_enabled(x.re.device.type):
                stacked = torch.cat([x.re, x.im], 1)  # concatenated once for both parts
                re = self._mm(torch.cat([ac, -bc], 1), stacked)
                im = self._mm(torch.cat([bc, ac], 1), stacked)
            else:
                re, im = complex_product(self._mm, ac, bc, x.re, x.im)
        if x.real is not None:
            yr, yi = self._mm(torch.cat([a[:, cc:], b[:, cc:]], 0), x.real).split(k, dim=1)
            re, im = (yr, yi) if re is None else (re + yr, im + yi)
        return SplitFeatures(re=re, im=im)


def normalize_pixels(x: SplitFeatures, eps: float = 0.0) -> SplitFeatures:
    """Unit norm over channels at every (sample, pixel): :math:`x / \\max(\\|x\\|_2, \\epsilon)`.

    :math:`\\|x\\|^2 = \\sum_c |x_c|^2`. The reference uses no epsilon (division by
    zero gives NaN); ``eps > 0`` guards the all-zero pixel.
    """
    sq = 0
    for t in (x.re, x.im, x.real):
        if t is not None:
            sq = sq + (t * t).sum(dim=1, keepdim=True)
    norm = torch.sqrt(sq)
    if eps > 0:
        norm = norm.clamp_min(eps)
    inv = 1 / norm
    return SplitFeatures(
        None if x.re is None else x.re * inv,
        None if x.im is None else x.im * inv,
        None if x.real is None else x.real * inv,
    )
