"""A run's data: the splits of its training seed, and its batches for training and for evaluation.

Built once here for both stages that read data (train and evaluate), so that the model is scored on exactly the
images it was trained and tested on. For the in-memory data sets (:data:`pcn.data.datasets.IN_MEMORY`) each seed
has its own train / validation / test splits (:func:`pcn.data.splits.seed_splits`, per ``data.resplit`` and
``data.validation_fraction``), held on the device as uint8 pixels (:class:`pcn.data.batches.DeviceBatches`);
ImageNet is read in place through DataLoaders (:mod:`pcn.data.imagenet`), with no validation split.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Union

import torch

from pcn.data.batches import DeviceBatches, LoaderBatches
from pcn.data.datasets import IN_MEMORY, load_split
from pcn.data.splits import ArraySplit, seed_splits
from pcn.schema import Params

Batches = Union[DeviceBatches, LoaderBatches]


@dataclass(frozen=True)
class Shard:
    """Which share of every split this process reads: process ``rank`` of ``world`` (DDP), and the ImageNet
    loader's worker processes."""

    rank: int = 0
    world: int = 1
    loader_workers: int = 0


def run_splits(params: Params, data_dir: Path, card: dict, seed: int) -> dict[str, ArraySplit]:
    """The ``train`` / ``validation`` / ``test`` splits of the run with training seed ``seed`` (in-memory data)."""
    train, test = load_split(data_dir, card, "train"), load_split(data_dir, card, "test")
    d = params.data
    return seed_splits(train, test, card["name"], d.split_seed, seed, d.resplit, d.validation_fraction)


def in_order(split: ArraySplit, card: dict, batch_size: int, device: torch.device, shard: Shard) -> DeviceBatches:
    """Every image of ``split`` once, in order, without augmentation: the batches a model is scored on."""
    norm = card["normalization"]
    return DeviceBatches(
        split.images,
        split.labels,
        norm["mean"],
        norm["std"],
        batch_size,
        device,
        shuffle=False,
        augment=False,
        seed=0,
        rank=shard.rank,
        world=shard.world,
        pad=False,
    )


@dataclass(frozen=True)
class RunData:
    """The data of the run with training seed ``seed``: the prepared data set in ``data_dir`` (its ``card``), read
    onto ``device`` by this process's ``shard``; ImageNet's images are read in place from ``image_root``."""

    params: Params
    data_dir: Path
    card: dict
    device: torch.device
    seed: int
    shard: Shard = Shard()
    image_root: Path | None = None

    def training_batches(self, batch_size: int) -> tuple[Batches, Batches, Batches | None]:
        """The training batches (shuffled and augmented per ``data.augment``, drawn from the seed), and the test
        and validation batches in order (scored by at least 256 images at a time; no validation split: None)."""
        if self.card["name"] not in IN_MEMORY:
            return (*self.image_batches(batch_size, train=True), None)
        splits = run_splits(self.params, self.data_dir, self.card, self.seed)
        train, norm, augment = splits["train"], self.card["normalization"], self.params.data.augment
        shuffled = DeviceBatches(
            train.images,
            train.labels,
            norm["mean"],
            norm["std"],
            batch_size,
            self.device,
            shuffle=True,
            augment=augment == "cifar",
            seed=self.seed,
            rank=self.shard.rank,
            world=self.shard.world,
            positions=train.positions if augment == "translate" else None,
            translate_limit=self.card["image_size"] - self.card.get("digit_size", self.card["image_size"]),
        )
        scored, validation = max(batch_size, 256), splits["validation"]
        return (
            shuffled,
            in_order(splits["test"], self.card, scored, self.device, self.shard),
            in_order(validation, self.card, scored, self.device, self.shard) if len(validation.labels) else None,
        )

    def evaluation_batches(self, batch_size: int) -> tuple[Batches, Batches]:
        """The training split (for class statistics) and the test split, both in order and without augmentation."""
        if self.card["name"] not in IN_MEMORY:
            return self.image_batches(batch_size, train=False)
        splits = run_splits(self.params, self.data_dir, self.card, self.seed)
        return tuple(in_order(splits[s], self.card, batch_size, self.device, self.shard) for s in ("train", "test"))

    def image_batches(self, batch_size: int, train: bool) -> tuple[LoaderBatches, LoaderBatches]:
        """ImageNet's training and validation folders as DataLoaders: for training (``train``: shuffled and
        augmented per ``data.augment``; the validation split scored by at least 256 images at a time), or both in
        order."""
        from pcn.data.imagenet import image_folders, image_loader

        if self.image_root is None:
            raise ValueError(f"{self.card['name']} is read in place: give the folder of its images")
        train_set, test_set = image_folders(Path(self.image_root), self.params.data.augment if train else "none")
        common = dict(
            seed=self.seed if train else 0,
            rank=self.shard.rank,
            world=self.shard.world,
            workers=self.shard.loader_workers,
            pin_memory=self.device.type == "cuda",
        )
        test_batch = max(batch_size, 256) if train else batch_size
        return (
            LoaderBatches(image_loader(train_set, batch_size, train=train, **common), self.device),
            LoaderBatches(image_loader(test_set, test_batch, train=False, **common), self.device),
        )
