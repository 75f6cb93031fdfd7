"""Gradient checking: every analytic gradient against central finite differences.

Everything runs in float64. For each array (a layer's input, each parameter)
the numerical gradient of a scalar function f is the fourth-order central
difference

    g_i ~ (-f(w + 2h e_i) + 8 f(w + h e_i) - 8 f(w - h e_i) + f(w - 2h e_i)) / (12 h)

Error of that estimate, per entry (eps = 2.2e-16, F = max(|f|, 1)):
- truncation h^4 |f'''''| / 30: with h = 1e-3 this is ~3e-14 |f'''''|, and the
  fifth derivatives of these losses along one coordinate are O(1) or smaller;
- rounding: each f(.) carries a relative error of a few eps, amplified by
  (1 + 8 + 8 + 1) / (12 h) = 1.5 / h, about 3.3e-13 F.
So the estimate is good to roughly NOISE = 1e-12 F in absolute terms. An entry
g can be held to a *relative* error r only if |g| >= NOISE / r; below that
floor we can only ask the absolute error to stay within NOISE. Each entry's
error is therefore

    err_i = |analytic_i - numeric_i| / max(|analytic_i|, |numeric_i|, floor),
    floor = NOISE / 1e-7 = 1e-5 F,

which is the plain relative error for every gradient above 1e-5 F and, for
smaller ones, passes exactly when the absolute error is within NOISE. A real
bug (a missing factor, a transpose, a wrong mask) moves large gradients by far
more than 1e-7 relative, so this floor hides none. The check passes when the
worst err_i over every array is at most TOLERANCE = 1e-7.

ReLU kinks are handled honestly: at every stencil point the ReLU activation
patterns are compared with the unperturbed ones; an entry whose perturbation
flips any unit crosses a kink, where the function is not differentiable and
finite differences mean nothing. Such entries are excluded from the error and
listed in the report, never dropped silently.
"""

import json
from dataclasses import dataclass, field

import numpy as np

from nn import _checks
from nn.errors import InputError, ModelError
from nn.layers import Layer

STEP = 1e-3
NOISE = 1e-12  # absolute error of the estimate, in units of F = max(|f|, 1); see above
TOLERANCE = 1e-7
# float32 analytic gradients against float64 finite differences: with
# u = 6e-8 and K = 784 terms in the longest sum, rounding can move a gradient
# by up to K*u = 4.7e-5 relative to its terms (worst case) and typically by
# sqrt(K)*u = 1.7e-6 of F absolute. So: relative tolerance 1e-4, noise 1e-6 F,
# hence a floor of 1e-2 F below which entries are held to 1e-6 F absolute.
FLOAT32 = (1e-6, 1e-4)
_STENCIL = ((2, -1.0), (1, 8.0), (-1, -8.0), (-2, 1.0))


@dataclass
class ArrayCheck:
    """The comparison for one array: its worst error, where, and what was excluded."""

    name: str
    shape: tuple
    tolerance: float = TOLERANCE
    worst_error: float = 0.0
    worst_index: tuple = ()
    analytic: float = 0.0
    numeric: float = 0.0
    checked: int = 0
    below_floor: int = 0
    kinks: list = field(default_factory=list)

    @property
    def passed(self):
        """True when some entry was checked and the worst error is within TOLERANCE."""
        nothing_checked = self.checked == 0 and bool(np.prod(self.shape))
        return self.worst_error <= self.tolerance and not nothing_checked

    def line(self):
        """One human-readable line."""
        status = "ok  " if self.passed else "FAIL"
        where = f"at {self.worst_index}: analytic {self.analytic:+.6e} numeric {self.numeric:+.6e}"
        kinks = f", {len(self.kinks)} at ReLU kinks excluded: {self.kinks[:3]}" if self.kinks else ""
        return (f"{status} {self.name:<28} worst rel. error {self.worst_error:.2e} {where} "
                f"({self.checked} checked, {self.below_floor} below floor{kinks})")


    def as_dict(self):
        """JSON-ready fields."""
        d = {k: getattr(self, k) for k in ("name", "shape", "tolerance", "worst_error", "worst_index",
                                           "analytic", "numeric", "checked", "below_floor")}
        d.update(passed=self.passed, kinks=[list(k) for k in self.kinks])
        return json.loads(json.dumps(d, default=float))  # plain Python types throughout


def _activation_pattern(layers):
    """Every ReLU's on/off pattern from the last forward, as one bytes string."""
    masks = (getattr(layer, "relu_mask", None) for layer in layers)
    return b"".join(m.tobytes() for m in masks if m is not None)


def compare(name, analytic, evaluate, target, layers, noise=NOISE, tolerance=TOLERANCE):
    """Check `analytic` (the gradient of evaluate() w.r.t. `target`) entry by entry.

    evaluate() -> float recomputes f with `target` as it currently is; `target`
    is perturbed in place and restored. layers: whose relu_mask to watch.
    """
    f0 = evaluate()
    base = _activation_pattern(layers)
    floor = noise / tolerance * max(abs(f0), 1.0)
    report = ArrayCheck(name, tuple(target.shape), tolerance)
    flat, a_flat = target.reshape(-1), np.asarray(analytic, np.float64).reshape(-1)
    if not np.shares_memory(flat, target):
        raise InputError(f"{name}: the array to perturb must be contiguous")
    for i in range(flat.size):
        orig, total, kink = flat[i], 0.0, False
        for steps, weight in _STENCIL:
            flat[i] = orig + steps * STEP
            total += weight * evaluate()
            kink = kink or _activation_pattern(layers) != base
        flat[i] = orig
        numeric = total / (12 * STEP)
        index = tuple(int(j) for j in np.unravel_index(i, target.shape))
        if kink:
            report.kinks.append(index)
            continue
        a = a_flat[i]
        denom = max(abs(a), abs(numeric), floor)
        report.checked += 1
        report.below_floor += int(denom == floor)
        err = float(abs(a - numeric) / denom)
        if err > report.worst_error or report.checked == 1:
            report.worst_error, report.worst_index = err, index
            report.analytic, report.numeric = float(a), float(numeric)
    return report


