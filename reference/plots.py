"""PNGs of a comparison: both sets of training curves overlaid, and the weight divergence.

    python -m reference.plots OUT_DIR compare.json [more.json ...]

redraws them from the JSON that reference.compare writes.
"""

import json
import os
import sys

import matplotlib
import numpy as np
from matplotlib.figure import Figure  # no pyplot: the caller's backend stays as it is

#: log-scale floor: a step where the weights agree bit for bit is drawn here.
FLOOR = 1e-18
_COLORMAPS = {"float32": "Blues", "float64": "Oranges"}


def plot_curves(runs, path):
    """Loss and accuracy, training and validation, per epoch: nn wide and pale, Keras dashed."""
    fig = Figure(figsize=(12, 8))
    axes = fig.subplots(2, 2, sharex=True)
    colors = matplotlib.colormaps["tab10"]
    for i, r in enumerate(runs):
        epochs = [e["epoch"] for e in r["epochs"]]
        for ax, key in zip(axes.flat, ("loss", "val_loss", "accuracy", "val_accuracy")):
            # nn wide and pale underneath, Keras thin and dashed on top: where they
            # agree the dashes run inside the wide line, where they part both show.
            ax.plot(epochs, [e["nn"][key] for e in r["epochs"]], "-", lw=3, alpha=0.45,
                    color=colors(i % 10), label=f"nn, seed {r['seed']}")
            ax.plot(epochs, [e["keras"][key] for e in r["epochs"]], "--", lw=1.2,
                    color=colors(i % 10), label=f"Keras, seed {r['seed']}")
            ax.set_title(key)
            ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("epoch")
    axes[0, 0].legend(fontsize=7, ncol=2)
    fig.suptitle(f"{runs[0]['dtype']}: nn (wide, pale) and Keras (dashed), "
                 "from the same weights and batches")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return fig


def plot_divergence(runs, path):
    """Largest weight difference relative to the largest weight, per step, log scale."""
    fig = Figure(figsize=(12, 5))
    ax = fig.subplots()
    dtypes = sorted({r["dtype"] for r in runs})
    for dtype in dtypes:
        these = [r for r in runs if r["dtype"] == dtype]
        cmap = matplotlib.colormaps[_COLORMAPS.get(dtype, "Greys")]
        for j, r in enumerate(these):
            curve = np.maximum(np.asarray(r["curves"]["weight_rel_diff"], dtype=float), FLOOR)
            ax.plot(np.arange(1, len(curve) + 1), curve, lw=0.7,
                    color=cmap(0.45 + 0.5 * j / max(len(these) - 1, 1)),
                    label=f"{dtype}, seed {r['seed']}")
    steps_per_epoch = runs[0]["epochs"][0]["step"]
    total = max(len(r["curves"]["weight_rel_diff"]) for r in runs)
    for step in range(steps_per_epoch, total, steps_per_epoch):
        ax.axvline(step, color="grey", lw=0.3, alpha=0.5)
    ax.axhline(1e-10, color="black", ls=":", lw=1, label="1e-10 (float64 target)")
    ax.set_yscale("log")
    ax.set_xlabel(f"step (grey lines: epochs of {steps_per_epoch} steps)")
    ax.set_ylabel("max |w_nn - w_keras| / max |w_keras|")
    ax.set_title("How far nn's weights drift from Keras's, from identical weights and batches")
    ax.grid(alpha=0.3, which="major")
    ax.legend(fontsize=7, ncol=2, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return fig


def plot_all(runs, out_dir):
    """curves-<dtype>.png per dtype and one divergence PNG; returns the paths written."""
    os.makedirs(out_dir, exist_ok=True)
    dtypes = sorted({r["dtype"] for r in runs})
    paths = []
    for dtype in dtypes:
        paths.append(os.path.join(out_dir, f"curves-{dtype}.png"))
        plot_curves([r for r in runs if r["dtype"] == dtype], paths[-1])
    paths.append(os.path.join(out_dir, f"divergence-{'-'.join(dtypes)}.png"))
    plot_divergence(runs, paths[-1])
    return paths


def main(argv=None):
    """Redraw the PNGs from one or more JSON files written by reference.compare."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    runs = []
    for path in argv[1:]:
        with open(path) as f:
            runs += json.load(f)["runs"]
    for path in plot_all(runs, argv[0]):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
