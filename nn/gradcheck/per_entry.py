"""Teaching path: the per-entry gradient check, one forward per stencil point, the reference.

The fast checks (nn.gradcheck.batched) are held to this one entry for entry.

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

import contextlib
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
    # Every entry, for the failure table and the tests (not in as_dict):
    analytic_values: np.ndarray = field(default=None, repr=False)
    numeric_values: np.ndarray = field(default=None, repr=False)  # NaN where excluded at a kink
    errors: np.ndarray = field(default=None, repr=False)  # each entry's err_i, NaN at kinks
    floor: float = 0.0  # below it an entry is held to tolerance * floor absolute
    scale: float = 1.0  # F = max(|f|, 1) of the function checked

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


    def worst_entries(self, count=10):
        """The `count` entries with the largest errors: (index, analytic, numeric, abs, rel)."""
        if self.errors is None:
            return []
        errors = np.where(np.isnan(self.errors), -1.0, self.errors).reshape(-1)
        rows = []
        for flat in np.argsort(-errors, kind="stable")[:count]:
            if errors[flat] < 0:
                break
            a = float(self.analytic_values.reshape(-1)[flat])
            n = float(self.numeric_values.reshape(-1)[flat])
            index = tuple(int(j) for j in np.unravel_index(flat, self.shape))
            rows.append((index, a, n, abs(a - n), float(errors[flat])))
        return rows

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
    flat = target.reshape(-1)
    if not np.shares_memory(flat, target):
        raise InputError(f"{name}: the array to perturb must be contiguous")
    numeric = np.empty(flat.size)
    kinks = np.zeros(flat.size, bool)
    for i in range(flat.size):
        orig, total, kink = flat[i], 0.0, False
        for steps, weight in _STENCIL:
            flat[i] = orig + steps * STEP
            total += weight * evaluate()
            kink = kink or _activation_pattern(layers) != base
        flat[i] = orig
        numeric[i], kinks[i] = total / (12 * STEP), kink
    return report_from_arrays(name, analytic, numeric.reshape(target.shape), kinks.reshape(target.shape),
                              f0, noise, tolerance)


def report_from_arrays(name, analytic, numeric, kinks, f0, noise=NOISE, tolerance=TOLERANCE, relative_floor=0.0):
    """The ArrayCheck of analytic against numeric (same shape); kinks: bool mask of excluded entries.

    err_i = |a - n| / max(|a|, |n|, floor) with floor = noise / tolerance *
    max(|f0|, 1) (see the module docstring), or relative_floor * max(M, |f0|, 1)
    with M the array's largest |analytic|, if that is larger (the complex
    step's floor, see nn.gradcheck.batched); 0 where both values and the floor are 0.
    """
    analytic = np.asarray(analytic, np.float64)
    numeric = np.asarray(numeric, np.float64)
    floor = noise / tolerance * max(abs(f0), 1.0)
    if analytic.size:
        floor = max(floor, relative_floor * max(float(np.abs(analytic).max()), abs(f0), 1.0))
    denom = np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), floor)
    with np.errstate(invalid="ignore", divide="ignore"):
        errors = np.where(denom > 0, np.abs(analytic - numeric) / denom, 0.0)
    errors[kinks] = np.nan
    report = ArrayCheck(name, tuple(analytic.shape), tolerance, analytic_values=analytic,
                        numeric_values=np.where(kinks, np.nan, numeric), errors=errors, floor=floor,
                        scale=max(abs(f0), 1.0))
    checked = ~kinks
    report.checked = int(checked.sum())
    report.below_floor = int((denom[checked] == floor).sum())
    report.kinks = [tuple(int(j) for j in idx) for idx in np.argwhere(kinks)]
    if report.checked:
        flat = int(np.argmax(np.where(checked, errors, -1.0).reshape(-1)))
        report.worst_index = tuple(int(j) for j in np.unravel_index(flat, analytic.shape))
        report.worst_error = float(errors.reshape(-1)[flat])
        report.analytic = float(analytic.reshape(-1)[flat])
        report.numeric = float(numeric.reshape(-1)[flat])
    return report


WHY_FLOAT64 = ("finite differences need float64: float32 rounds f to about 6e-8 of its size, and "
               "(f(w + h) - f(w - h)) / 2h turns that into an error of 6e-8 |f| / h, 6e-5 for "
               "h = 1e-3, as large as the gradient errors the check must find")


def _require_float64(what, *arrays):
    for arr in arrays:
        if not isinstance(arr, np.ndarray) or arr.dtype != np.float64:
            dtype = getattr(arr, "dtype", type(arr).__name__)
            raise InputError(f"{what} holds {dtype} values; {WHY_FLOAT64}. Build it with dtype='float64'")


@contextlib.contextmanager
def kept(layer):
    """Run the block, then put back every attribute of `layer` and the contents of its grads dict."""
    saved = dict(vars(layer))
    grads = saved.get("grads")
    grads_before = dict(grads) if isinstance(grads, dict) else None
    try:
        yield layer
    finally:
        vars(layer).clear()
        vars(layer).update(saved)
        if grads_before is not None:
            grads.clear()
            grads.update(grads_before)


def fake_loss_gradients(layer, x, rng):
    """(dout, dx, grads) of the fake loss sum(forward(x) * dout), dout drawn from rng.

    The input gradient is switched on for the check, so call it inside
    `kept(layer)`, which puts the layer back afterwards; grads are copies.
    """
    dout = rng.standard_normal(layer.forward(x).shape)
    if hasattr(layer, "needs_input_grad"):
        layer.needs_input_grad = True
    layer.forward(x, training=True)
    dx = layer.backward(dout)
    return dout, dx, {k: v.copy() for k, v in layer.grads.items()}


def prepare_layer(layer, x, rng):
    """Refuse what check_layer cannot check; return x as a float64 copy (the caller's is not touched)."""
    if not isinstance(layer, Layer):
        raise InputError(f"layer must be an nn.layers.Layer; got {type(layer).__name__}")
    params, grads = getattr(layer, "params", None), getattr(layer, "grads", None)
    if not isinstance(params, dict) or not isinstance(grads, dict):
        raise InputError(f"layer {layer.name} has no params/grads dicts; the Layer interface needs "
                         "self.params and self.grads (name -> array, the same keys; empty if none)")
    if not layer.built:
        raise ModelError(f"layer {layer.name} is not built: call layer.build(input_shape, rng, "
                         "'float64') or check it inside a built model")
    if not isinstance(rng, np.random.Generator):
        raise InputError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)); "
                         f"got {type(rng).__name__}")
    if layer.dtype is not None and np.dtype(layer.dtype) != np.float64:
        raise InputError(f"layer {layer.name} is built for {np.dtype(layer.dtype).name}; {WHY_FLOAT64}. "
                         "Build it with dtype='float64'")
    _require_float64(f"layer {layer.name}'s params", *params.values())
    x = _checks.as_features(x, "x", np.float64, layer.input_shape).copy()
    with kept(layer):  # a trial pass, to see that grads match params
        out = layer.forward(x, training=True)
        if not isinstance(out, np.ndarray) or out.dtype != np.float64 or len(out) != len(x):
            raise InputError(f"layer {layer.name}'s forward must return a float64 array with one row "
                             f"per example; got {getattr(out, 'dtype', type(out).__name__)} "
                             f"{getattr(out, 'shape', '')}")
        layer.backward(np.zeros_like(out))
        filled = {k: np.shape(g) for k, g in layer.grads.items()}
    if set(filled) != set(params) or any(filled[k] != params[k].shape for k in params):
        raise InputError(f"layer {layer.name}'s backward must fill grads with the keys and shapes of "
                         f"params ({ {k: p.shape for k, p in params.items()} }); got "
                         f"{filled}")
    return x


