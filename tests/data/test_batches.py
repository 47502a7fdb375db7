"""The batch input pipeline against its per-image specification and torch's DistributedSampler."""

import numpy as np
import pytest
import torch
from torch.utils.data import DistributedSampler

from pcn.data.augment import (
    CROP_PADDING,
    CropFlipDraws,
    crop_flip_batch,
    crop_flip_image,
    draw_crop_flip,
    epoch_draws,
    normalize,
)
from pcn.data.batches import DeviceBatches, shard_indices
from pcn.data.datasets import ArraySplit, TensorImageDataset


def images(n=12, c=3, size=8, seed=0) -> torch.Tensor:
    return torch.randint(0, 256, (n, c, size, size), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def test_batch_augmentation_equals_the_per_image_specification():
    x = images(16)
    draws = draw_crop_flip(16, torch.Generator().manual_seed(1))
    batch = crop_flip_batch(x, draws)
    for i in range(16):
        expected = crop_flip_image(x[i], bool(draws.flip[i]), int(draws.top[i]), int(draws.left[i]))
        assert torch.equal(batch[i], expected), i


def test_flip_and_crop_semantics():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.uint8).view(2, 1, 4, 4)
    p = CROP_PADDING
    centred = CropFlipDraws(torch.tensor([False, True]), torch.tensor([p, p]), torch.tensor([p, p]))
    out = crop_flip_batch(x, centred)
    assert torch.equal(out[0], x[0])  # no flip, centred crop: identity
    assert torch.equal(out[1], x[1].flip(-1))  # left-right mirror
    shifted = CropFlipDraws(torch.tensor([False]), torch.tensor([p + 1]), torch.tensor([p - 2]))
    out = crop_flip_batch(x[:1], shifted)[0, 0]  # window moved down 1, left 2
    assert torch.equal(out[:3, 2:], x[0, 0, 1:, :2]) and (out[3] == 0).all() and (out[:, :2] == 0).all()
    corner = crop_flip_batch(x[:1], CropFlipDraws(torch.tensor([False]), torch.tensor([0]), torch.tensor([0])))
    assert (corner == 0).all()  # the 4-pixel zero fill of a 4x4 image


def test_draws_follow_the_reference_distribution():
    d = draw_crop_flip(200_000, torch.Generator().manual_seed(0))
    assert abs(d.flip.float().mean() - 0.5) < 0.005
    counts = torch.bincount(d.top, minlength=2 * CROP_PADDING + 1).float() / 200_000
    assert d.top.min() == 0 and d.top.max() == 2 * CROP_PADDING
    assert (counts - 1 / 9).abs().max() < 0.005  # uniform over {0, .., 8}


def test_normalization_and_the_per_image_dataset_agree():
    x = images(6, 3, 32).numpy()
    split = ArraySplit(x, np.arange(6) % 3)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    spec = TensorImageDataset(split, mean, std, "none")
    batches = DeviceBatches(x, split.labels, mean, std, 6, torch.device("cpu"), shuffle=False, augment=False, seed=0)
    ((got, labels),) = list(batches.epoch(0))
    for i in range(6):
        assert torch.equal(got[i], spec[i][0]) and labels[i] == spec[i][1]
    m, s = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)
    assert torch.allclose(normalize(torch.from_numpy(x[0]), m, s), (torch.from_numpy(x[0]).float() / 255 - m) / s)


@pytest.mark.parametrize("n,world", [(10, 1), (10, 3), (7, 4), (16, 2)])
def test_shards_equal_distributed_sampler(n, world):
    for epoch in (0, 3):
        for rank in range(world):
            sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True, seed=5)
            sampler.set_epoch(epoch)
            assert shard_indices(n, epoch, 5, rank, world, shuffle=True).tolist() == list(sampler)
    exact = [shard_indices(n, 0, 5, r, world, shuffle=False, pad=False).tolist() for r in range(world)]
    assert sorted(sum(exact, [])) == list(range(n))  # evaluation: an exact partition


def test_device_batches_are_deterministic_and_cover_the_data():
    x = images(40, 1, 8)
    labels = np.arange(40) % 4
    make = dict(mean=(0.5,), std=(0.25,), batch_size=16, device=torch.device("cpu"), shuffle=True, augment=True, seed=3)
    a = [(i.clone(), y.clone()) for i, y in DeviceBatches(x.numpy(), labels, **make).epoch(2)]
    b = list(DeviceBatches(x.numpy(), labels, **make).epoch(2))
    assert len(a) == 3 and all(torch.equal(p[0], q[0]) and torch.equal(p[1], q[1]) for p, q in zip(a, b))
    c = list(DeviceBatches(x.numpy(), labels, **make).epoch(3))
    order_a, order_c = torch.cat([y for _, y in a]), torch.cat([y for _, y in c])
    assert not torch.equal(order_a, order_c)  # another epoch, another order (of labels: augmentation
    #                                                   alone would already change the images)
    seen = torch.cat([y for _, y in a])
    assert torch.equal(torch.bincount(seen), torch.full((4,), 10))


def test_augmentation_is_the_same_for_any_number_of_processes():
    """Draws depend on (seed, epoch, image): two shards see exactly what one process sees."""
    x = images(10, 1, 8)
    labels = np.arange(10)
    common = dict(mean=(0.5,), std=(0.25,), device=torch.device("cpu"), shuffle=True, augment=True, seed=7)
    single = {
        int(y): img
        for imgs, ys in DeviceBatches(x.numpy(), labels, batch_size=10, **common).epoch(1)
        for img, y in zip(imgs, ys)
    }
    for rank in range(2):
        shard = DeviceBatches(x.numpy(), labels, batch_size=5, rank=rank, world=2, **common)
        for imgs, ys in shard.epoch(1):
            for img, y in zip(imgs, ys):
                assert torch.equal(img, single[int(y)])
    assert torch.equal(epoch_draws(10, 7, 1).top, epoch_draws(10, 7, 1).top)
