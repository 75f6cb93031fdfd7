"""Teaching path: the pictures of a finished run, drawn from plain data and written to its folder.

`write_pictures(out, model, history, x_test, y_test)` is the one call `nn
train` and `nn plot` make: it computes what the pictures need (predictions
on the test set, a trace of one batch) and writes

    diagnostics.png    per-layer update ratio, gradient norm, dead ReLUs over training
                       (only when the history holds nn.diagnostics figures)
    histograms.png     per-layer activations and gradients for the first 32 test images
    confusion.png      the confusion matrix on the test set
    misclassified.png  the test images the model gets wrong with most confidence
    weights.png        the first Dense layer's weight vectors as image tiles

The last two only when the inputs are square images.
"""

import os

import numpy as np

from nn import plotting
from nn.diagnostics import PREFIX
from nn.inspect import trace
from nn.layers import Dense
from nn.metrics import confusion_matrix

PICTURES = ("diagnostics.png", "histograms.png", "confusion.png", "misclassified.png", "weights.png")


def misclassified(model, x, y, count=32, probs=None):
    """(indices, predicted, confidence) of up to `count` mistakes on (x, y), most confident first.

    probs: model.predict(x) when the caller already has it.
    """
    probs = model.predict(x, batch_size=256) if probs is None else probs
    predicted = probs.argmax(axis=1)
    wrong = np.flatnonzero(predicted != y)
    confidence = probs[np.arange(len(y)), predicted]
    order = wrong[np.argsort(-confidence[wrong], kind="stable")][:count]
    return order, predicted, confidence


def write_pictures(out, model, history, x_test, y_test, class_names=None, probs=None):
    """Draw every picture of the module docstring into folder `out`; returns the paths written.

    model: the trained, compiled model; history: a History or its dict;
    x_test, y_test: the scaled test images (an array or an nn.ScaledImages)
    and labels; class_names: one
    name per class for the confusion matrix and the misclassified grid
    (None: the class indices); probs: model.predict(x_test) if already computed.
    """
    h = history.history if hasattr(history, "history") else history
    x_test, y_test = model._clean(x_test, y_test, lazy=True)  # a ScaledImages stays uint8
    written = []

    def path(name):
        written.append(os.path.join(out, name))
        return written[-1]

    if h.get(PREFIX + "step"):
        plotting.plot_diagnostics(h, path("diagnostics.png"))
    plotting.plot_histograms(trace(model, x_test[:32], y_test[:32]), path("histograms.png"),
                             title="Distributions over the first 32 test images, per Dense layer, "
                                   "at the trained weights")
    wrong, predicted, confidence = misclassified(model, x_test, y_test, probs=probs)
    cm = confusion_matrix(y_test, predicted, model.num_classes)
    plotting.plot_confusion_matrix(cm, path("confusion.png"), class_names,
                                   title=f"Confusion matrix on the {len(y_test)} test images "
                                         f"(accuracy {np.trace(cm) / len(y_test):.2%})")
    pixels = int(np.prod(model.input_shape))
    square = int(np.sqrt(pixels)) ** 2 == pixels  # images to draw, not just feature vectors
    if len(wrong) and square:
        errors = int(np.count_nonzero(predicted != y_test))
        plotting.plot_misclassified(x_test[wrong], y_test[wrong], predicted[wrong], confidence[wrong],
                                    path("misclassified.png"), class_names,
                                    title=f"The {len(wrong)} most confident of the {errors} misclassified "
                                          "test images: true label, predicted label, confidence")
    first = next((layer for layer in model.layers if isinstance(layer, Dense)), None)
    if first is not None and square and first.input_shape[0] == pixels:
        plotting.plot_first_layer(first.params["kernel"], path("weights.png"))
    return written
