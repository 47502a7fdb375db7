"""Stage `scan@<source>`: list a data source read in place, so that changes to it rerun `fetch`.

Runs at every `dvc repro` (`always_changed`), but only for the sources in `data.scan`
([imagenet] for ImageNet, [] otherwise). Its output holds the number of images, their total
size and the SHA-256 of the sorted (path, size, modification time) lines: unchanged images
give an identical file and DVC skips `fetch`; an added, removed or replaced image changes it.
"""

from process_defaults import set_process_defaults

set_process_defaults()  # before torch and pcn: stages/process_defaults.py

import argparse

from pcn.data.errors import DataError
from pcn.data.imagenet import folder_listing
from pcn.files import write_json

from stage_inputs import dvc_stage_key, fail, load_params
from workspace import WORKSPACE, resolve_data_root

#: Data sets whose folder is listed at every repro.
SOURCES = ("imagenet",)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", choices=SOURCES, help="default: from DVC's stage name (scan@imagenet)")
    args = parser.parse_args()
    args.source = args.source or dvc_stage_key("scan")
    if args.source not in SOURCES:
        fail(f"scan: unknown source {args.source!r}; valid: {', '.join(SOURCES)}")
    params = load_params()
    try:
        listing = folder_listing(resolve_data_root(params.data.imagenet.root))
    except DataError as exc:
        fail(str(exc))
    write_json(WORKSPACE.listing_dir / f"{args.source}.json", listing)
    print(
        f"scan@{args.source}: {listing['files']} images, {listing['bytes'] / 2**30:.2f} GiB, "
        f"listing {listing['sha256'][:12]}"
    )


if __name__ == "__main__":
    main()
