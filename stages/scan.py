"""Stage `scan@<source>`: list a data source read in place, so that changes to it rerun `fetch`.

Runs at every `dvc repro` (`always_changed`), but only for the sources in `data.scan`
([imagenet] for ImageNet, [] otherwise). Its output holds the number of images, their total
size and the SHA-256 of the sorted (path, size, modification time) lines: unchanged images
give an identical file and DVC skips `fetch`; an added, removed or replaced image changes it.
"""
from __future__ import annotations

import argparse

from common import LISTING_DIR, fail, load_params, resolve_data_root

from pcn.atomic import write_json
from pcn.data import DataError
from pcn.imagenet import folder_listing


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
