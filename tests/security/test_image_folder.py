"""An image folder holds regular image files only: a file link or a FIFO named ``*.JPEG`` is refused by name, without
hanging (issue 32)."""

import os
import signal

import pytest

from pcn.data.errors import DataError
from pcn.data.imagenet import folder_listing, image_files, verify_images


@pytest.fixture
def tree(tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        (tmp_path / split / "cat").mkdir(parents=True)
        Image.new("RGB", (4, 4)).save(tmp_path / split / "cat" / "a.JPEG")
    return tmp_path


def test_a_regular_tree_is_listed(tree):
    assert [p.name for p in image_files(tree)] == ["a.JPEG", "a.JPEG"]


def test_a_training_image_linked_into_val_is_refused_by_name(tree):
    link = tree / "val" / "cat" / "b.JPEG"
    link.symlink_to(tree / "train" / "cat" / "a.JPEG")
    with pytest.raises(DataError, match=f"{link} is a symbolic link"):
        folder_listing(tree)


def test_a_fifo_named_like_an_image_is_refused_without_hanging(tree):
    fifo = tree / "val" / "cat" / "b.JPEG"
    os.mkfifo(fifo)
    signal.signal(signal.SIGALRM, lambda *_: pytest.fail("image verification hung on a FIFO"))
    signal.alarm(10)
    try:
        with pytest.raises(DataError, match=f"{fifo} is not a regular file"):
            verify_images(tree)
    finally:
        signal.alarm(0)
