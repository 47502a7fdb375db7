"""Data loading on small files written in the real on-disk formats, and data faults."""
import hashlib
import json
import pickle

import numpy as np
import pytest
import torch

from pcn.data import (DataError, TensorImageDataset, build_datasets, load_cifar10, load_split, prepare, read_card,
                      stratified_split)


def write_cifar_batches(root, n_per_batch=20):
    """CIFAR-10 python pickles (the official format: dict with 'data' (N, 3072) uint8 and 'labels')."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    md5 = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {"batch_label": name, "labels": rng.integers(0, 10, n_per_batch).tolist(),
                 "data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
                 "filenames": [f"{i}.png" for i in range(n_per_batch)]}
        path = folder / name
        with open(path, "wb") as f:
            pickle.dump(batch, f)
        md5[name] = hashlib.md5(path.read_bytes()).hexdigest()
    return folder, md5


def test_mnist5k_split_is_stratified_and_fixed(tmp_path):
    card = prepare("mnist5k", tmp_path / "a", root=tmp_path, download=False, test_fraction=0.2, seed=0)
    assert card["splits"] == {"train": 4000, "test": 1000}
    assert card["class_counts"]["test"] == [100] * 10 and card["channels"] == 1 and card["image_size"] == 28
    again = prepare("mnist5k", tmp_path / "b", root=tmp_path, download=False, test_fraction=0.2, seed=0)
    assert again["checksums"] == card["checksums"]            # deterministic bytes
    train, test = build_datasets(tmp_path / "a", card, "none")
    x, y = train[0]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and 0 <= int(y) < 10


def test_stratified_split_keeps_proportions():
    labels = np.repeat(np.arange(3), [30, 60, 90])
    train, test = stratified_split(np.zeros((180, 1, 2, 2), np.uint8), labels, 0.5, 0)
    assert np.bincount(test.labels).tolist() == [15, 30, 45]
    assert len(set(map(tuple, train.images.reshape(90, -1)))) >= 1 and len(train.labels) == 90


def test_cifar10_reads_real_pickle_format(tmp_path):
    folder, md5 = write_cifar_batches(tmp_path)
    train, test, classes = load_cifar10(tmp_path, download=False, md5=md5)
    assert train.images.shape == (100, 3, 32, 32) and test.images.shape == (20, 3, 32, 32)
    assert classes[0] == "airplane"
    with open(folder / "test_batch", "rb") as f:
        raw = pickle.load(f)
    assert np.array_equal(test.images[3].reshape(-1), raw["data"][3])   # channel-major rows, as documented
    card = prepare("cifar10", tmp_path / "prepared", root=tmp_path, download=False, test_fraction=0.2, seed=0,
                   cifar_md5=md5)
    assert card["normalization"]["mean"] == (0.485, 0.456, 0.406)       # ImageNet statistics, as the reference


def test_cifar10_faults(tmp_path):
    with pytest.raises(DataError, match="does not exist; set data.root"):
        load_cifar10(tmp_path, download=False)
    folder, md5 = write_cifar_batches(tmp_path)
    with pytest.raises(DataError, match="checksum mismatch for .*data_batch_1"):
        load_cifar10(tmp_path, download=False)                          # official checksums: these files differ
    path = folder / "data_batch_2"
    path.write_bytes(path.read_bytes()[:1000])                          # truncated
    with pytest.raises(DataError, match="checksum mismatch for .*data_batch_2"):
        load_cifar10(tmp_path, download=False, md5=md5)
    md5["data_batch_2"] = hashlib.md5(path.read_bytes()).hexdigest()    # truncated but "matching": unreadable
    with pytest.raises(DataError, match="cannot read"):
        load_cifar10(tmp_path, download=False, md5=md5)


def test_cifar10_download_failure_is_clear(tmp_path):
    with pytest.raises(DataError, match="download into .* failed"):
        load_cifar10(tmp_path / "none", download=True)


def write_image_folder(root, classes=("cat", "dog"), per_class=2, mode="RGB"):
    from PIL import Image
    for split in ("train", "val"):
        for c in classes:
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                Image.new(mode, (300, 260), color=40 * i).save(root / split / c / f"{i}.png")


def test_imagenet_image_folder(tmp_path):
    write_image_folder(tmp_path / "imagenet", mode="L")                 # grayscale files are converted to RGB
    card = prepare("imagenet", tmp_path / "prepared", root=tmp_path / "imagenet", download=False,
                   test_fraction=0.2, seed=0)
    assert card["classes"] == ["cat", "dog"] and card["splits"] == {"train": 4, "test": 4}
    train, val = build_datasets(tmp_path / "prepared", card, "imagenet")
    x, y = train[0]
    assert x.shape == (3, 224, 224) and val[3][0].shape == (3, 224, 224)


def test_imagenet_faults(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        prepare("imagenet", tmp_path / "p", root=tmp_path / "missing", download=False, test_fraction=0.2, seed=0)
    write_image_folder(tmp_path / "imagenet")
    (tmp_path / "imagenet" / "train" / "empty").mkdir()
    with pytest.raises(DataError, match="class folder .*empty is empty"):
        prepare("imagenet", tmp_path / "p", root=tmp_path / "imagenet", download=False, test_fraction=0.2, seed=0)


def test_prepared_data_faults(tmp_path):
    synthetic = dict(n_train=8, n_test=4, image_size=8, channels=1, classes=2)
    card = prepare("synthetic", tmp_path, root=tmp_path, download=False, test_fraction=0.2, seed=0,
                   synthetic=synthetic)
    load_split(tmp_path, card, "train")
    path = tmp_path / "train_images.npy"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="checksum mismatch with card.json"):
        load_split(tmp_path, card, "train")
    np.save(tmp_path / "test_images.npy", np.zeros((4, 3, 8, 8), np.uint8))   # RGB where the card says grayscale
    card["checksums"].pop("test_images.npy")
    with pytest.raises(DataError, match="grayscale/RGB or size mismatch"):
        load_split(tmp_path, card, "test")
    (tmp_path / "card.json").write_text("{broken")
    with pytest.raises(DataError, match="not valid JSON"):
        read_card(tmp_path)
    with pytest.raises(DataError, match="run the fetch stage first"):
        read_card(tmp_path / "nowhere")


def test_cifar_augmentation_pads_with_normalized_zero():
    from pcn.data import ArraySplit
    images = np.full((1, 3, 32, 32), 255, np.uint8)
    ds = TensorImageDataset(ArraySplit(images, np.zeros(1, np.int64)), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), "cifar")
    torch.manual_seed(0)
    values = set()
    for _ in range(20):
        x, _ = ds[0]
        assert x.shape == (3, 32, 32)
        values |= set(torch.unique(x).tolist())
    assert values <= {2.0, -2.0} and -2.0 in values                    # image value and padded zero


def test_synthetic_card_roundtrip(tmp_path):
    card = prepare("synthetic", tmp_path, root=tmp_path, download=False, test_fraction=0.2, seed=3,
                   synthetic=dict(n_train=12, n_test=6, image_size=16, channels=2, classes=3))
    assert json.loads((tmp_path / "card.json").read_text()) == json.loads(json.dumps(card))
    assert card["class_counts"]["train"] == [4, 4, 4]
