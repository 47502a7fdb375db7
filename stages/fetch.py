"""Stage `fetch`: materialize the chosen data set under data/prepared with its data card."""

from process_defaults import set_process_defaults

set_process_defaults()  # before torch and pcn: stages/process_defaults.py

from dataclasses import asdict

from pcn.data.datasets import prepare
from pcn.data.errors import DataError

from stage_inputs import fail, load_params
from workspace import WORKSPACE, resolve_data_root


def main() -> None:
    params = load_params()
    d = params.data
    options = asdict(getattr(d, d.name))
    if "root" in options:
        options["root"] = resolve_data_root(options["root"])
    try:
        card = prepare(d.name, WORKSPACE.data_dir, options, d.split_seed)
    except DataError as exc:
        fail(str(exc))
    print(
        f"fetch: {card['name']}: {card['splits']['train']} train / {card['splits']['test']} test images, "
        f"{card['num_classes']} classes, {card['channels']}x{card['image_size']}x{card['image_size']}"
    )


if __name__ == "__main__":
    main()
