"""PNG figures (matplotlib's object-oriented API: no pyplot state, no backend switch): filters, per-layer
separation, the report's curves. matplotlib is imported by the functions that draw, not with this module."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pcn.files import save_png


def _figure(width: float, height: float):
    """A new matplotlib ``Figure`` of ``width`` x ``height`` inches (not attached to pyplot)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def plot_message(text: str, path: Path) -> None:
    """A small figure that only says ``text`` (an output that has nothing to show this time)."""
    fig = _figure(6, 1.2)
    ax = fig.subplots()
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    save_png(fig, path)


def plot_filter_bank(banks: dict[str, np.ndarray], path: Path) -> None:
    """One row per filter type: spatial real part, spatial modulus and Fourier transform of each filter.

    ``banks`` maps a title to Fourier filters (F, M, N) (real spectra).
    """
    rows = []
    for title, fourier in banks.items():
        spatial = np.fft.fftshift(np.fft.ifft2(fourier), axes=(-2, -1))
        rows += [
            (f"{title}\nRe (space)", spatial.real),
            (f"{title}\n|.| (space)", np.abs(spatial)),
            (f"{title}\nFourier", np.fft.fftshift(fourier, axes=(-2, -1))),
        ]
    n_cols = max(r[1].shape[0] for r in rows)
    fig = _figure(1.6 * n_cols, 1.7 * len(rows))
    axes = fig.subplots(len(rows), n_cols, squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r, c]
            ax.set_xticks([]), ax.set_yticks([])
            if c < images.shape[0]:
                if "Re" in label or "Fourier" in label:  # signed: diverging map centred on 0
                    vmax = float(np.abs(images[c]).max()) or 1.0
                    ax.imshow(images[c], cmap="RdBu_r", vmin=-vmax, vmax=vmax)
                else:
                    ax.imshow(images[c], cmap="viridis")
                ax.set_title("phi" if c == 0 else f"psi_{c}", fontsize=7)
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(label, fontsize=7)
    fig.tight_layout()
    save_png(fig, path)


def curve_colors(n: int) -> list:
    """``n`` distinct colours: matplotlib's tab10 up to 10 curves, tab20 up to 20, then evenly spaced hues.

    The default colour cycle repeats after 10 curves, so with every variant on one axes
    (17 in the full preset) two variants would share a colour.
    """
    from matplotlib import colormaps

    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [colormaps["tab20"](i) for i in range(n)]
    return [colormaps["hsv"](i / n) for i in range(n)]


def _band(ax, x, mean, sd, label, color, marker="o"):
    """A mean curve with a shaded band of one standard deviation (none for a single seed)."""
    ax.plot(x, mean, marker=marker, markersize=3, label=label, color=color)
    if all(v is not None for v in sd):
        lo = [m - s for m, s in zip(mean, sd)]
        hi = [m + s for m, s in zip(mean, sd)]
        ax.fill_between(x, lo, hi, color=color, alpha=0.2, linewidth=0)


def _legend(fig, ax, n: int, width: float = 9.0) -> None:
    """Legend inside the axes for a few curves, beside them (never over the curves) for more than 6."""
    if n <= 6:
        ax.legend(fontsize=7)
        fig.tight_layout()
    else:
        fig.set_size_inches(width, 4.6)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
        fig.tight_layout()  # makes room for the legend


def plot_layer_bands(rows: list[dict], panels: list[tuple[str, str, str]], path: Path, log: bool = False) -> None:
    """One panel per ``(view, measure, title)``: the measure against layer (0 = input image), every variant that
    has the view as its mean over seeds with a +-1 sd band, in the same colour in every panel."""
    fig = _figure(5.0 * len(panels), 4.2)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    colors = dict(zip((r["variant"] for r in rows), curve_colors(len(rows))))
    for ax, (view, metric, title) in zip(axes, panels):
        for r in rows:
            if view in r["views"]:
                curves = r["views"][view]
                _band(
                    ax,
                    curves["layers"],
                    curves[metric]["mean"],
                    curves[metric]["sd"],
                    f"{r['variant']} (n={r['test_error']['n']})",
                    colors[r["variant"]],
                )
        ax.set_xlabel("layer (0 = input image)")
        if log:
            ax.set_yscale("log")
        ax.set_title(f"{title}\nmean over seeds, band = ±1 sd", fontsize=9)
        ax.grid(alpha=0.3)
    _legend(fig, axes[-1], len(rows), width=5.0 * len(panels) + 4.0)
    save_png(fig, path)


