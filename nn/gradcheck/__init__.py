"""Teaching path: gradient checks, every analytic gradient against the function it differentiates.

- `per_entry`: one forward per stencil point per entry, fourth-order central
  differences with a derived noise floor (STEP, NOISE, TOLERANCE): the slow,
  obviously-correct reference (`compare`, `check_layer`, `check_model`).
- `batched`: the same finite differences with many perturbations pushed
  through the network in one stacked pass, and the complex step, exact to
  machine precision (`check_layer_fast`, `check_model_fast`).
- `directional`: random directions v, v . grad against the finite difference
  along v, for models too large to check entry by entry.
- `mutants`: planted backprop bugs, and which check catches each.

`check_network` checks one network (each layer at the input it sees, and
the model's loss gradient) by any method; `check_seed_architecture` does it
for the MNIST network on real images. nn.testing wraps these for pytest.
"""

import time

import numpy as np

from nn import _checks
from nn.errors import InputError
from nn.gradcheck.batched import COMPLEX_STEP, COMPLEX_TOLERANCE, check_layer_fast, check_model_fast
from nn.gradcheck.directional import check_layer_directional, check_model_directional
from nn.gradcheck.per_entry import (FLOAT32, NOISE, STEP, TOLERANCE, ArrayCheck, check_layer, check_model,
                                    compare)

METHODS = ("fd", "complex", "directional", "entry")

__all__ = ["ArrayCheck", "COMPLEX_STEP", "COMPLEX_TOLERANCE", "FLOAT32", "METHODS", "NOISE", "STEP",
           "TOLERANCE", "check_layer", "check_layer_directional", "check_layer_fast", "check_model",
           "check_model_directional", "check_model_fast", "check_network", "check_seed_architecture",
           "compare", "worst"]


def _method(method):
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(map(repr, METHODS))}; got {method!r}")
    return method


def check_layer_by(method, layer, x, rng):
    """check_layer by `method`: "fd", "complex", "directional" or "entry" (the per-entry reference)."""
    if _method(method) == "entry":
        return check_layer(layer, x, rng)
    if method == "directional":
        return check_layer_directional(layer, x, rng)
    return check_layer_fast(layer, x, rng, method)


def check_model_by(method, model, x, y, analytic_model=None, rng=None):
    """check_model by `method`; rng draws the directions of "directional"."""
    if _method(method) == "entry":
        return check_model(model, x, y, analytic_model)
    if method == "directional":
        return check_model_directional(model, x, y, rng or np.random.default_rng(0), analytic_model)
    return check_model_fast(model, x, y, method, analytic_model)


def check_network(model, x, y, method="fd", seed=0, analytic_model=None):
    """Every layer of a float64 model at the input it sees, then every parameter's loss gradient.

    Returns a list of ArrayCheck. analytic_model: a float32 twin whose model
    gradients are checked instead (the layer checks are then skipped: they
    are float64 only).
    """
    _method(method)
    x, y = model._clean(x, y, build=True)
    reports = []
    if analytic_model is None:
        rng = np.random.default_rng(seed)
        h = x
        for layer in model.layers:
            reports += check_layer_by(method, layer, h, rng)
            h = layer.forward(h)
    rng = np.random.default_rng(seed)
    return reports + check_model_by(method, model, x, y, analytic_model, rng)


def check_seed_architecture(examples=4, seed=0, dtype="float64", backend=None, data_dir=None,
                            method="fd", widths=None):
    """Check every layer and every model parameter of a Dense network on MNIST examples.

    Returns (reports, seconds); seconds excludes loading the data. examples:
    how many of the first training images, 1 to 60000. dtype is the dtype of
    the analytic gradients. widths: None for the seed network 784,128,32,10,
    or a list of layer widths (input first; ReLU hidden layers, softmax
    output); inputs of width 784 are MNIST images, others random normal
    numbers with random labels (seeded).
    """
    from nn.datasets import mnist
    from nn.recipe import scale_images

    _method(method)
    widths = check_widths([784, 128, 32, 10] if widths is None else widths)
    examples = _checks.positive_int(examples, "examples")
    available = mnist.SHAPES[mnist.TRAIN_IMAGES][0]
    if examples > available:
        raise InputError(f"examples must be at most {available}, the training images; got {examples}")
    if method == "complex" and dtype != "float64":
        raise InputError("the complex step checks float64 gradients only (its tolerance, 1e-13, is "
                         "below float32's rounding); use --dtype float64 or --method fd")
    rng = np.random.default_rng(seed)
    if widths[0] == 784:
        (x_train, y_train), _ = mnist.load_data(path=data_dir, verbose=False)
        x = scale_images(x_train[:examples], dtype).astype(np.float64)  # float32-exact if dtype is
        y = y_train[:examples] % widths[-1]
    else:
        x = rng.standard_normal((examples, widths[0])).astype(dtype).astype(np.float64)
        y = rng.integers(0, widths[-1], examples)
    start = time.perf_counter()
    analytic = dense_network(widths, seed, dtype, backend)
    model = dense_network(widths, seed, "float64", backend)
    model.set_weights([w.astype(np.float64) for w in analytic.get_weights()])
    twin = None if analytic.dtype == np.float64 else analytic
    reports = check_network(model, x, y, method, seed, twin)
    return reports, time.perf_counter() - start


def check_widths(widths):
    """widths as a list of >= 2 positive ints (input width first), else one clear InputError."""
    if not isinstance(widths, (list, tuple)) or len(widths) < 2 or not all(
            isinstance(w, (int, np.integer)) and not isinstance(w, bool) and w >= 1 for w in widths):
        raise InputError(f"layers must be at least two positive widths, the input's first and the "
                         f"classes' last (such as 784,128,32,10); got {widths!r}")
    if widths[-1] < 2:
        raise InputError(f"the last width is the number of classes and must be at least 2; got {widths[-1]}")
    return [int(w) for w in widths]


def dense_network(widths, seed=0, dtype="float64", backend=None):
    """A compiled Dense chain: widths[0] inputs, ReLU hidden layers, a softmax output.

    With 784 inputs it takes (28, 28) images through a Flatten, as nn.recipe.seed_model.
    """
    from nn.layers import Dense, Flatten
    from nn.model import Sequential

    widths = check_widths(widths)
    layers = [Dense(w, activation="relu") for w in widths[1:-1]] + [Dense(widths[-1], "softmax")]
    # 784 inputs are MNIST images, flattened first as in the seed model (same weights for a seed)
    first = [Flatten(input_shape=(28, 28))] if widths[0] == 784 else []
    model = Sequential(first + layers, input_shape=None if first else (widths[0],), dtype=dtype,
                       seed=seed, backend=backend)
    model.compile()
    return model


def worst(reports):
    """The report with the largest error (reports: a non-empty list of ArrayCheck)."""
    reports = list(reports)
    if not reports:
        raise InputError("reports is empty: there is no worst of no checks")
    return max(reports, key=lambda r: r.worst_error)
