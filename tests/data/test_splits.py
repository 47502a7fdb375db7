"""Each training seed's own splits: disjoint, stratified, the same for every variant of a seed, another for another
seed."""

import numpy as np
import pytest

from pcn.data.splits import ArraySplit, seed_splits


def prepared(n_per_class=20, classes=4, test_per_class=5):
    labels = np.repeat(np.arange(classes), n_per_class)
    images = np.arange(len(labels), dtype=np.uint8).reshape(-1, 1, 1, 1)  # image n holds the value n
    test = np.concatenate([np.flatnonzero(labels == c)[:test_per_class] for c in range(classes)])
    train = np.setdiff1d(np.arange(len(labels)), test)
    return ArraySplit(images[train], labels[train]), ArraySplit(images[test], labels[test])


def ids(split: ArraySplit) -> set[int]:
    return set(split.images.ravel().tolist())


@pytest.mark.parametrize("resplit", [True, False])
def test_splits_are_disjoint_stratified_and_cover_the_data(resplit):
    train, test = prepared()
    s = seed_splits(train, test, "mnist5k", split_seed=0, seed=3, resplit=resplit, validation_fraction=0.25)
    parts = [ids(s[k]) for k in ("train", "validation", "test")]
    assert sum(map(len, parts)) == 80 and set().union(*parts) == set(range(80))  # a partition
    assert np.bincount(s["test"].labels).tolist() == [5] * 4  # test size kept per class
    assert np.bincount(s["validation"].labels).tolist() == [4] * 4  # 25% of 15 per class
    assert (parts[2] == ids(test)) == (not resplit)


def test_the_split_is_a_function_of_the_seeds_only():
    train, test = prepared()
    a = seed_splits(train, test, "mnist5k", 0, 1, True, 0.1)
    b = seed_splits(train, test, "mnist5k", 0, 1, True, 0.1)  # another variant, same seed: paired
    c = seed_splits(train, test, "mnist5k", 0, 2, True, 0.1)  # another seed: another test set
    d = seed_splits(train, test, "mnist5k", 1, 1, True, 0.1)  # another split seed
    assert all(ids(a[k]) == ids(b[k]) for k in a)
    assert ids(a["test"]) != ids(c["test"]) and ids(a["test"]) != ids(d["test"])


def test_official_test_sets_are_kept():
    train, test = prepared()
    s = seed_splits(train, test, "cifar10", 0, 5, True, 0.0)
    assert ids(s["test"]) == ids(test) and ids(s["train"]) == ids(train) and len(s["validation"].labels) == 0


def test_positions_follow_their_images():
    train, test = prepared()
    with_positions = [
        ArraySplit(x.images, x.labels, np.repeat(x.images.reshape(-1, 1), 2, axis=1).astype(np.int64))
        for x in (train, test)
    ]
    s = seed_splits(*with_positions, "translated_mnist", 0, 4, True, 0.2)
    for part in s.values():
        assert np.array_equal(part.positions[:, 0], part.images.ravel())
