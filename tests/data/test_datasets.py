"""Data loading on small files written in the real on-disk formats, and data faults."""

import hashlib
import json
import pickle

import numpy as np
import pytest
import torch

from pcn.data.datasets import (
    DataError,
    TensorImageDataset,
    load_cifar10,
    load_split,
    prepare,
    read_card,
    stratified_split,
)

from project import write_jpeg


def write_cifar_batches(root, n_per_batch=20):
    """CIFAR-10 python pickles (the official format: dict with 'data' (N, 3072) uint8 and 'labels')."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    md5 = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            "batch_label": name,
            "labels": rng.integers(0, 10, n_per_batch).tolist(),
            "data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
            "filenames": [f"{i}.png" for i in range(n_per_batch)],
        }
        path = folder / name
        with open(path, "wb") as f:
            pickle.dump(batch, f)
        md5[name] = hashlib.md5(path.read_bytes()).hexdigest()
    return folder, md5


def test_mnist5k_split_is_stratified_and_fixed(tmp_path):
    card = prepare("mnist5k", tmp_path / "a", {"test_fraction": 0.2}, split_seed=0)
    assert card["splits"] == {"train": 4000, "test": 1000}
    assert card["class_counts"]["test"] == [100] * 10 and card["channels"] == 1 and card["image_size"] == 28
    again = prepare("mnist5k", tmp_path / "b", {"test_fraction": 0.2}, split_seed=0)
    assert again["checksums"] == card["checksums"] and again["digest"] == card["digest"]  # deterministic bytes
    other = prepare("mnist5k", tmp_path / "c", {"test_fraction": 0.2}, split_seed=1)
    assert other["digest"] != card["digest"]  # the split seed moves images between splits
    train = load_split(tmp_path / "a", card, "train")
    assert train.images.shape == (4000, 1, 28, 28) and train.images.dtype == np.uint8


def test_stratified_split_is_a_partition_with_the_class_proportions():
    labels = np.repeat(np.arange(3), [30, 60, 90])
    images = np.arange(180, dtype=np.uint8).reshape(180, 1, 1, 1)  # each image carries its index
    train, test = stratified_split(images, labels, 0.5, 0)
    assert np.bincount(test.labels).tolist() == [15, 30, 45] and np.bincount(train.labels).tolist() == [15, 30, 45]
    train_ids, test_ids = set(train.images.ravel().tolist()), set(test.images.ravel().tolist())
    assert not train_ids & test_ids and train_ids | test_ids == set(range(180))
    assert all(labels[i] == y for i, y in zip(test.images.ravel(), test.labels))
    with pytest.raises(DataError, match="both splits must be non-empty"):
        stratified_split(images, labels, 0.001, 0)


def test_cifar10_reads_real_pickle_format(tmp_path):
    folder, md5 = write_cifar_batches(tmp_path)
    train, test, classes = load_cifar10(tmp_path, download=False, md5=md5)
    assert train.images.shape == (100, 3, 32, 32) and test.images.shape == (20, 3, 32, 32)
    assert classes[0] == "airplane"
    with open(folder / "test_batch", "rb") as f:
        raw = pickle.load(f)
    assert np.array_equal(test.images[3].reshape(-1), raw["data"][3])  # channel-major rows, as documented
    card = prepare("cifar10", tmp_path / "prepared", {"root": tmp_path, "download": False}, 0, cifar_md5=md5)
    assert card["normalization"]["mean"] == (0.485, 0.456, 0.406)  # ImageNet statistics, as the reference


def test_cifar10_faults(tmp_path):
    with pytest.raises(DataError, match="does not exist; set data.root"):
        load_cifar10(tmp_path, download=False)
    folder, md5 = write_cifar_batches(tmp_path)
    with pytest.raises(DataError, match="checksum mismatch for .*data_batch_1"):
        load_cifar10(tmp_path, download=False)  # official checksums: these files differ
    path = folder / "data_batch_2"
    path.write_bytes(path.read_bytes()[:1000])  # truncated
    with pytest.raises(DataError, match="checksum mismatch for .*data_batch_2"):
        load_cifar10(tmp_path, download=False, md5=md5)
    md5["data_batch_2"] = hashlib.md5(path.read_bytes()).hexdigest()  # truncated but "matching": unreadable
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
    from pcn.data.imagenet import image_folders

    write_image_folder(tmp_path / "imagenet", mode="L")  # grayscale files are converted to RGB
    card = prepare("imagenet", tmp_path / "prepared", {"root": tmp_path / "imagenet", "verify": True}, 0)
    assert card["classes"] == ["cat", "dog"] and card["splits"] == {"train": 4, "test": 4}
    assert card["listing"]["files"] == 8 and card["digest"] == card["listing"]["sha256"]
    train, val = image_folders(tmp_path / "imagenet", "imagenet")
    x, y = train[0]
    assert x.shape == (3, 224, 224) and val[3][0].shape == (3, 224, 224)


def test_imagenet_faults(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        prepare("imagenet", tmp_path / "p", {"root": tmp_path / "missing", "verify": False}, 0)
    write_image_folder(tmp_path / "imagenet")
    (tmp_path / "imagenet" / "train" / "empty").mkdir()
    with pytest.raises(DataError, match="class folder .*empty is empty"):
        prepare("imagenet", tmp_path / "p", {"root": tmp_path / "imagenet", "verify": False}, 0)


def test_prepared_data_faults(tmp_path):
    synthetic = dict(n_train=8, n_test=4, image_size=8, channels=1, classes=2)
    card = prepare("synthetic", tmp_path, synthetic, 0)
    load_split(tmp_path, card, "train")
    path = tmp_path / "train_images.npy"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="checksum mismatch with card.json"):
        load_split(tmp_path, card, "train")
    np.save(tmp_path / "test_images.npy", np.zeros((4, 3, 8, 8), np.uint8))  # RGB where the card says grayscale
    card["checksums"].pop("test_images.npy")
    with pytest.raises(DataError, match="grayscale/RGB or size mismatch"):
        load_split(tmp_path, card, "test")
    (tmp_path / "card.json").write_text("{broken")
    with pytest.raises(DataError, match="not valid JSON"):
        read_card(tmp_path)
    with pytest.raises(DataError, match="run the fetch stage first"):
        read_card(tmp_path / "nowhere")


def test_cifar_augmentation_pads_with_normalized_zero():
    from pcn.data.datasets import ArraySplit

    images = np.full((1, 3, 32, 32), 255, np.uint8)
    ds = TensorImageDataset(ArraySplit(images, np.zeros(1, np.int64)), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), "cifar")
    torch.manual_seed(0)
    values, zero_fraction = set(), []
    for _ in range(200):
        x, _ = ds[0]
        assert x.shape == (3, 32, 32)
        values |= set(torch.unique(x).tolist())
        zero_fraction.append(float((x == -2.0).float().mean()))
    assert values == {2.0, -2.0}  # image value and padded (raw) zero
    # shifts of 0..4 pixels each way: expected zero share 1 - (E[32 - |d|] / 32)^2 = 1 - (29.78 / 32)^2 = 0.134
    assert abs(np.mean(zero_fraction) - (1 - (1 - 20 / 9 / 32) ** 2)) < 0.015


def test_synthetic_card_roundtrip(tmp_path):
    card = prepare("synthetic", tmp_path, dict(n_train=12, n_test=6, image_size=16, channels=2, classes=3), 3)
    assert json.loads((tmp_path / "card.json").read_text()) == json.loads(json.dumps(card))
    assert card["class_counts"]["train"] == [4, 4, 4]


def test_truncated_jpeg_is_named_at_load_and_at_verification(tmp_path):
    from pcn.data.imagenet import load_rgb, verify_images

    good, bad = tmp_path / "train/cat/good.jpg", tmp_path / "train/cat/bad.jpg"
    write_jpeg(good)
    write_jpeg(bad, size=(300, 300))
    bad.write_bytes(bad.read_bytes()[:600])  # truncated mid-stream
    assert load_rgb(str(good)).size == (64, 48)
    with pytest.raises(DataError, match=r"cannot decode image .*bad\.jpg"):
        load_rgb(str(bad))
    with pytest.raises(DataError, match=r"1 of 2 images cannot be decoded:\n .*bad\.jpg"):
        verify_images(tmp_path)


def test_listing_changes_with_the_folder(tmp_path):
    import os

    from pcn.data.imagenet import folder_listing

    write_jpeg(tmp_path / "train/cat/a.jpg")
    write_jpeg(tmp_path / "val/cat/b.jpg")
    first = folder_listing(tmp_path)
    assert first["files"] == 2 and folder_listing(tmp_path) == first  # stable when nothing changes
    write_jpeg(tmp_path / "train/cat/c.jpg")
    added = folder_listing(tmp_path)
    assert added["files"] == 3 and added["sha256"] != first["sha256"]
    (tmp_path / "train/cat/c.jpg").unlink()
    assert folder_listing(tmp_path) == first
    os.utime(tmp_path / "train/cat/a.jpg", ns=(1, 1))  # same name and size, touched
    assert folder_listing(tmp_path)["sha256"] != first["sha256"]


def test_imagenet_transforms_depend_on_seed_epoch_and_image_only(tmp_path):
    """Crops and flips are the same whatever the number of loader workers or their order."""
    from pcn.data.imagenet import image_folders, image_loader

    for i in range(4):
        write_jpeg(
            tmp_path / f"train/{'cat' if i % 2 else 'dog'}/{i}.jpg",
            size=(80, 60),
            color=(40 * i + 50, 90, 10),
            gradient=True,
        )
        write_jpeg(tmp_path / f"val/{'cat' if i % 2 else 'dog'}/{i}.jpg")
    train, _ = image_folders(tmp_path, "imagenet")

    def epoch_images(workers, epoch, seed=3):
        loader = image_loader(train, 2, train=True, seed=seed, rank=0, world=1, workers=workers, pin_memory=False)
        loader.sampler.set_epoch(epoch)
        return torch.cat([x for x, _ in loader])

    a, b = epoch_images(0, 1), epoch_images(2, 1)
    assert torch.equal(a, b)
    assert not torch.equal(a, epoch_images(0, 2))  # another epoch, other crops
    assert not torch.equal(a, epoch_images(0, 1, seed=4))  # another seed: other order or crops
    from pcn.data.imagenet import SeededImages

    seeded = SeededImages(train, 3)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    assert torch.equal(seeded[(1, 2)][0], seeded[(1, 2)][0])
    same_image = [SeededImages(train, seed)[(1, 2)][0] for seed in (3, 4, 5)]
    assert not all(torch.equal(same_image[0], x) for x in same_image[1:])  # the seed changes an image's crop
    assert torch.equal(torch.get_rng_state(), state)  # the caller's random state is untouched


def test_symlinked_class_folders_count_the_same_everywhere_and_loops_are_named(tmp_path):
    """One rule for scan, card and loader: links to folders are followed (the usual way to make a subset); a
    folder reached twice (a loop) stops with its name."""
    from pcn.data.imagenet import folder_listing, image_folders

    full = tmp_path / "full"
    write_image_folder(full, classes=("cat", "dog", "owl"), per_class=2)
    subset = tmp_path / "subset"
    for split in ("train", "val"):
        (subset / split).mkdir(parents=True)
        for c in ("cat", "dog"):  # a subset of 2 classes, by links
            (subset / split / c).symlink_to(full / split / c, target_is_directory=True)
    card = prepare("imagenet", tmp_path / "p", {"root": subset, "verify": True}, 0)
    train, val = image_folders(subset, "none")
    assert card["splits"] == {"train": 4, "test": 4} and len(train) == len(val) == 4
    assert card["listing"]["files"] == folder_listing(subset)["files"] == 8
    (full / "train" / "cat" / "again").symlink_to(full / "train", target_is_directory=True)  # a loop
    for read in (
        lambda: folder_listing(subset),
        lambda: image_folders(subset, "none"),
        lambda: prepare("imagenet", tmp_path / "q", {"root": subset, "verify": False}, 0),
    ):
        with pytest.raises(DataError, match=r"cat/again/cat is .*reached twice"):
            read()


def test_a_decompression_bomb_names_the_file(tmp_path, monkeypatch):
    from PIL import Image

    from pcn.data.imagenet import load_rgb

    path = tmp_path / "train/cat/huge.png"
    path.parent.mkdir(parents=True)
    Image.new("RGB", (200, 200)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 40,000 pixels > 2 x the limit
    with pytest.raises(DataError, match=r"cannot decode image .*huge\.png.*decompression bomb"):
        load_rgb(str(path))
