"""The training curves of one run (``results/train/<variant>-<seed>/curves.png``)."""

from __future__ import annotations

from pathlib import Path

from pcn.files import save_png


def plot_history(history: list[dict], path: Path, title: str) -> None:
    """Loss and accuracy per epoch (train and test)."""
    from matplotlib.figure import Figure  # imported when drawing, not with the module

    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(9, 3.5))
    (ax1, ax2) = fig.subplots(1, 2)
    ax1.plot(epochs, [h["train_loss"] for h in history], label="train")
    ax1.plot(epochs, [h["test_loss"] for h in history], label="test")
    ax1.set_xlabel("epoch"), ax1.set_ylabel("cross-entropy"), ax1.legend()
    ax2.plot(epochs, [h["train_acc"] for h in history], label="train")
    ax2.plot(epochs, [h["test_acc"] for h in history], label="test")
    ax2.set_xlabel("epoch"), ax2.set_ylabel("top-1 accuracy"), ax2.legend()
    fig.suptitle(title)
    fig.tight_layout()
    save_png(fig, path)
