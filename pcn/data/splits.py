"""Splits of an in-memory data set: arrays of one split, the stratified train/test split, and each
training seed's own train / validation / test splits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pcn.data.errors import DataError

#: Data sets whose test split is ours to draw (CIFAR-10 and ImageNet keep their official test sets).
RESPLITTABLE = ("mnist5k", "translated_mnist", "synthetic")


@dataclass
class ArraySplit:
    images: np.ndarray  # (N, C, H, W) uint8
    labels: np.ndarray  # (N,) int64
    positions: np.ndarray | None = None  # (N, 2) int64: (top, left) of the digit (translated_mnist)

    def take(self, index: np.ndarray) -> ArraySplit:
        return ArraySplit(
            self.images[index], self.labels[index], None if self.positions is None else self.positions[index]
        )


def stratified_split(
    images: np.ndarray, labels: np.ndarray, test_fraction: float, seed: int
) -> tuple[ArraySplit, ArraySplit]:
    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(test_fraction * len(idx)))
        if not 0 < n_test < len(idx):
            raise DataError(
                f"test_fraction {test_fraction} leaves {n_test} of the {len(idx)} images of class {c} "
                "for testing: both splits must be non-empty"
            )
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    tr, te = np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(test_idx))
    return ArraySplit(images[tr], labels[tr]), ArraySplit(images[te], labels[te])


def seed_splits(
    train: ArraySplit,
    test: ArraySplit,
    name: str,
    split_seed: int,
    seed: int,
    resplit: bool,
    validation_fraction: float,
) -> dict[str, ArraySplit]:
    """The train / validation / test splits that the run with training seed ``seed`` uses.

    With ``resplit`` (and a data set of :data:`RESPLITTABLE`), the prepared train and test
    images are pooled and split again, stratified, with as many test images per class as the
    prepared test split has, by a permutation drawn from ``(split_seed, seed)``: each seed has
    its own test set, so the spread over seeds includes the test-set sampling, and every
    variant trained with the same seed sees the same split (comparisons stay paired). Then a
    validation split of ``round(validation_fraction * n_c)`` images per class is carved from
    the training part (used to choose hyperparameters, never the test split). Without
    ``resplit`` the prepared test split is kept and only the validation split is drawn.
    """
    if resplit and name in RESPLITTABLE:
        pool = ArraySplit(
            *(
                np.concatenate([a, b]) if a is not None else None
                for a, b in zip(
                    (train.images, train.labels, train.positions), (test.images, test.labels, test.positions)
                )
            )
        )
        rng = np.random.default_rng(np.random.SeedSequence([split_seed, seed, 1]))
        test_counts = np.bincount(test.labels, minlength=int(pool.labels.max()) + 1)
        drawn_test, drawn_train = [], []
        for c, n_test in enumerate(test_counts):
            idx = rng.permutation(np.flatnonzero(pool.labels == c))
            drawn_test.append(idx[:n_test])
            drawn_train.append(idx[n_test:])
        train, test = pool.take(np.sort(np.concatenate(drawn_train))), pool.take(np.sort(np.concatenate(drawn_test)))
    rng = np.random.default_rng(np.random.SeedSequence([split_seed, seed, 2]))
    val_idx = []
    for c in np.unique(train.labels):
        idx = rng.permutation(np.flatnonzero(train.labels == c))
        val_idx.append(idx[: int(round(validation_fraction * len(idx)))])
    val = np.sort(np.concatenate(val_idx))
    keep = np.setdiff1d(np.arange(len(train.labels)), val)
    return {"train": train.take(keep), "validation": train.take(val), "test": test}
