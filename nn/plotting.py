"""Pictures: training curves as in the notebook, drawn on Figure objects.

nn never changes matplotlib's global state: no backend switch, no pyplot
figure manager. Each function draws on a new `matplotlib.figure.Figure`
(which needs no display), saves it when given a path, and returns it, so a
notebook can show it inline and a script can write it to a file.
"""

from matplotlib.figure import Figure


def save(fig, path, dpi=110):
    """Write `fig` to `path` (PNG by its extension) and return it."""
    fig.savefig(path, dpi=dpi)
    return fig


def plot_history(history, path=None, title=None):
    """Loss and accuracy per epoch (train solid, validation dashed); saved to `path` if given.

    history: a History or its `history` dict. Returns the Figure.
    """
    h = history.history if hasattr(history, "history") else history
    epochs = range(1, len(h["loss"]) + 1)
    fig = Figure(figsize=(11, 4))
    axes = fig.subplots(1, 2)
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
    return save(fig, path) if path is not None else fig
