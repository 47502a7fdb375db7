"""What a registered model takes, checked before it runs: one line naming the problem and the expected input.

The logged models of the in-memory data sets take **uint8 pixels (N, C, H, W) in 0..255** (the model normalizes
them itself, :class:`pcn.pipeline.build.PixelInput`). :func:`checked_pixels` accepts exactly that, or integers or
whole-valued floats in 0..255 (converted to uint8 without loss), and refuses, in one line and never with the array:

* an empty batch (N = 0) or one over :data:`MAX_BATCH` images (memory grows with N: 20,000 images took 1.8 GB);
* a wrong number of dimensions or a wrong (C, H, W);
* floats that are not whole pixel values (e.g. images scaled to 0..1) or values outside 0..255;
* any other dtype (bool, complex, strings, objects).

ImageNet models take the normalized float32 tensor (:func:`checked_input` with ``dtype="float32"``): the same
shape and batch checks, and finite values.
"""

from __future__ import annotations

import numpy as np

#: The most images one call takes; split a larger batch.
MAX_BATCH = 4096


class ModelInputError(ValueError):
    """An input the model does not take (module docstring)."""

    expected = True


def expected_input(shape: tuple[int, int, int]) -> str:
    c, h, w = shape
    return f"expected uint8 pixels (N, {c}, {h}, {w}) in 0..255 with 1 <= N <= {MAX_BATCH}"


def checked_input(images, dtype: str, shape: tuple[int, int, int]) -> np.ndarray:
    """``images`` checked for a model whose signature takes ``dtype`` arrays (N, *shape)."""
    if dtype == "uint8":
        return checked_pixels(images, shape)
    array = _checked_batch(
        np.asarray(images),
        shape,
        f"expected {dtype} images (N, {', '.join(map(str, shape))}), "
        f"normalized as in pcn/data/imagenet.py, with 1 <= N <= {MAX_BATCH}",
    )
    if array.dtype.kind not in "iuf" or not np.all(np.isfinite(array)):
        raise ModelInputError(f"input of dtype {array.dtype} or with NaN/infinite values: expected finite {dtype}")
    return array.astype(dtype)


def _checked_batch(array: np.ndarray, shape: tuple[int, int, int], expected: str) -> np.ndarray:
    if array.ndim != 4 or tuple(array.shape[1:]) != tuple(shape):
        raise ModelInputError(f"input of shape {tuple(array.shape)}: {expected}")
    if array.shape[0] == 0:
        raise ModelInputError(f"empty batch (N = 0): {expected}")
    if array.shape[0] > MAX_BATCH:
        raise ModelInputError(
            f"batch of {array.shape[0]} images is over the limit of {MAX_BATCH}: split it; {expected}"
        )
    return array


def checked_pixels(images, shape: tuple[int, int, int]) -> np.ndarray:
    """``images`` as a uint8 array of shape (N, *shape), or :class:`ModelInputError` naming what is wrong."""
    expected = expected_input(shape)
    array = _checked_batch(np.asarray(images), shape, expected)
    if array.dtype == np.uint8:
        return array
    if array.dtype.kind not in "iuf":
        raise ModelInputError(f"input of dtype {array.dtype}: {expected}")
    low, high = array.min(), array.max()
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise ModelInputError(f"input holds NaN or infinite values: {expected}")
    if low < 0 or high > 255:
        raise ModelInputError(f"input values range over {low}..{high}, outside 0..255: {expected}")
    if array.dtype.kind == "f" and not np.array_equal(array, np.round(array)):
        raise ModelInputError(
            f"{array.dtype} input with values that are not whole pixel values (range {low:g}..{high:g}; images "
            f"scaled to 0..1?): {expected}"
        )
    return array.astype(np.uint8)