def prepare_model(model, x, y, analytic_model=None):
    """Refuse what check_model cannot check; return (x, y, analytic gradients, (noise, tolerance))."""
    _require_float64("the model", np.empty(0, model.dtype))
    x, y = model._clean(x, y, build=True)
    model._require(compiled=True)
    bounds = (NOISE, TOLERANCE)
    if analytic_model is None:
        analytic = _analytic_model_grads(model, x, y)
    else:
        analytic = _analytic_model_grads(analytic_model, x.astype(analytic_model.dtype), y)
        bounds = FLOAT32 if analytic_model.dtype == np.float32 else bounds
    return x, y, analytic, bounds


def check_layer(layer, x, rng):
    """Check a built float64 layer's input and parameter gradients at input x.

    Uses the fake loss f = sum(forward(x) * dout) with a fixed random dout, so
    backward(dout) must return df/dx and fill grads with df/dparam. x: (N,
    *layer.input_shape); rng: a np.random.Generator, which draws dout.
    """
    # A copy: compare() perturbs x in place, and the caller's array must not change.
    x = prepare_layer(layer, x, rng)
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
    x, y, analytic, bounds = prepare_model(model, x, y, analytic_model)
    layers = model._logit_layers()

    def evaluate():
        return float(model.loss.forward(model._logits(x, training=True), y))

    return [compare(f"model:{layer.name}.{key}", g, evaluate, layer.params[key], layers, *bounds)
            for (layer, key), g in zip(model.parameter_refs(), analytic)]


def _analytic_model_grads(model, x, y):
    return [g.astype(np.float64) for g in model.gradients(x, y)[1]]
