"""The reference's data augmentation and normalization, per image (the specification) and per batch.

CIFAR-10 (``cifar``): ``RandomHorizontalFlip`` then ``RandomCrop(32, padding=4)`` with zero
fill on the raw image, then normalization. Each image draws a flip bit (probability 1/2)
and two crop offsets, uniform in ``{0, ..., 8}``. ImageNet (``imagenet``) uses torchvision's
transforms (:mod:`pcn.data.imagenet`).

:func:`crop_flip_image` is the readable per-image definition; :func:`crop_flip_batch`
applies the same draws to a whole batch at once (on the training device); tests check that
both give identical images for identical draws. The draws of an epoch come from
:func:`epoch_draws`, a function of ``(seed, epoch)`` only, so a run resumed at any epoch, a
run with another number of processes and a run on another device draw the same numbers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
from torch import Tensor

CROP_PADDING = 4


def stream_seed(*parts) -> int:
    """A 63-bit seed for a named random stream, e.g. ``stream_seed("augment", seed, epoch)``."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


@dataclass
class CropFlipDraws:
    """Per-image random draws of the CIFAR augmentation, each (N,)."""

    flip: Tensor  # bool
    top: Tensor  # int64 in [0, 2 * CROP_PADDING]
    left: Tensor  # int64 in [0, 2 * CROP_PADDING]

    def take(self, index: Tensor) -> "CropFlipDraws":
        return CropFlipDraws(self.flip[index], self.top[index], self.left[index])

    def to(self, device) -> "CropFlipDraws":
        return CropFlipDraws(self.flip.to(device), self.top.to(device), self.left.to(device))


def draw_crop_flip(n: int, generator: torch.Generator) -> CropFlipDraws:
    """``n`` independent draws: flip with probability 1/2, offsets uniform in ``{0, .., 2 * CROP_PADDING}``."""
    flip = torch.rand(n, generator=generator) < 0.5
    offsets = torch.randint(0, 2 * CROP_PADDING + 1, (2, n), generator=generator)
    return CropFlipDraws(flip, offsets[0], offsets[1])


def epoch_draws(n: int, seed: int, epoch: int) -> CropFlipDraws:
    """The draws of every image of the data set for one epoch (on the CPU), indexed by image."""
    return draw_crop_flip(n, torch.Generator().manual_seed(stream_seed("augment", seed, epoch)))


def normalize(images: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """uint8 images (..., C, H, W) -> float32 ``(x / 255 - mean) / std``; ``mean``, ``std`` (C, 1, 1)."""
    return (images.float() / 255 - mean) / std


def crop_flip_image(image: Tensor, flip: bool, top: int, left: int) -> Tensor:
    """One image (C, H, W): flip left-right if ``flip``, zero-pad by ``CROP_PADDING``, crop at (top, left)."""
    if flip:
        image = image.flip(-1)
    C, H, W = image.shape
    p = CROP_PADDING
    padded = image.new_zeros(C, H + 2 * p, W + 2 * p)
    padded[:, p : p + H, p : p + W] = image
    return padded[:, top : top + H, left : left + W]


def padded_crop(images: Tensor, top: Tensor, left: Tensor, padding: int) -> Tensor:
    """Zero-pad every image of a batch (B, C, H, W) by ``padding``, then crop it at its own (top, left) (B,).

    The crop is a gather from the flat padded images: output pixel ``(i, j)`` of image ``b`` reads
    padded pixel ``(top_b + i, left_b + j)``: a translation by ``(padding - top_b, padding - left_b)``
    with zero fill.
    """
    B, C, H, W = images.shape
    p = padding
    padded = images.new_zeros(B, C, H + 2 * p, W + 2 * p)
    padded[:, :, p : p + H, p : p + W] = images
    device = images.device
    rows = top.view(B, 1, 1) + torch.arange(H, device=device).view(1, H, 1)  # (B, H, 1)
    cols = left.view(B, 1, 1) + torch.arange(W, device=device).view(1, 1, W)  # (B, 1, W)
    index = (rows * (W + 2 * p) + cols).view(B, 1, H * W).expand(B, C, H * W)
    return torch.gather(padded.view(B, C, -1), 2, index).view(B, C, H, W)


def crop_flip_batch(images: Tensor, draws: CropFlipDraws) -> Tensor:
    """:func:`crop_flip_image` of every image of a batch (B, C, H, W) with its own draws, at once."""
    B = images.shape[0]
    flipped = torch.where(draws.flip.view(B, 1, 1, 1), images.flip(-1), images)
    return padded_crop(flipped, draws.top, draws.left, CROP_PADDING)


def epoch_positions(n: int, seed: int, epoch: int, limit: int) -> Tensor:
    """New digit positions (n, 2) for one epoch (``translate``): uniform on ``{0, .., limit}^2`` per image."""
    generator = torch.Generator().manual_seed(stream_seed("translate", seed, epoch))
    return torch.randint(0, limit + 1, (n, 2), generator=generator)


def translate_batch(images: Tensor, positions: Tensor, new_positions: Tensor, limit: int) -> Tensor:
    """Move the digit of every canvas of a batch (B, C, H, W) from ``positions`` to ``new_positions`` (B, 2).

    The canvas is zero outside the digit's square, so the move is a translation by
    ``new - old`` with zero fill, i.e. :func:`padded_crop` with padding ``limit`` (the largest
    move, ``canvas - digit``) at ``limit - (new - old)``; the digit stays whole.
    """
    offset = limit - (new_positions - positions)  # (B, 2) in [0, 2 limit]
    return padded_crop(images, offset[:, 0], offset[:, 1], limit)
