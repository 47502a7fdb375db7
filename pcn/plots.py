"""PNG figures (matplotlib, Agg backend): filters, training curves, per-layer separation."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_filter_bank(banks: dict[str, np.ndarray], path: Path) -> None:
    """One row per filter type: spatial real part, spatial modulus and Fourier transform of each filter.

    ``banks`` maps a title to Fourier filters (F, M, N) (real spectra).
    """
    rows = []
    for title, fourier in banks.items():
        spatial = np.fft.fftshift(np.fft.ifft2(fourier), axes=(-2, -1))
        rows += [(f"{title}\nRe (space)", spatial.real), (f"{title}\n|.| (space)", np.abs(spatial)),
                 (f"{title}\nFourier", np.fft.fftshift(fourier, axes=(-2, -1)))]
    n_cols = max(r[1].shape[0] for r in rows)
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(1.6 * n_cols, 1.7 * len(rows)), squeeze=False)
    for r, (label, images) in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r, c]
            ax.set_xticks([]), ax.set_yticks([])
            if c < images.shape[0]:
                if "Re" in label or "Fourier" in label:      # signed: diverging map centred on 0
                    vmax = float(np.abs(images[c]).max()) or 1.0
                    ax.imshow(images[c], cmap="RdBu_r", vmin=-vmax, vmax=vmax)
                else:
                    ax.imshow(images[c], cmap="viridis")
                ax.set_title("phi" if c == 0 else f"psi_{c}", fontsize=7)
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(label, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_history(history: list[dict], path: Path, title: str) -> None:
    """Loss and accuracy per epoch (train and test)."""
    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax1.plot(epochs, [h["train_loss"] for h in history], label="train")
    ax1.plot(epochs, [h["test_loss"] for h in history], label="test")
    ax1.set_xlabel("epoch"), ax1.set_ylabel("cross-entropy"), ax1.legend()
    ax2.plot(epochs, [h["train_acc"] for h in history], label="train")
    ax2.plot(epochs, [h["test_acc"] for h in history], label="test")
    ax2.set_xlabel("epoch"), ax2.set_ylabel("top-1 accuracy"), ax2.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_layer_curves(curves: dict[str, list[dict]], metric: str, path: Path, log: bool = False) -> None:
    """``metric`` against layer index (0 = input image), one line per variant."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, rows in curves.items():
        ax.plot([r["layer"] for r in rows], [r[metric] for r in rows], marker="o", label=name)
    ax.set_xlabel("layer (0 = input)")
    ax.set_ylabel(metric)
    if log:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_errors(rows: list[dict], path: Path) -> None:
    """Horizontal bars of test error per variant."""
    fig, ax = plt.subplots(figsize=(6, 0.5 * len(rows) + 1.5))
    names = [r["variant"] for r in rows]
    ax.barh(names, [r["test_error"] for r in rows])
    ax.set_xlabel("test error (%)")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
