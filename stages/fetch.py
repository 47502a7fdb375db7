"""Stage `fetch`: materialize the chosen data set under data/prepared with its data card."""

from __future__ import annotations

from process import prepare_stage

prepare_stage(__file__)  # before torch and pcn: stages/process.py

from dataclasses import asdict

from pcn.data.datasets import prepare
from pcn.data.errors import DataError

from common import DATA_DIR, fail, load_params, resolve_data_root


def main() -> None:
    params = load_params()
    d = params.data
    options = asdict(getattr(d, d.name))
    if "root" in options:
        options["root"] = resolve_data_root(options["root"])
    try:
        card = prepare(d.name, DATA_DIR, options, d.split_seed)
    except DataError as exc:
        fail(str(exc))
    print(
        f"fetch: {card['name']}: {card['splits']['train']} train / {card['splits']['test']} test images, "
        f"{card['num_classes']} classes, {card['channels']}x{card['image_size']}x{card['image_size']}"
    )


if __name__ == "__main__":
    main()
