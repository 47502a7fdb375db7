"""ImageNet as an ImageFolder tree read in place: listing, verification and loading.

* :func:`folder_listing` lists every image (relative path, size, modification time) so that
  the pipeline can tell when images are added, removed or replaced (the ``scan`` stage);
* :func:`verify_images` decodes every image (optional, slow) and names each unreadable one;
* :func:`load_rgb` decodes one image and, if it cannot, raises :class:`~pcn.data.errors.DataError`
  naming the file (PIL's own errors, e.g. ``Truncated File Read``, do not);
* :class:`EpochSampler` and :class:`SeededImages` make the random transforms a function of
  ``(seed, epoch, image index)``: a run resumed at any epoch, with any number of loader
  workers, sees the same crops and flips as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import torch
from torch.utils.data import Dataset, DistributedSampler

from pcn.data.augment import stream_seed
from pcn.data.errors import DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def image_files(root: Path) -> list[Path]:
    """Every image file under ``root``, in a fixed order: the one rule of the scan, the card and the loader.

    Symbolic links to folders are followed (linking class folders is the usual way to make a subset);
    a folder reached twice (a symbolic-link loop, or two links to one folder) stops with both names, before
    any count or epoch could include it again. An image file must be a regular file: a link to a file (a training
    image linked into ``val/``) or anything else named like an image (a FIFO, which would hang the first read) is
    refused by name, unopened.
    """
    seen: dict[str, str] = {}
    files = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            raise DataError(
                f"imagenet: {dirpath} is {seen[real]} reached twice (a symbolic link loop, or two links "
                "to one folder); remove the link"
            )
        seen[real] = dirpath
        dirnames.sort()
        for name in sorted(filenames):
            if name.lower().endswith(IMAGE_EXTENSIONS):
                files.append(regular_image(Path(dirpath) / name))
    return files


def regular_image(path: Path) -> Path:
    """``path``, if it is a regular file (not followed if a link); else :class:`DataError` naming it."""
    mode = os.lstat(path).st_mode
    if stat.S_ISLNK(mode):
        raise DataError(
            f"imagenet: {path} is a symbolic link to a file; an image must be a regular file (copy it; links to "
            "class folders are allowed)"
        )
    if not stat.S_ISREG(mode):
        raise DataError(f"imagenet: {path} is not a regular file (a FIFO, socket or device named like an image)")
    return path


def folder_listing(root: Path) -> dict:
    """Names, sizes and modification times of every image under ``root`` (train/ and val/).

    Returns ``{"root", "files", "bytes", "sha256"}``: counts and the SHA-256 of the sorted
    ``path size mtime_ns`` lines, which changes whenever an image is added, removed,
    renamed, resized or touched.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"imagenet: {root} does not exist (expected an ImageFolder tree with train/ and val/)")
    lines, total = [], 0
    for path in image_files(root):
        st = path.stat()
        lines.append(f"{path.relative_to(root).as_posix()}\t{st.st_size}\t{st.st_mtime_ns}")
        total += st.st_size
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    return {"root": str(root.resolve()), "files": len(lines), "bytes": total, "sha256": digest}


def load_rgb(path: str):
    """Open and fully decode an image as RGB; :class:`DataError` naming the file if that fails."""
    from PIL import Image

    try:
        with open(path, "rb") as f:
            image = Image.open(f)
            return image.convert("RGB")  # forces the decoding, where truncation shows
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:  # PIL's bad-data errors
        raise DataError(f"imagenet: cannot decode image {path}: {exc}") from exc


def verify_images(root: Path) -> int:
    """Decode every image under ``root``; raise :class:`DataError` listing the unreadable ones."""
    bad, count = [], 0
    for path in image_files(root):
        count += 1
        try:
            load_rgb(str(path))
        except DataError as exc:
            bad.append(str(exc))
    if bad:
        raise DataError(f"imagenet: {len(bad)} of {count} images cannot be decoded:\n  " + "\n  ".join(bad[:20]))
    return count


class EpochSampler(DistributedSampler):
    """``DistributedSampler`` that yields ``(epoch, index)`` pairs, for :class:`SeededImages`.

    The pairs are made in the main process, so loader workers (persistent or not) always
    know the epoch of the image they load.
    """

    def __iter__(self):
        return ((self.epoch, i) for i in super().__iter__())


class SeededImages(Dataset):
    """An image dataset whose random transform draws from ``stream_seed("imagenet", seed, epoch, index)``.

    Items are requested as ``(epoch, index)``; the global torch random state of the calling
    process is restored afterwards.
    """

    def __init__(self, base: Dataset, seed: int):
        self.base, self.seed = base, seed

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, item):
        epoch, index = item
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(stream_seed("imagenet", self.seed, epoch, index))
            return self.base[index]


def image_folders(root: Path, augment: str):
    """torchvision ImageFolder train/val with the reference's transforms and :func:`load_rgb`.

    ``augment="imagenet"``: RandomResizedCrop(224) + RandomHorizontalFlip for training; otherwise
    the training images get the validation transform (Resize(256) + CenterCrop(224)).
    """
    from torchvision import datasets, transforms

    norm = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    val_tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(), norm])
    train_tf = val_tf
    if augment == "imagenet":
        train_tf = transforms.Compose(
            [transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(), transforms.ToTensor(), norm]
        )
    root = Path(root)
    for split in ("train", "val"):
        image_files(root / split)  # the loop rule, before ImageFolder walks (following links)
    return (
        datasets.ImageFolder(root / "train", train_tf, loader=load_rgb),
        datasets.ImageFolder(root / "val", val_tf, loader=load_rgb),
    )


def default_workers(processes: int) -> int:
    """Loader workers per training process when ``runtime.num_workers`` is ``auto``: the machine's
    cores shared among the training processes, keeping one core per process for the training loop."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, cores // processes - 1)


def image_loader(
    dataset: Dataset, batch_size: int, *, train: bool, seed: int, rank: int, world: int, workers: int, pin_memory: bool
):
    """A DataLoader over ``dataset`` sharded like ``DistributedSampler`` (no padding for evaluation)."""
    from torch.utils.data import DataLoader, Subset

    if train:
        sampler = EpochSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed)
        dataset = SeededImages(dataset, seed)
    else:
        dataset = Subset(dataset, range(rank, len(dataset), world))  # exact shards, no padding
        sampler = _OrderedSampler(len(dataset))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=workers > 0 and train,
    )


class _OrderedSampler(torch.utils.data.Sampler):
    """Indices ``0 .. n-1`` in order, with a ``set_epoch`` that does nothing (evaluation)."""

    def __init__(self, n: int):
        self.n = n

    def __iter__(self):
        return iter(range(self.n))

    def __len__(self) -> int:
        return self.n

    def set_epoch(self, epoch: int) -> None:
        pass
