"""Stage `scan@<source>`: list a data source read in place, so that changes to it rerun `fetch`.

Runs at every `dvc repro` (`always_changed`), but only for the sources in `data.scan`
([imagenet] for ImageNet, [] otherwise). Its output holds the number of images, their total
size and the SHA-256 of the sorted (path, size, modification time) lines: unchanged images
give an identical file and DVC skips `fetch`; an added, removed or replaced image changes it.
"""
from __future__ import annotations

from process import prepare_stage

prepare_stage(__file__)     # before torch and pcn: stages/process.py

import argparse

from pcn.data.errors import DataError
from pcn.data.imagenet import folder_listing
from pcn.files import write_json

from common import LISTING_DIR, fail, load_params, resolve_data_root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", required=True, choices=["imagenet"])
    args = parser.parse_args()
    params = load_params()
    try:
        listing = folder_listing(resolve_data_root(params.data.imagenet.root))
    except DataError as exc:
        fail(str(exc))
    write_json(LISTING_DIR / f"{args.source}.json", listing)
    print(f"scan@{args.source}: {listing['files']} images, {listing['bytes'] / 2**30:.2f} GiB, "
          f"listing {listing['sha256'][:12]}")


if __name__ == "__main__":
    main()
