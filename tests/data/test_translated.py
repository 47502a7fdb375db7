"""The translated digits (translated_mnist): placement, determinism, per-epoch moves, and the paper's premise."""

import numpy as np
import pytest
import torch

from pcn.data.augment import epoch_positions, translate_batch
from pcn.data.batches import DeviceBatches
from pcn.data.datasets import load_mnist5k, load_split, load_translated_mnist, place_on_canvas, prepare, read_card


def digits(n=12, seed=0):
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 1, 28, 28), np.uint8)
    images[:, :, 4:24, 6:22] = rng.integers(1, 256, (n, 1, 20, 16))  # a non-zero "digit" with a margin
    return images


def test_digits_are_placed_whole_inside_the_canvas():
    images = digits()
    canvases, positions = place_on_canvas(images, 40, 7)
    assert canvases.shape == (12, 1, 40, 40) and positions.shape == (12, 2)
    assert positions.min() >= 0 and positions.max() <= 12
    for n, (top, left) in enumerate(positions):
        np.testing.assert_array_equal(canvases[n, :, top : top + 28, left : left + 28], images[n])
        outside = canvases[n].copy()
        outside[:, top : top + 28, left : left + 28] = 0
        assert not outside.any()
    assert len({tuple(p) for p in positions}) > 6  # positions vary between images


def test_positions_are_fixed_by_the_split_seed():
    a, b, c = (place_on_canvas(digits(), 40, s)[1] for s in (3, 3, 4))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    train, test, _ = load_translated_mnist(36, 0.2, seed=5)
    again, _, _ = load_translated_mnist(36, 0.2, seed=5)
    assert np.array_equal(train.images, again.images) and train.images.shape[1:] == (1, 36, 36)
    centred, _, _ = load_mnist5k(0.2, 5)  # same split, same digits, moved
    np.testing.assert_array_equal(train.labels, centred.labels)
    top, left = train.positions[0]
    np.testing.assert_array_equal(train.images[0, :, top : top + 28, left : left + 28], centred.images[0])


def test_prepared_translated_data_keeps_the_positions(tmp_path):
    card = prepare("translated_mnist", tmp_path, {"canvas": 32, "test_fraction": 0.2}, split_seed=1)
    assert card["image_size"] == 32 and card["digit_size"] == 28 and "train_positions.npy" in card["checksums"]
    split = load_split(tmp_path, read_card(tmp_path), "train")
    assert split.positions.shape == (len(split.labels), 2) and split.positions.max() <= 4
    np.save(tmp_path / "train_positions.npy", split.positions + 1)  # tampered: refused, named
    from pcn.data.errors import DataError

    with pytest.raises(DataError, match="train_positions.npy"):
        load_split(tmp_path, read_card(tmp_path), "train")


def test_a_move_is_a_new_placement_of_the_same_digit():
    images = digits()
    canvases, old = place_on_canvas(images, 40, 1)
    new = epoch_positions(len(images), seed=3, epoch=2, limit=12)
    moved = translate_batch(torch.from_numpy(canvases), torch.from_numpy(old), new, 12).numpy()
    for n, (top, left) in enumerate(new.tolist()):
        expected = np.zeros((1, 40, 40), np.uint8)
        expected[:, top : top + 28, left : left + 28] = images[n]
        np.testing.assert_array_equal(moved[n], expected)


def test_device_batches_move_the_digits_every_epoch_by_seed():
    images = digits(16)
    canvases, positions = place_on_canvas(images, 40, 1)
    labels = np.arange(16) % 4
    make = dict(
        mean=(0.5,),
        std=(0.25,),
        batch_size=16,
        device=torch.device("cpu"),
        shuffle=False,
        augment=False,
        positions=positions,
        translate_limit=12,
    )
    a = next(iter(DeviceBatches(canvases, labels, seed=3, **make).epoch(0)))[0]
    b = next(iter(DeviceBatches(canvases, labels, seed=3, **make).epoch(0)))[0]
    c = next(iter(DeviceBatches(canvases, labels, seed=3, **make).epoch(1)))[0]
    d = next(iter(DeviceBatches(canvases, labels, seed=4, **make).epoch(0)))[0]
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, d)
    still = next(iter(DeviceBatches(canvases, labels, seed=3, **{**make, "positions": None}).epoch(0)))[0]
    assert torch.equal(still, (torch.from_numpy(canvases).float() / 255 - 0.5) / 0.25)  # no positions: unchanged
    assert torch.allclose(a.sum(dim=(1, 2, 3)), still.sum(dim=(1, 2, 3)), rtol=1e-4)  # the same digit, moved


def between_class_share(features: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of the variance carried by the class means: sum_c n_c ||mu_c - mu||^2 / sum_n ||x_n - mu||^2,
    over flattened features (N, D): 0 when every class has the same mean."""
    centred = features - features.mean(0)
    between = sum((labels == c).sum() * centred[labels == c].mean(0).pow(2).sum() for c in labels.unique())
    return float(between / centred.pow(2).sum())


def test_the_premise_holds_on_translated_digits_not_on_centred_ones():
    """Paper, claim 6: for translation-invariant classes the wavelet coefficients' class means vanish, and the
    modulus's do not (its class means, constant over space, survive a spatial average). Measured on 1000 real
    digits (100 per class), first-layer (standard, L=8) Morlet filters."""
    from pcn.nn.features import SplitFeatures
    from pcn.nn.morlet import block_filter_spec
    from pcn.nn.wavelet import WaveletFilter

    train, _, _ = load_mnist5k(0.2, 0)
    pick = np.concatenate([np.flatnonzero(train.labels == c)[:100] for c in range(10)])
    centred = train.take(pick)
    moved, _ = place_on_canvas(centred.images, 40, 0)
    labels = torch.from_numpy(centred.labels)
    shares = {}
    for name, images in (("centred", centred.images), ("translated", moved)):
        x = torch.from_numpy(images).float() / 255
        wavelet = WaveletFilter(1, True, x.shape[-2:], block_filter_spec("standard", 8), 8, False, "fft", 1e-7)
        with torch.no_grad():
            _, band = wavelet(SplitFeatures(real=x))  # complex (N, 8, h, w)
        coefficients = torch.cat([band.re, band.im], 1).flatten(1)
        modulus_average = torch.hypot(band.re, band.im).mean(dim=(2, 3))
        shares[name] = (between_class_share(coefficients, labels), between_class_share(modulus_average, labels))
    chance = 9 / 999  # expected share of 10 random groups of 1000 samples: (C - 1) / (N - 1)
    assert shares["translated"][0] < 2 * chance  # W x: class means vanish (chance level)
    assert shares["translated"][1] > 0.3  # |W x|, averaged: class means differ
    assert shares["centred"][0] > 5 * shares["translated"][0]  # centred digits break the premise