def _require_float64(*arrays):
    for arr in arrays:
        if arr.dtype != np.float64:
            raise InputError(f"gradcheck runs in float64; got a {arr.dtype} array (build with dtype='float64')")


def check_layer(layer, x, rng):
    """Check a built float64 layer's input and parameter gradients at input x.

    Uses the fake loss f = sum(forward(x) * dout) with a fixed random dout, so
    backward(dout) must return df/dx and fill grads with df/dparam. x: (N,
    *layer.input_shape); rng: a np.random.Generator, which draws dout.
    """
    if not isinstance(layer, Layer):
        raise InputError(f"layer must be an nn.layers.Layer; got {type(layer).__name__}")
    if not layer.built:
        raise ModelError(f"layer {layer.name} is not built: call layer.build(input_shape, rng, "
                         "'float64') or check it inside a built model")
    if not isinstance(rng, np.random.Generator):
        raise InputError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)); "
                         f"got {type(rng).__name__}")
    # A copy: compare() perturbs x in place, and the caller's array must not change.
    x = _checks.as_features(x, "x", np.float64, layer.input_shape).copy()
    _require_float64(*layer.params.values())
    dout = rng.standard_normal(layer.forward(x).shape)
    needs = getattr(layer, "needs_input_grad", True)
    if hasattr(layer, "needs_input_grad"):
        layer.needs_input_grad = True
    try:
        layer.forward(x, training=True)
        dx = layer.backward(dout)
        grads = {k: v.copy() for k, v in layer.grads.items()}

        def evaluate():
            return float(np.sum(layer.forward(x, training=True) * dout))

        reports = [compare(f"{layer.name}.input", dx, evaluate, x, [layer])]
        for key, param in layer.params.items():
            reports.append(compare(f"{layer.name}.{key}", grads[key], evaluate, param, [layer]))
    finally:
        if hasattr(layer, "needs_input_grad"):
            layer.needs_input_grad = needs
    return reports


def check_model(model, x, y, analytic_model=None):
    """Check d(loss)/d(parameter) for every parameter of a compiled float64 model.

    analytic_model: optionally a float32 twin holding the same weights; its
    gradients are then the ones checked (against float64 finite differences),
    with the float32 bounds FLOAT32 instead of (NOISE, TOLERANCE).
    """
    if model.dtype != np.float64:
        raise InputError("gradcheck runs in float64; build the model with dtype='float64'")
    x, y = model._clean(x, y, build=True)
    model._require(compiled=True)
    bounds = (NOISE, TOLERANCE)
    if analytic_model is None:
        analytic = _analytic_model_grads(model, x, y)
    else:
        analytic = _analytic_model_grads(analytic_model, x.astype(analytic_model.dtype), y)
        bounds = FLOAT32 if analytic_model.dtype == np.float32 else bounds
    layers = model._logit_layers()

    def evaluate():
        return float(model.loss.forward(model._logits(x, training=True), y))

    return [compare(f"model:{layer.name}.{key}", g, evaluate, layer.params[key], layers, *bounds)
            for (layer, key), g in zip(model.parameter_refs(), analytic)]


def check_seed_architecture(examples=4, seed=0, dtype="float64", backend=None, data_dir=None):
    """Check every layer and every model parameter of the seed network on MNIST examples.

    Returns (reports, seconds). examples: how many of the first training
    images, 1 to 60000. dtype is the dtype of the analytic gradients.
    """
    import time

    from nn.datasets import mnist
    from nn.recipe import scale_images, seed_model

    examples = _checks.positive_int(examples, "examples")
    available = mnist.SHAPES[mnist.TRAIN_IMAGES][0]
    if examples > available:
        raise InputError(f"examples must be at most {available}, the training images; "
                         f"got {examples}")
    start = time.perf_counter()
    (x_train, y_train), _ = mnist.load_data(path=data_dir, verbose=False)
    x = scale_images(x_train[:examples], dtype).astype(np.float64)  # float32-exact if dtype is
    y = y_train[:examples]
    analytic = seed_model(seed=seed, dtype=dtype, backend=backend)
    model = seed_model(seed=seed, dtype="float64", backend=backend)
    model.set_weights([w.astype(np.float64) for w in analytic.get_weights()])
    reports = []
    if analytic.dtype == np.float64:
        rng = np.random.default_rng(seed)
        h = x
        for layer in model.layers:  # each layer at the input it sees in the network
            reports += check_layer(layer, h, rng)
            h = layer.forward(h)
    reports += check_model(model, x, y, None if analytic.dtype == np.float64 else analytic)
    return reports, time.perf_counter() - start


def worst(reports):
    """The report with the largest error (reports: a non-empty list of ArrayCheck)."""
    reports = list(reports)
    if not reports:
        raise InputError("reports is empty: there is no worst of no checks")
    return max(reports, key=lambda r: r.worst_error)


def _analytic_model_grads(model, x, y):
    return [g.astype(np.float64) for g in model.gradients(x, y)[1]]
