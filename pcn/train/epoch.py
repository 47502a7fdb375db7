"""One training epoch and one test pass (torchvision references' ``train_one_epoch`` / ``evaluate``, here
:func:`train_one_epoch` / :func:`run_test_pass`; "evaluate" is the stage that measures class separation).

Neither waits for the device during the pass: the loss, the top-k counts and the
non-finite check are accumulated in device tensors and read once, at the end (one host
synchronization per epoch instead of several per step). A NaN/Inf loss or gradient is
therefore detected at the end of the epoch, before anything of that epoch is saved, and
reported with the first bad step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from pcn.nn.collectives import all_reduce_sum_

#: Progress-bar loss/accuracy refreshes per epoch (each reads device values: a synchronization).
PROGRESS_REFRESHES = 10


class NonFiniteError(FloatingPointError):
    """A loss or gradient became NaN/Inf; carries where (1-based epoch and step)."""

    def __init__(self, what: str, epoch: int, step: int, steps: int):
        super().__init__(f"non-finite {what} at epoch {epoch}, step {step} of {steps}")
        self.what, self.epoch, self.step = what, epoch, step


@dataclass
class EpochStats:
    loss: float
    top1: float
    top5: float
    samples: int


def autocast(device: torch.device, amp: bool):
    """bf16 autocast on ``device`` (CUDA or CPU) when ``amp``; the filtering, modulus and statistics
    opt out of it and stay in float32, so only the Pc products and the classifier run in bf16."""
    if amp:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def step_lr(base_lr: float, epoch: int, step: int, gamma: float) -> float:
    """Step schedule :math:`\\eta(e) = \\eta_0 \\gamma^{\\lfloor e / s \\rfloor}` (set at the start of each epoch)."""
    return base_lr * gamma ** (epoch // step)


def build_optimizer(model: nn.Module, lr: float, momentum: float, weight_decay: float) -> torch.optim.SGD:
    """SGD with weight decay on all parameters (biases, BN and non-linearity parameters included), as the reference.

    The fused implementation makes one pass per parameter for decay, momentum and update, on
    CPU and CUDA (measured in bench/RESULTS.md).
    """
    return torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad],
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        fused=True,
    )


def _topk_correct(logits: Tensor, target: Tensor, k: int) -> Tensor:
    """Number of samples whose label is among the ``k`` largest logits (a device scalar)."""
    k = min(k, logits.shape[1])
    return (logits.topk(k, dim=1).indices == target[:, None]).any(dim=1).sum()


def loss_and_hits(logits: Tensor, target: Tensor) -> Tensor:
    """``[loss sum, top-1 hits, top-5 hits]`` (3,) float64 of one test batch: ``logits`` (B, K), ``target`` (B,)."""
    return torch.stack(
        [
            nn.functional.cross_entropy(logits, target, reduction="sum"),
            _topk_correct(logits, target, 1),
            _topk_correct(logits, target, 5),
        ]
    ).double()


def checked_stats(totals: Tensor, count: int, device: torch.device) -> EpochStats:
    """The statistics of a test pass from its summed :func:`loss_and_hits` and its ``count`` of samples (reduced
    across ranks). Raises ``FloatingPointError`` if the loss is not finite."""
    stats = _reduced_stats(totals, count, device)
    if not torch.isfinite(torch.tensor(stats.loss)):
        raise FloatingPointError(
            f"the evaluation loss is not finite ({stats.loss}): the model's weights or statistics hold NaN/Inf"
        )
    return stats


def _reduced_stats(totals: Tensor, count: int, device: torch.device) -> EpochStats:
    """Sum ``[loss sum, top-1 hits, top-5 hits]`` and the count over ranks; one read of the device."""
    values = all_reduce_sum_(
        torch.cat([totals, torch.tensor([float(count)], dtype=totals.dtype, device=device)])
    ).tolist()
    loss, c1, c5, n = values
    n = max(n, 1)
    return EpochStats(loss / n, c1 / n, c5 / n, int(n))


def train_one_epoch(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    epoch: int,
    steps: int,
    amp: bool = False,
    channels_last: bool = False,
    progress=None,
) -> EpochStats:
    """One pass over ``batches`` (``steps`` of them); ``epoch`` is 0-based.

    Raises :class:`NonFiniteError` (1-based epoch and step) if a loss or gradient was NaN/Inf.
    """
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    totals = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, top-1, top-5
    first_bad = torch.full((), -1, dtype=torch.int64, device=device)  # first non-finite step
    bad_kind = torch.zeros((), dtype=torch.int64, device=device)  # 1: loss, 2: gradient
    count = 0
    refresh = max(1, steps // PROGRESS_REFRESHES)
    for step, (images, target) in enumerate(batches):
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            logits = model(images)
        loss = nn.functional.cross_entropy(logits.float(), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None], foreach=True)
        loss_ok, grad_ok = torch.isfinite(loss), torch.isfinite(grad_norm)
        new_bad = (first_bad < 0) & ~(loss_ok & grad_ok)
        first_bad = torch.where(new_bad, step, first_bad)
        bad_kind = torch.where(new_bad, torch.where(loss_ok, 2, 1), bad_kind)
        optimizer.step()
        with torch.no_grad():
            n = target.shape[0]
            totals += torch.stack(
                [loss.detach() * n, _topk_correct(logits, target, 1), _topk_correct(logits, target, 5)]
            ).double()
        count += n
        if progress is not None:
            progress.update(1)
            if (step + 1) % refresh == 0:  # a read of the device: not every step
                progress.set_postfix(loss=f"{totals[0].item() / count:.3f}", acc=f"{totals[1].item() / count:.3f}")
    bad_step, kind = (int(v) for v in torch.stack([first_bad, bad_kind]).tolist())
    if bad_step >= 0:
        raise NonFiniteError("loss" if kind == 1 else "gradient", epoch + 1, bad_step + 1, steps)
    return _reduced_stats(totals, count, device)


@torch.inference_mode()
def run_test_pass(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    device: torch.device,
    amp: bool = False,
    channels_last: bool = False,
) -> EpochStats:
    """Loss, top-1 and top-5 accuracy over ``batches`` (sums reduced across ranks).

    Raises ``FloatingPointError`` if the loss is not finite.
    """
    model.eval()
    totals = torch.zeros(3, dtype=torch.float64, device=device)
    count = 0
    for images, target in batches:
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(device, amp):
            logits = model(images).float()
        totals += loss_and_hits(logits, target)
        count += target.shape[0]
    return checked_stats(totals, count, device)
