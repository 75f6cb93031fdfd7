"""Pictures: training curves as in the notebook, drawn on Figure objects.

nn never changes matplotlib's global state: no backend switch, no pyplot
figure manager. Each function draws on a new `matplotlib.figure.Figure`
(which needs no display), saves it when given a path, and returns it, so a
notebook can show it inline and a script can write it to a file.
"""

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from nn.errors import InputError


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


def _series(history, prefix):
    """{name: (steps, values)} of the diagnostics under `prefix` (see nn.diagnostics)."""
    steps = history.get(prefix + "step")
    if not steps:
        return {}
    out = {}
    for key, values in history.items():
        if key.startswith(prefix) and key != prefix + "step":
            pairs = [(s, v) for s, v in zip(steps, values) if v is not None]
            out[key[len(prefix):]] = ([s for s, _ in pairs], [v for _, v in pairs])
    return out


def plot_diagnostics(history, path=None, title=None):
    """Per-layer training diagnostics against the optimizer step: update ratio, gradient norm, dead ReLUs.

    history: a History or its dict holding nn.diagnostics keys (the every-N
    figures if recorded, else the per-epoch ones). Returns the Figure.
    """
    from nn.diagnostics import PREFIX, STEP_PREFIX

    h = history.history if hasattr(history, "history") else history
    series = _series(h, STEP_PREFIX) or _series(h, PREFIX)
    if not series:
        raise InputError("the history holds no diagnostics: train with callbacks=[nn.diagnostics."
                         "Diagnostics(...)] (or nn train --diagnostics)")
    fig = Figure(figsize=(16, 5.5))
    axes = fig.subplots(1, 3)
    panels = (("/update_ratio", "update ratio |dw| / |w| (log scale)", True),
              ("/grad_norm", "gradient norm |dL/dw| (log scale)", True),
              ("/dead_fraction", "fraction of dead ReLU units", False))
    for ax, (suffix, label, log) in zip(axes, panels):
        for name, (steps, values) in series.items():
            if name.endswith(suffix) and values:
                ax.plot(steps, values, "-o", ms=2.5, label=name[:-len(suffix)])
        if suffix == "/update_ratio":
            ax.axhline(1e-3, color="k", ls="--", lw=1, label="1e-3 rule of thumb")
        if log:
            ax.set_yscale("log")
        ax.set_xlabel("training step (Adam updates)")
        ax.set_ylabel(label)
        ax.set_title(label.split(" (")[0])
        ax.grid(alpha=0.3, which="both")
        if ax.lines:
            ax.legend(fontsize=8, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    fig.suptitle(title or "Per-layer diagnostics on a fixed probe batch during training")
    fig.tight_layout()
    return save(fig, path) if path is not None else fig


def plot_histograms(traced, path=None, title=None, bins=40):
    """Per-layer histograms of one batch (makemore part 3): activations, their gradients, kernel gradients.

    traced: nn.inspect.trace(model, x, y). The first two panels show the
    hidden layers (every Dense but the output), the third every Dense
    layer's kernel gradient. Exact zeros (inactive ReLU outputs, weights of
    always-blank pixels) would be one tall spike, so they are left out of the
    curves and their share is given in the legend with the mean and std of
    all values. Returns the Figure.
    """
    dense = [e for e in traced["layers"] if "kernel" in e.get("grads", {})]
    hidden = dense[:-1] or dense
    fig = Figure(figsize=(16, 5))
    axes = fig.subplots(1, 3)
    panels = (("output", hidden, "hidden layer outputs (after the activation)"),
              ("grad_output", hidden, "gradient arriving at each hidden output, dL/d(output)"),
              ("kernel", dense, "kernel gradients dL/dW"))
    for ax, (key, entries, label) in zip(axes, panels):
        for e in entries:
            values = np.asarray(e["grads"]["kernel"] if key == "kernel" else e[key], np.float64).ravel()
            nonzero = values[values != 0]
            counts, edges = np.histogram(nonzero, bins=bins, density=True)
            ax.plot((edges[:-1] + edges[1:]) / 2, counts,
                    label=f"{e['name']} ({e.get('activation') or 'linear'}): mean {values.mean():+.1e}, "
                          f"std {values.std():.1e}, {1 - nonzero.size / max(values.size, 1):.0%} zero")
        ax.set_xlabel(label)
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 3))
        if key != "output":  # heavy tails: a log scale shows them beside the narrow peak
            ax.set_yscale("log")
        ax.set_ylabel("density of the non-zero values" + (" (log scale)" if key != "output" else ""))
        ax.set_title(label.split(",")[0].split(" (")[0])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    batch = len(traced["labels"])
    fig.suptitle(title or f"Distributions over one batch of {batch} examples, per layer")
    fig.tight_layout()
    return save(fig, path) if path is not None else fig


def _names(class_names, count):
    names = [str(i) for i in range(count)] if class_names is None else [str(n) for n in class_names]
    if len(names) != count:
        raise InputError(f"class_names has {len(names)} names; there are {count} classes")
    return names


