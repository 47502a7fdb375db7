"""Batches for training and evaluation: in-memory data sets on the device, ImageNet through a DataLoader.

In-memory data sets (mnist5k, cifar10, synthetic) are small enough to live on the training
device as one uint8 tensor: :class:`DeviceBatches` draws each batch by index, applies the
augmentation to the whole batch (:func:`pcn.data.augment.crop_flip_batch`) and normalizes it
there, with no worker processes and no host-to-device copy per step. ImageNet goes through
a ``torch.utils.data.DataLoader`` (:class:`LoaderBatches`, see :mod:`pcn.data.imagenet`).

Both shard an epoch over the processes of a DDP run exactly like
``torch.utils.data.DistributedSampler`` (:func:`shard_indices`; tested against it) and expose
the same two things: ``len()`` (batches per epoch) and ``epoch(e)`` (an iterator of
``(images, labels)`` on the device).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import Tensor

from pcn.data.augment import crop_flip_batch, epoch_draws, epoch_positions, normalize, translate_batch


def shard_indices(n: int, epoch: int, seed: int, rank: int, world: int, shuffle: bool, pad: bool = True) -> Tensor:
    """Indices of the samples that process ``rank`` of ``world`` sees in ``epoch``.

    ``DistributedSampler`` semantics: a permutation drawn from ``seed + epoch`` (identity if
    not ``shuffle``), padded by repeating its head to a multiple of ``world`` (if ``pad``, so
    that every process gets as many samples), then every ``world``-th index from ``rank``.
    """
    if shuffle:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))
    else:
        order = torch.arange(n)
    if pad and n % world:
        total = math.ceil(n / world) * world
        order = torch.cat([order] * math.ceil(total / n))[:total]
    return order[rank::world]


class DeviceBatches:
    """Batches of an in-memory data set held on ``device`` as uint8 images (N, C, H, W).

    Parameters
    ----------
    images, labels : np.ndarray
        uint8 (N, C, H, W) and int64 (N,).
    mean, std : sequence of float
        Per-channel normalization.
    batch_size : int
        Images per batch (per process).
    shuffle, augment : bool
        Training order and CIFAR augmentation (draws from :func:`pcn.data.augment.epoch_draws`).
    seed, rank, world : int
        Order and augmentation seed; this process and the number of processes.
    pad : bool
        Pad the shard like ``DistributedSampler`` (training); without padding (evaluation)
        the shards partition the data exactly.
    positions, translate_limit : np.ndarray (N, 2), int
        With ``positions`` (where each canvas holds its digit), every epoch moves each digit to
        a new position drawn from ``(seed, epoch, image)``, uniform on ``{0, .., translate_limit}^2``
        (:func:`pcn.data.augment.translate_batch`; ``data.augment: translate``).
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        mean,
        std,
        batch_size: int,
        device: torch.device,
        *,
        shuffle: bool,
        augment: bool,
        seed: int,
        rank: int = 0,
        world: int = 1,
        pad: bool = True,
        positions: np.ndarray | None = None,
        translate_limit: int = 0,
    ):
        self.images = torch.from_numpy(np.ascontiguousarray(images)).to(device)  # (N, C, H, W) uint8
        self.labels = torch.from_numpy(np.ascontiguousarray(labels)).to(device)  # (N,) int64
        channels = self.images.shape[1]
        self.mean = torch.tensor(mean, dtype=torch.float32, device=device).view(channels, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=device).view(channels, 1, 1)
        self.batch_size, self.device = batch_size, device
        self.shuffle, self.augment, self.seed = shuffle, augment, seed
        self.rank, self.world, self.pad = rank, world, pad
        self.positions = None if positions is None else torch.from_numpy(np.asarray(positions)).to(device)
        self.translate_limit = translate_limit

    @property
    def num_samples(self) -> int:
        """Samples per epoch in this process's shard."""
        n = len(self.labels)
        return math.ceil(n / self.world) if self.pad else len(range(self.rank, n, self.world))

    def __len__(self) -> int:
        return math.ceil(self.num_samples / self.batch_size)

    def epoch(self, epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        n = len(self.labels)
        index = shard_indices(n, epoch, self.seed, self.rank, self.world, self.shuffle, self.pad).to(self.device)
        draws = epoch_draws(n, self.seed, epoch).to(self.device) if self.augment else None
        moves = (
            None
            if self.positions is None
            else epoch_positions(n, self.seed, epoch, self.translate_limit).to(self.device)
        )
        for start in range(0, len(index), self.batch_size):
            with _one_thread_on_cpu(self.device):
                batch = index[start : start + self.batch_size]
                images = self.images[batch]  # (B, C, H, W) uint8
                if draws is not None:
                    images = crop_flip_batch(images, draws.take(batch))
                if moves is not None:
                    images = translate_batch(images, self.positions[batch], moves[batch], self.translate_limit)
                images = normalize(images, self.mean, self.std)
            yield images, self.labels[batch]


@contextmanager
def _one_thread_on_cpu(device: torch.device):
    """Run a batch's assembly on one CPU thread (on CUDA: unchanged).

    Its operations are small (a few hundred KiB per batch); split over threads they gain little
    and, on a machine where another process holds a core, each parallel region waits for a
    scheduler time slice (milliseconds per operation: bench/RESULTS.md, contention). The
    results do not depend on the thread count (indexing, gathers and elementwise arithmetic).
    """
    if device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class LoaderBatches:
    """A ``DataLoader`` whose sampler has ``set_epoch``, moved to ``device`` batch by batch."""

    def __init__(self, loader, device: torch.device):
        self.loader, self.device = loader, device

    def __len__(self) -> int:
        return len(self.loader)

    def epoch(self, epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        self.loader.sampler.set_epoch(epoch)
        for images, labels in self.loader:
            yield images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)
