"""``pcn test-split``: a seed's held-out test split as a file: ``pcn test-split --seed 0 [--out FILE.npz]``.

With ``data.resplit: true`` every training seed draws its own train / test split from the pooled prepared
images, so ``data/prepared/test_images.npy`` is *not* the test split of any model: most of its digits were in
some seed's training split, and a model scored on it looks better than it is. This command writes the test
split that the train and evaluate stages of seed ``S`` use, drawn by the same library code
(:func:`pcn.pipeline.run_data.run_splits`) from the workspace's params.yaml and ``data/prepared/``.

The ``.npz`` file (``numpy.load``, no pickle) holds ``images`` (N, C, H, W) uint8 pixels as a registered
model takes them, ``labels`` (N,) int64, and where they came from: ``seed``, ``split`` (``"test"``),
``split_seed``, ``resplit``, ``data_name`` and ``data_digest`` (the data card's SHA-256).
"""

from __future__ import annotations

import argparse
from pathlib import Path

EXAMPLE = """examples:
  pcn test-split --seed 0                          # writes test-split-seed0.npz
  pcn test-split --seed 1 --out /tmp/seed1.npz
  python -c "import numpy as np; d = np.load('test-split-seed0.npz'); print(d['images'].shape, d['labels'][:10])\""""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, required=True, help="the training seed (one of params.yaml's seeds)")
    parser.add_argument(
        "--out", type=Path, default=None, help="the .npz file to write (default: test-split-seed<S>.npz)"
    )


def test_split(root: Path, seed: int) -> dict:
    """The arrays and facts of seed ``seed``'s test split in the project at ``root`` (module docstring)."""
    import numpy as np

    from pcn.cli.project import fail
    from pcn.data.datasets import IN_MEMORY, read_card
    from pcn.data.errors import DataError
    from pcn.layout import Workspace
    from pcn.pipeline.run_data import run_splits
    from pcn.schema import ParamsError, load_params_file

    try:
        params = load_params_file(root / "params.yaml")
    except ParamsError as exc:
        fail(str(exc))
    if seed not in params.seeds:
        fail(f"--seed {seed} is not one of params.yaml's seeds: {', '.join(map(str, params.seeds))}")
    if params.data.name not in IN_MEMORY:
        fail(f"data.name {params.data.name!r} keeps its test split on disk; test-split serves {', '.join(IN_MEMORY)}")
    data_dir = Workspace(root).data_dir
    try:
        card = read_card(data_dir)
        test = run_splits(params, data_dir, card, seed)["test"]
    except DataError as exc:
        fail(str(exc))
    if card["name"] != params.data.name:
        fail(f"{data_dir} holds {card['name']!r}, params.yaml says {params.data.name!r}: run dvc repro fetch")
    d = params.data
    return {
        "images": test.images,
        "labels": test.labels,
        "seed": np.int64(seed),
        "split": np.str_("test"),
        "split_seed": np.int64(d.split_seed),
        "resplit": np.bool_(d.resplit),
        "data_name": np.str_(card["name"]),
        "data_digest": np.str_(card["digest"]),
    }


def run(args: argparse.Namespace, extra: list[str]) -> int:
    import numpy as np

    from pcn.cli.project import find_root

    arrays = test_split(find_root(), args.seed)
    out = args.out or Path(f"test-split-seed{args.seed}.npz")
    if out.suffix != ".npz":
        out = out.with_name(out.name + ".npz")  # what numpy.savez would write anyway: say the real name
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **arrays)
    print(
        f"{out}: the test split of seed {args.seed} ({len(arrays['labels'])} images {arrays['images'].shape[1:]} "
        f"uint8, labels) of {arrays['data_name']}, resplit {bool(arrays['resplit'])}"
    )
    return 0