def plot_confusion_matrix(matrix, path=None, class_names=None, title=None):
    """The confusion matrix (rows: true class, columns: predicted), counts written in each cell.

    matrix: (C, C) counts as nn.metrics.confusion_matrix returns. Colour is
    each cell's share of its row (of that true class), on a log scale so the
    few errors show beside the large diagonal. Returns the Figure.
    """
    from matplotlib.colors import LogNorm

    cm = np.asarray(matrix, np.int64)
    c = len(cm)
    names = _names(class_names, c)
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig = Figure(figsize=(8.5, 7.5))
    ax = fig.subplots()
    image = ax.imshow(np.where(cm > 0, share, np.nan), cmap="Blues",
                      norm=LogNorm(vmin=max(share[share > 0].min(initial=1e-4), 1e-4), vmax=1))
    for i in range(c):
        for j in range(c):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(c), names, rotation=45 if max(map(len, names)) > 2 else 0, ha="right"
                  if max(map(len, names)) > 2 else "center")
    ax.set_yticks(range(c), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    fig.colorbar(image, ax=ax, label="share of the true class's images (log scale)")
    accuracy = np.trace(cm) / max(cm.sum(), 1)
    ax.set_title(title or f"Confusion matrix: {cm.sum()} images, accuracy {accuracy:.2%}")
    fig.tight_layout()
    return save(fig, path) if path is not None else fig


def plot_misclassified(images, y_true, y_pred, confidence, path=None, class_names=None, title=None,
                       columns=8):
    """A grid of misclassified images, each titled with true label, predicted label and confidence.

    images (N, 28, 28) (or (N, 784)), y_true, y_pred (N,) ints, confidence
    (N,) the predicted class's probability; pass only the images to show.
    Returns the Figure.
    """
    images = np.asarray(images, np.float64)
    n = len(images)
    if n == 0:
        raise InputError("there are no misclassified images to draw")
    side = int(round(np.sqrt(images[0].size)))
    if side * side != images[0].size:
        raise InputError(f"images of {images[0].size} values are not square pictures")
    names = _names(class_names, max(int(np.max(y_true)), int(np.max(y_pred))) + 1
                   if class_names is None else len(class_names))
    rows = int(np.ceil(n / columns))
    fig = Figure(figsize=(1.7 * columns, 1.95 * rows + 0.6))
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, img, t, p, conf in zip(axes, images, y_true, y_pred, confidence):
        ax.imshow(img.reshape(side, side), cmap="gray_r", vmin=0, vmax=max(1.0, img.max()))
        ax.set_title(f"true {names[int(t)]}\npredicted {names[int(p)]} ({conf:.0%})", fontsize=8)
    fig.suptitle(title or f"{n} misclassified test images: true label, predicted label and the "
                          "model's confidence in it")
    fig.tight_layout()
    return save(fig, path) if path is not None else fig


def plot_first_layer(kernel, path=None, title=None, columns=16):
    """The first Dense layer's weight vectors, one (input side x side) tile per unit.

    kernel (784, units): each column is drawn as a 28x28 image, scaled to
    its own largest |w|: red pixels raise the unit's input, blue ones lower
    it, white ones do nothing. Returns the Figure.
    """
    kernel = np.asarray(kernel, np.float64)
    side = int(round(np.sqrt(kernel.shape[0])))
    if side * side != kernel.shape[0]:
        raise InputError(f"the kernel's {kernel.shape[0]} inputs are not a square image")
    units = kernel.shape[1]
    rows = int(np.ceil(units / columns))
    cell = side + 6  # a tile and a gap that holds the next row's numbers
    fig = Figure(figsize=(columns * 0.9, rows * 0.95 + 0.7))
    ax = fig.add_axes((0.01, 0.01, 0.98, 0.92))
    colour = matplotlib.colormaps["RdBu_r"]
    for i in range(units):
        w = kernel[:, i].reshape(side, side)
        r, c = divmod(i, columns)
        top, left = r * cell, c * cell
        # One small image per tile, coloured here (3 KB of RGBA bytes): one image of
        # the whole mosaic would be resampled to the figure's 1.3 M pixels and coloured
        # there in float64, a passing 100 MiB, the peak of `nn train`. The PNG is the
        # same pixel for pixel (the gaps are the white background).
        ax.imshow(colour((w / (np.abs(w).max() or 1.0) + 1) / 2, bytes=True), interpolation="nearest",
                  extent=(left - 0.5, left + side - 0.5, top + side - 0.5, top - 0.5))
        ax.text(left + side / 2, top - 0.4, str(i), ha="center", va="bottom", fontsize=6)
    ax.set_xlim(-0.5, columns * cell - 0.5)
    ax.set_ylim(rows * cell - 6.5, -6)  # room above the first row for its numbers
    ax.axis("off")
    fig.suptitle(title or f"First layer: the {units} units' weights over the {side}x{side} input "
                          "(red: positive, blue: negative; each tile scaled to its own largest |w|)")
    return save(fig, path) if path is not None else fig
