"""Stage `fetch`: materialize the chosen data set under data/prepared with its data card."""
from __future__ import annotations

from common import DATA_DIR, ORIGIN_ROOT, load_params

from pcn.data import DataError, prepare


def main() -> None:
    params = load_params()
    d = params.data
    root = (ORIGIN_ROOT / d.root) if not d.root.startswith("/") else d.root
    try:
        card = prepare(d.name, DATA_DIR, root=root, download=d.download, test_fraction=d.test_fraction,
                       seed=params.seed, synthetic=vars(d.synthetic))
    except DataError as exc:
        raise SystemExit(f"error: {exc}")
    print(f"fetch: {card['name']}: {card['splits']['train']} train / {card['splits']['test']} test images, "
          f"{card['num_classes']} classes, {card['channels']}x{card['image_size']}x{card['image_size']}")


if __name__ == "__main__":
    main()
