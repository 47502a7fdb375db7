"""Learned-scattering layers: standardization ``Std``, complex projection ``Pc``, normalization ``N``."""
from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn

from pcn.distributed import is_distributed
from pcn.features import SplitFeatures

STD_EPS = 1e-5


def global_sum(t: Tensor) -> Tensor:
    """Sum of ``t`` over all ranks, differentiable; identity outside torch.distributed.

    Batch statistics are then those of the global batch, so a DDP run computes the same
    function as one process on the whole batch (the reference's DataParallel used
    per-GPU statistics instead).
    """
    if is_distributed():
        from torch.distributed.nn.functional import all_reduce
        return all_reduce(t)
    return t


def batch_count(x: Tensor) -> int:
    """Number of (sample, pixel) positions per channel in the global batch."""
    n = torch.tensor(float(x.numel() // x.shape[1]), device=x.device)
    if is_distributed():
        dist.all_reduce(n)
    return int(n.item())


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` whose training statistics cover the global batch across ranks.

    Identical to ``nn.BatchNorm2d`` in a single process; unlike ``nn.SyncBatchNorm`` it
    also works on CPU (gloo).
    """

    def forward(self, x: Tensor) -> Tensor:
        if not (self.training and is_distributed()):
            return super().forward(x)
        dims = (0, 2, 3)
        n = batch_count(x)
        mean = global_sum(x.sum(dims)) / n
        centred = x - mean.view(1, -1, 1, 1)
        var = global_sum((centred * centred).sum(dims)) / n
        with torch.no_grad():
            self.num_batches_tracked += 1
            self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean.detach())
            self.running_var.mul_(1 - self.momentum).add_(self.momentum * var.detach() * n / max(n - 1, 1))
        y = centred * torch.rsqrt(var + self.eps).view(1, -1, 1, 1)
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
    channels; real and imaginary parts are not whitened separately. Running
    statistics: ``mu <- 0.1 mu + 0.9 mu``, ``v <- 0.1 v n / (n - 1) + 0.9 v``
    (unbiased, ``n = B H W``), starting at 0 and 1; evaluation uses them.
    There are no learned parameters.
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

    def _update(self, name: str, value: Tensor) -> None:
        buffer = getattr(self, name)
        buffer.mul_(1 - self.momentum).add_(self.momentum * value.detach())

    def forward(self, x: SplitFeatures) -> SplitFeatures:
        dims = (0, 2, 3)
        out = SplitFeatures()
        if x.re is not None:
            if self.training:
                n = batch_count(x.re)
                mean_re, mean_im = global_sum(x.re.sum(dims)) / n, global_sum(x.im.sum(dims)) / n
                dre, dim_ = x.re - mean_re.view(1, -1, 1, 1), x.im - mean_im.view(1, -1, 1, 1)
                var = global_sum((dre * dre + dim_ * dim_).sum(dims)) / n
                with torch.no_grad():
                    self._update("running_mean_re", mean_re)
                    self._update("running_mean_im", mean_im)
                    self._update("running_var_complex", var * n / max(n - 1, 1))
            else:
                dre = x.re - self.running_mean_re.view(1, -1, 1, 1)
                dim_ = x.im - self.running_mean_im.view(1, -1, 1, 1)
                var = self.running_var_complex
            scale = torch.rsqrt(var + STD_EPS).view(1, -1, 1, 1)
            out.re, out.im = dre * scale, dim_ * scale
        if x.real is not None:
            if self.training:
                n = batch_count(x.real)
                mean = global_sum(x.real.sum(dims)) / n
                d = x.real - mean.view(1, -1, 1, 1)
                var = global_sum((d * d).sum(dims)) / n
                with torch.no_grad():
                    self._update("running_mean_real", mean)
                    self._update("running_var_real", var * n / max(n - 1, 1))
            else:
                d = x.real - self.running_mean_real.view(1, -1, 1, 1)
                var = self.running_var_real
            out.real = d * torch.rsqrt(var + STD_EPS).view(1, -1, 1, 1)
        return out


def unitary_init(out_channels: int, in_channels: int, generator: torch.Generator | None = None) -> Tensor:
    """Complex weight with orthonormal rows (K <= Cin) or columns (K > Cin).

    Draw :math:`G \\in \\mathbb{C}^{K \\times C}` with i.i.d. standard complex Gaussian
    entries, take the thin SVD :math:`G = U S V^H` and return ``U`` if ``K > C`` else
    :math:`V^H`. Returned as a real tensor (2, K, C): ``[Re W, Im W]``.
    """
    g = torch.complex(torch.randn(out_channels, in_channels, generator=generator),
                      torch.randn(out_channels, in_channels, generator=generator))
    u, _, vh = torch.linalg.svd(g, full_matrices=False)
    w = u if out_channels > in_channels else vh
    w = w.to(torch.complex64)
    return torch.stack([w.real, w.imag]).contiguous()


class ComplexProjection(nn.Module):
    """Learned complex 1x1 convolution ``Pc`` without bias: :math:`y_k = \\sum_c W_{kc} x_c`.

    With ``W = A + iB``, complex input ``u + iv`` and real input channels ``r``:

    .. math::

        \\mathrm{Re}\\, y = A_c u - B_c v + A_r r, \\qquad \\mathrm{Im}\\, y = B_c u + A_c v + B_r r

    The complex part uses Gauss's 3-multiplication form, :math:`t_1 = A_c u`, :math:`t_2 = B_c v`,
    :math:`t_3 = (A_c + B_c)(u + v)`, :math:`\\mathrm{Re} = t_1 - t_2`,
    :math:`\\mathrm{Im} = t_3 - t_1 - t_2`, and real channels cost 2 real multiplications:
    ``3 Cc + 2 Cr`` real products per output channel instead of the reference's
    ``4 (Cc + Cr)``. Under autocast (bf16) the 4-multiplication form is used, since Gauss's
    form loses accuracy in low precision. The weight is stored as (2, K, Cc + Cr) =
    ``[A, B]`` (planar, so that ``A`` and ``B`` are contiguous matrices), weight decay acts on
    ``|w|^2``; input channel order is ``[complex..., real...]``.
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
        a, b = self.weight                                                # (K, Cc + Cr) each
        cc, k = self.n_complex, self.out_channels
        re = im = None
        if x.re is not None:
            ac, bc = a[:, :cc], b[:, :cc]
            if torch.is_autocast_enabled(x.re.device.type):
                stacked = torch.cat([x.re, x.im], 1)                    # concatenated once for both parts
                re = self._mm(torch.cat([ac, -bc], 1), stacked)
                im = self._mm(torch.cat([bc, ac], 1), stacked)
            else:
                t1, t2 = self._mm(ac, x.re), self._mm(bc, x.im)
                t3 = self._mm(ac + bc, x.re + x.im)
                re, im = t1 - t2, t3 - t1 - t2
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
    return SplitFeatures(None if x.re is None else x.re * inv, None if x.im is None else x.im * inv,
                         None if x.real is None else x.real * inv)
