"""What a training run is built from: its identity (variant, seed, recipe), the data batches of its splits,
the model and optimizer, and its resume key (:func:`setup`, called by stages/train.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Union

import torch

from pcn.data.batches import DeviceBatches, LoaderBatches
from pcn.data.datasets import IN_MEMORY, read_card
from pcn.data.errors import DataError
from pcn.files import file_digest
from pcn.nn.phase_collapse import count_parameters
from pcn.pipeline.build import InputSpec, build_model
from pcn.schema import Params, VariantConfig
from pcn.train import checkpoint
from pcn.train.distributed import DistInfo
from pcn.train.epoch import build_optimizer

from common import CHECKPOINTS_DIR, DATA_DIR, TRAIN_DIR, code_digest, fail, resolve_data_root, run_name
from run_inputs import run_splits

Batches = Union[DeviceBatches, LoaderBatches]


@dataclass(frozen=True)
class RunId:
    """Which run this is: a variant of params.yaml's ``models`` with one seed, and its recipe."""

    variant_name: str
    seed: int
    variant: VariantConfig
    recipe: dict  # lr, epochs, lr_step, batch_size (VariantConfig.recipe)

    @property
    def name(self) -> str:  # "<variant>-<seed>"
        return run_name(self.variant_name, self.seed)


@dataclass
class Networks:
    """The model, what the optimizer steps through (DDP / compiled wrapper), and the optimizer."""

    model: torch.nn.Module
    train_model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    n_parameters: int


@dataclass(frozen=True)
class ResumeKey:
    """What the run depends on (:func:`key_parts`) and its digest, saved with every checkpoint."""

    parts: dict
    value: str


@dataclass
class Setup:
    """Everything a training run needs, built once by :func:`setup`."""

    params: Params
    run: RunId
    info: DistInfo
    device: torch.device
    card: dict  # data/prepared/card.json
    train_batches: Batches
    test_batches: Batches
    validation_batches: Batches | None  # data.validation_fraction of the training part, or None
    nets: Networks
    key: ResumeKey

    @property
    def checkpoint_path(self) -> Path:
        return CHECKPOINTS_DIR / self.run.name / "last.pt"

    @property
    def out_dir(self) -> Path:
        return TRAIN_DIR / self.run.name


def key_parts(params, variant: str, seed: int) -> dict:
    """What the run depends on: its params (the data card's digest among them) and the code it runs."""
    return {
        "params": params.training_params(variant, seed),
        "code": code_digest("stages/train.py"),
        "data": file_digest(DATA_DIR / "card.json"),
    }


def build_batches(params, card: dict, batch_size: int, info: DistInfo, device: torch.device, seed: int):
    """Training, test and validation batches (None without a validation split): on the device for in-memory
    data sets (the seed's splits, :func:`run_inputs.run_splits`), DataLoaders for ImageNet."""
    if card["name"] in IN_MEMORY:
        norm = card["normalization"]
        splits = run_splits(params, DATA_DIR, card, seed)
        train = splits["train"]
        common = dict(rank=info.rank, world=info.world_size, seed=seed)
        translate = params.data.augment == "translate"

        def scored(split):
            return DeviceBatches(
                split.images,
                split.labels,
                norm["mean"],
                norm["std"],
                max(batch_size, 256),
                device,
                shuffle=False,
                augment=False,
                pad=False,
                **common,
            )

        return (
            DeviceBatches(
                train.images,
                train.labels,
                norm["mean"],
                norm["std"],
                batch_size,
                device,
                shuffle=True,
                augment=params.data.augment == "cifar",
                **common,
                positions=train.positions if translate else None,
                translate_limit=card["image_size"] - card.get("digit_size", card["image_size"]),
            ),
            scored(splits["test"]),
            scored(splits["validation"]) if len(splits["validation"].labels) else None,
        )
    from pcn.data.imagenet import default_workers, image_folders, image_loader

    workers = params.runtime.num_workers
    workers = default_workers(info.world_size) if workers == "auto" else workers
    train_set, test_set = image_folders(resolve_data_root(card["root"]), params.data.augment)
    common = dict(seed=seed, rank=info.rank, world=info.world_size, workers=workers, pin_memory=device.type == "cuda")
    return (
        LoaderBatches(image_loader(train_set, batch_size, train=True, **common), device),
        LoaderBatches(image_loader(test_set, max(batch_size, 256), train=False, **common), device),
        None,
    )


def setup(params, args, info: DistInfo, device: torch.device) -> Setup:
    variant = params.variant(args.variant)
    recipe = variant.recipe(params.train)
    try:
        card = read_card(DATA_DIR)
        batches = build_batches(params, card, recipe["batch_size"] // info.world_size, info, device, args.seed)
    except DataError as exc:
        fail(str(exc))
    torch.manual_seed(args.seed)  # identical initialization on every rank
    model = build_model(params.network, params.filters, variant, InputSpec.from_card(card))
    n_parameters = count_parameters(model)
    model.to(device)
    if params.train.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, recipe["lr"], params.train.momentum, params.train.weight_decay)
    train_model = model
    if info.enabled:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[info.local_rank] if device.type == "cuda" else None, broadcast_buffers=False
        )
    if params.train.compile:
        train_model = torch.compile(train_model)
    parts = key_parts(params, args.variant, args.seed)
    return Setup(
        params=params,
        run=RunId(args.variant, args.seed, variant, recipe),
        info=info,
        device=device,
        card=card,
        train_batches=batches[0],
        test_batches=batches[1],
        validation_batches=batches[2],
        nets=Networks(model, train_model, optimizer, n_parameters),
        key=ResumeKey(parts, checkpoint.resume_key(parts)),
    )
