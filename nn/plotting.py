"""Training curves as in the notebook: loss and accuracy, training and validation."""

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402


def plot_history(history, path, title=None):
    """Write a PNG with loss and accuracy per epoch (train solid, validation dashed)."""
    h = history.history if hasattr(history, "history") else history
    epochs = range(1, len(h["loss"]) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key in zip(axes, ("loss", "accuracy")):
        if key not in h:
            continue
        ax.plot(epochs, h[key], "-o", ms=3, label=f"training {key}")
        if f"val_{key}" in h:
            ax.plot(epochs, h[f"val_{key}"], "--s", ms=3, label=f"validation {key}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