def plot_epoch_bands(histories: dict[str, list[list[dict]]], path: Path) -> None:
    """Test accuracy by epoch: every variant's mean over seeds with a +-1 sd band."""
    fig = _figure(6.5, 4.2)
    ax = fig.subplots()
    for (name, runs), color in zip(histories.items(), curve_colors(len(histories))):
        epochs = min(len(h) for h in runs)
        values = [[h[e]["test_acc"] for h in runs] for e in range(epochs)]
        mean = [sum(v) / len(v) for v in values]
        sd = [float(np.std(v, ddof=1)) if len(v) > 1 else None for v in values]
        _band(ax, list(range(1, epochs + 1)), mean, sd, f"{name} (n={len(runs)})", color)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy")
    ax.set_title("test accuracy: mean over seeds, band = ±1 sd", fontsize=9)
    ax.grid(alpha=0.3)
    _legend(fig, ax, len(histories))
    save_png(fig, path)


def plot_errors(rows: list[dict], path: Path) -> None:
    """Test error per variant: one dot per seed, the mean as a bar with a +-1 sd whisker."""
    fig = _figure(6.5, 0.5 * len(rows) + 1.5)
    ax = fig.subplots()
    names = [r["variant"] for r in rows]
    means = [r["test_error"]["mean"] for r in rows]
    sds = [r["test_error"]["sd"] or 0.0 for r in rows]
    ax.barh(names, means, xerr=sds, color="lightsteelblue", capsize=3)
    for i, r in enumerate(rows):
        values = list(r["test_error_by_seed"].values())
        ax.plot(values, [i] * len(values), "k.", markersize=5)
    ax.set_xlabel("test error (%): bar = mean, whisker = ±1 sd, dots = seeds")
    ax.invert_yaxis()
    fig.tight_layout()
    save_png(fig, path)


def plot_study(table: dict, path: Path) -> None:
    """A study (:mod:`pcn.analysis.study`) against its values: the premise share (symlog scale; one dot per seed,
    the line through the means) and each compared variant's gap to the reference (mean with its interval)."""
    fig = _figure(10.0, 4.2)
    premise_ax, gap_ax = fig.subplots(1, 2)
    done = [p for p in table["points"] if not p.get("pending")]
    x = [p["value"] for p in done]
    premise_ax.plot(x, [p["premise_share"]["mean"] for p in done], "o-", color="tab:gray")
    for p in done:
        values = list(p["premise_share"]["by_seed"].values())
        premise_ax.plot([p["value"]] * len(values), values, "k.", markersize=4)
    # symlog: the cross-fitted share can reach zero or below (pcn.analysis.separation), where log would drop it
    premise_ax.set_yscale("symlog", linthresh=1e-4)
    premise_ax.axhline(0.0, color="k", linewidth=0.8)
    premise_ax.set_title("premise: share of the first-layer wavelet energy\nin class means (dots: seeds)", fontsize=9)
    for variant, color in zip(table["compare"], curve_colors(len(table["compare"]))):
        intervals = [p["gap"][variant]["interval"] for p in done]
        means = [i["mean"] for i in intervals]
        low = [i["mean"] - i["low"] if i["low"] is not None else 0.0 for i in intervals]
        high = [i["high"] - i["mean"] if i["high"] is not None else 0.0 for i in intervals]
        gap_ax.errorbar(x, means, yerr=[low, high], marker="o", capsize=3, color=color, label=variant)
    gap_ax.axhline(0.0, color="k", linewidth=0.8)
    level = f"{100 * table['confidence']:.0f}%"
    gap_ax.set_title(f"test error minus {table['reference']}'s (points)\nmean over seeds, {level} interval", fontsize=9)
    gap_ax.legend(fontsize=7)
    for ax in (premise_ax, gap_ax):
        ax.set_xlabel(table["key"])
        ax.set_xticks(x)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    save_png(fig, path)
