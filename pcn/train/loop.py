"""The epoch loop of a training run, resumable at any epoch boundary.

:func:`fit` runs the remaining epochs of a :class:`TrainingState`: the learning-rate step
schedule, one training pass and one test pass per epoch, the history and the best epoch.
After each epoch it calls ``on_epoch_end(state, row)``, where the caller saves the
checkpoint first and then logs (so a tracking failure never loses an epoch). Everything
random is a function of the seed and the epoch (initialization, data order, augmentation),
so a run resumed from the checkpoint of epoch ``k`` continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from pcn.names import SELECTIONS
from pcn.train.epoch import EpochStats, run_test_pass, step_lr, train_one_epoch


@dataclass
class Schedule:
    lr: float
    epochs: int
    lr_step: int
    lr_gamma: float

    def lr_at(self, epoch: int) -> float:
        return step_lr(self.lr, epoch, self.lr_step, self.lr_gamma)


@dataclass
class TrainingState:
    """What a checkpoint needs besides the model and optimizer: completed epochs, history, best epoch."""

    epoch: int = 0  # completed epochs
    history: list[dict] = field(default_factory=list)  # one row per completed epoch
    best: dict = field(default_factory=lambda: {"acc": -1.0, "top5": 0.0, "epoch": 0})
    best_state: dict | None = None  # model state of the best epoch (select == "best")

    def as_dict(self) -> dict:
        return {"epoch": self.epoch, "history": self.history, "best": self.best, "best_state": self.best_state}

    @classmethod
    def from_dict(cls, d: dict) -> "TrainingState":
        return cls(d["epoch"], list(d["history"]), dict(d["best"]), d.get("best_state"))


def epoch_row(
    epoch: int, lr: float, train: EpochStats, test: EpochStats, seconds: float, validation: EpochStats | None = None
) -> dict:
    """The history row of (0-based) ``epoch``; epochs are numbered from 1 in the row."""
    row = {
        "epoch": epoch + 1,
        "lr": lr,
        "train_loss": train.loss,
        "train_acc": train.top1,
        "test_loss": test.loss,
        "test_acc": test.top1,
        "test_top5": test.top5,
        "epoch_seconds": seconds,
        "images_per_second": train.samples / seconds if seconds > 0 else 0.0,
    }
    if validation is not None:
        row.update(val_loss=validation.loss, val_acc=validation.top1)
    return row


def fit(
    model: nn.Module,
    train_model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_batches,
    test_batches,
    schedule: Schedule,
    state: TrainingState,
    device: torch.device,
    *,
    select: str = "last",
    amp: bool = False,
    channels_last: bool = False,
    on_epoch_end: Callable[[TrainingState, dict], None] | None = None,
    progress: Callable[[int, int], object] | None = None,
    validation_batches=None,
) -> TrainingState:
    """Train from ``state.epoch`` to ``schedule.epochs``; returns the final state.

    ``train_model`` is what runs forward/backward (``model``, or its DDP / compiled wrapper);
    ``model`` is evaluated and snapshotted. ``train_batches`` and ``test_batches`` have
    ``len()`` and ``epoch(e)`` (:mod:`pcn.data.batches`). ``progress(epoch, steps)`` may
    return a progress bar (``update``, ``set_postfix``, ``close``). A non-finite loss or
    gradient raises :class:`pcn.train.epoch.NonFiniteError` before ``on_epoch_end`` of that epoch.
    With ``validation_batches``, every epoch is also scored on them (``val_loss``, ``val_acc``): the
    split on which hyperparameters are chosen.
    """
    if select not in SELECTIONS:
        raise ValueError(f"unknown model selection {select!r}; valid: {', '.join(SELECTIONS)}")
    for epoch in range(state.epoch, schedule.epochs):
        lr = schedule.lr_at(epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        steps = len(train_batches)
        bar = progress(epoch, steps) if progress is not None else None
        start = time.perf_counter()
        try:
            train = train_one_epoch(
                train_model, train_batches.epoch(epoch), optimizer, device, epoch, steps, amp, channels_last, bar
            )
        finally:
            if bar is not None:
                bar.close()
        seconds = time.perf_counter() - start
        test = run_test_pass(model, test_batches.epoch(0), device, amp, channels_last)
        validation = (
            None
            if validation_batches is None
            else run_test_pass(model, validation_batches.epoch(0), device, amp, channels_last)
        )
        row = epoch_row(epoch, lr, train, test, seconds, validation)
        state.history.append(row)
        state.epoch = epoch + 1
        if test.top1 > state.best["acc"]:
            state.best = {"acc": test.top1, "top5": test.top5, "epoch": epoch + 1}
            if select == "best":
                state.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        if on_epoch_end is not None:
            on_epoch_end(state, row)
    return state


def final_state_dict(model: nn.Module, state: TrainingState, select: str) -> dict:
    """The model weights a finished run keeps: the last epoch's, or the best epoch's."""
    if select == "best" and state.best_state is not None:
        return state.best_state
    return model.state_dict()
