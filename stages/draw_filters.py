"""Stage `draw_filters`: a figure of every block's Morlet filter bank, in space and in Fourier.

The networks compute their filters from the params (:mod:`pcn.nn.morlet`); this stage only
draws them (``results/wavelets/filters.png``) and nothing reads its output back. With no LScat
variant selected (ResNets and Scat only) it writes a note instead, whatever the filter settings.
"""

from process_defaults import set_process_defaults

set_process_defaults()  # before torch and pcn: stages/process_defaults.py

from pcn.analysis.plots import plot_filter_bank, plot_message
from pcn.data.datasets import read_card
from pcn.data.errors import DataError
from pcn.names import LSCAT_ARCHITECTURES
from pcn.nn.morlet import block_filter_type, fourier_filters, padded_size
from pcn.pipeline.build import InputSpec, phase_collapse_config
from pcn.schema import VariantConfig

from stage_inputs import fail, load_params
from workspace import WORKSPACE


def main() -> None:
    params = load_params()
    if not any(params.models[v].arch in LSCAT_ARCHITECTURES for v in params.variants):
        plot_message(
            "No LScat or LScat+skip variant is selected: no wavelet filter bank to draw.",
            WORKSPACE.filters_dir / "filters.png",
        )
        print("draw_filters: no LScat variant selected; wrote a note instead of filters")
        return
    try:
        card = read_card(WORKSPACE.data_dir)
    except DataError as exc:
        fail(str(exc))
    cfg = phase_collapse_config(
        params.network, params.filters, VariantConfig(arch="lscat", nonlinearity="mod"), InputSpec.from_card(card)
    )
    try:
        cfg.validate()
    except ValueError as exc:
        fail(f"network.widths / filters: {exc}")
    sizes = cfg.spatial_sizes()
    figures = {}
    for i in range(len(cfg.widths)):
        mp = padded_size(sizes[i])
        kind = block_filter_type(i, cfg.factorize_from)
        figures.setdefault(
            f"{kind} ({mp}x{mp})", fourier_filters(mp, mp, cfg.block_spec(i), cfg.n_angles, cfg.full_angles)
        )
    plot_filter_bank(figures, WORKSPACE.filters_dir / "filters.png")
    print(
        f"draw_filters: {len(cfg.widths)} blocks, types "
        f"{[block_filter_type(i, cfg.factorize_from) for i in range(len(cfg.widths))]}, sizes {sizes}"
    )


if __name__ == "__main__":
    main()
