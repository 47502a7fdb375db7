"""Stage `filters`: build the wavelet filter bank of every block and save it with a figure."""
from __future__ import annotations

from common import DATA_DIR, FILTERS_DIR, fail, input_spec, load_params

import torch
from pcn.atomic import torch_save
from pcn.config import VariantConfig
from pcn.data import DataError, read_card
from pcn.factory import phase_collapse_config
from pcn.filters import block_filter_type, fourier_filters, padded_size
from pcn.plots import plot_filter_bank


def main() -> None:
    params = load_params()
    try:
        card = read_card(DATA_DIR)
    except DataError as exc:
        fail(str(exc))
    cfg = phase_collapse_config(params.network, params.filters, VariantConfig(arch="lscat", nonlinearity="mod"),
                                input_spec(card))
    try:
        cfg.validate()
    except ValueError as exc:
        fail(f"network.widths / filters: {exc}")
    sizes = cfg.spatial_sizes()
    blocks, figures = [], {}
    for i in range(len(cfg.widths)):
        kind = block_filter_type(i, cfg.factorize_from)
        spec = cfg.block_spec(i)
        mp = padded_size(sizes[i])
        fourier = fourier_filters(mp, mp, spec, cfg.n_angles, cfg.full_angles)
        blocks.append({"index": i, "type": kind, "input_size": sizes[i], "padded_size": mp,
                       "spec": vars(spec), "fourier": torch.tensor(fourier, dtype=torch.float32)})
        figures.setdefault(f"{kind} ({mp}x{mp})", fourier)
    torch_save(FILTERS_DIR / "filter_bank.pt", {"n_angles": cfg.n_angles, "full_angles": cfg.full_angles,
                                                "blocks": blocks})
    plot_filter_bank(figures, FILTERS_DIR / "filters.png")
    print(f"filters: {len(blocks)} blocks, types {[b['type'] for b in blocks]}, sizes {sizes}")


if __name__ == "__main__":
    main()
