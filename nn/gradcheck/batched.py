"""Teaching path: fast gradient checks, many perturbations pushed through the network at once.

The per-entry check (nn.gradcheck.per_entry) runs one whole forward pass per
stencil point per entry: 104,938 parameters x 4 points x a full network. Most
of that work recomputes what the perturbation cannot change. Perturbing
W[i, j] of a Dense layer by h changes only unit j's pre-activations, by
h * x[:, i], and only in the examples n with x[n, i] != 0; perturbing b[j]
changes unit j by h in every example; perturbing the input x[n, i] changes
example n's pre-activations by h * W[i, :]. So for each array we build the
layer's perturbed output rows directly, one row per (entry, stencil point,
affected example), stack them into one large batch and run it through the
rest of the network with the layers' own `forward`, chunk by chunk. Examples
a perturbation does not reach keep their unperturbed loss exactly, so only
the changed rows are computed and the difference f(w + s h e) - f(w) is
summed from them. An entry that reaches no example (a blank pixel's weight)
leaves f bit-for-bit unchanged: its numerical gradient is exactly 0, as the
per-entry check would compute it.

Layers other than nn's own (a user's subclass) get one full forward of that
layer per perturbation, then the same stacked pass through what follows.

Two methods share this machinery:

- "fd": the fourth-order central difference of nn.gradcheck.per_entry, with
  its derived noise floor and tolerance (STEP, NOISE, TOLERANCE there).
- "complex": the complex step. For f real-analytic near w,
  f(w + i h e) = f(w) + i h f'(w) e - h^2 f''(w)/2 + ..., so Im f(w + i h e) / h
  = f'(w) e + O(h^2): no difference of nearly equal numbers is taken, so there
  is no rounding floor, and with h = 1e-30 the O(h^2) term is ~1e-60 of the
  gradient. The result is the analytic derivative to machine precision. ReLU
  is piecewise linear: away from a kink (pre-activation a != 0) it is the
  identity or zero on a whole neighbourhood of a, and np.maximum(z, 0) on a
  complex z picks its branch by Re z alone (NumPy orders complex numbers by
  real part first), so it returns the holomorphic extension of the linear
  piece, z or 0; Re z is moved by the perturbation only at order h^2, far
  too little to cross a kink unless a is exactly 0. Softmax and the loss
  subtract a max shift taken from the real part (any shift is exact in
  exact arithmetic; a real one keeps the tiny imaginary parts from
  cancelling). The only points where it fails are exact kinks: a ReLU output
  with real part 0 and a nonzero imaginary part; such entries are excluded
  and listed, as in the finite-difference check.

Both compare with the analytic gradient entry by entry, as
nn.gradcheck.per_entry does, and return the same ArrayCheck reports.
"""

import numpy as np

from nn.errors import InputError
from nn.gradcheck.per_entry import (_STENCIL, NOISE, STEP, TOLERANCE, fake_loss_gradients, kept, prepare_layer,
                                    prepare_model, report_from_arrays)
from nn.kernels import numpy_kernels as spec
from nn.layers import Dense, Flatten, ReLU, Softmax

#: Complex step and its bound. The method has no noise floor, but the
#: float64 gradients themselves are exact only to a few units of rounding
#: (eps = 2.2e-16) of the terms they are summed from: an entry that is a
#: small difference of large terms carries that absolute error, in the
#: analytic gradient as much as in the complex step. (On the seed network,
#: against an 80-bit long-double backprop, the float64 analytic gradient of
#: model:dense.kernel is itself off by 2.6e-12 relative at its most cancelled
#: entry, -4.0e-7; a degenerate net whose logits are all 0 has bias gradients
#: that are pure rounding, 3e-17 where the truth is 0.) The terms are of the
#: size of the array's largest gradient M or of F = max(|f|, 1), so entries
#: above COMPLEX_FLOOR * max(M, F) are held to COMPLEX_TOLERANCE = 1e-13
#: relative and smaller ones to an absolute 1e-13 * max(M, F) / 100, about
#: 4.5 eps * max(M, F). Measured on 1,500 random tiny networks (25,308
#: arrays) the worst error so measured is 2.9e-14, and on the seed network
#: 8.6e-15; exact zeros on both sides count as equal.
COMPLEX_STEP = 1e-30
COMPLEX_TOLERANCE = 1e-13
COMPLEX_FLOOR = 1e-2
METHODS = ("fd", "complex")
ROW_WISE = (Dense, ReLU, Softmax, Flatten)  # output row n depends on input row n only
CHUNK_ROWS = 1 << 14  # perturbed rows per stacked pass: a few MB per layer


class _Stencil:
    """The offsets, and how per-offset changes of f combine into a derivative."""

    def __init__(self, method):
        self.complex = method == "complex"
        if self.complex:
            self.offsets = np.array([1j * COMPLEX_STEP])
        else:
            self.offsets = np.array([steps * STEP for steps, _ in _STENCIL])
            self.weights = np.array([w for _, w in _STENCIL]) / (12 * STEP)
        self.dtype = np.complex128 if self.complex else np.float64

    def derivative(self, changes):
        """changes (E, S): f(w + offset_s e) - f(w) per entry -> (E,) derivative."""
        if self.complex:
            return changes[:, 0] / COMPLEX_STEP  # changes holds Im f already
        return changes @ self.weights


def _is_relu(layer):
    return isinstance(layer, ReLU) or (isinstance(layer, Dense) and layer.activation == "relu")


def _active(layer, out, is_complex):
    """Which ReLU units are on after `layer` produced `out` (None: the layer has no ReLU).

    nn's ReLU layers are read from their output; a user's layer from its
    `relu_mask` property, if it has one (see nn.gradcheck.per_entry).
    """
    if _is_relu(layer):
        return out.real > 0 if is_complex else out > 0
    mask = getattr(layer, "relu_mask", None)
    return None if mask is None else np.array(mask, bool)


def _crossed(layer, out, base_active, n, is_complex):
    """(R,) bool: which stacked rows crossed a ReLU kink in `layer` (rows of examples n)."""
    if base_active is None:
        return np.zeros(len(n), bool)
    axes = tuple(range(1, out.ndim))
    if is_complex and _is_relu(layer):  # only an exactly-zero pre-activation reaches its kink
        return ((out.real == 0) & (out.imag != 0)).any(axis=axes)
    active = _active(layer, out, is_complex)
    return (active != base_active[n]).reshape(len(n), -1).any(axis=1)


def _dense_activate(layer, z):
    """Dense's activation applied to pre-activation rows, as Dense.forward applies it."""
    if layer.activation == "relu":
        np.maximum(z, 0, out=z)
    elif layer.activation == "softmax":
        z = spec.softmax(z)
    return z


# ----------------------------------------------------------- perturbed rows
# Each generator yields (entry, step, n, out, unit): for every stacked row,
# which entry of the array was moved, by which stencil offset, which example
# it is, and the layer's output for that example; unit says which single
# output unit moved in each row (None: possibly all of them). Rows are
# ordered (entry, offset).

def _unit_of_rows(layer, shape):
    """Unit j of rows shaped (pairs, j, offset), for the Dense kernel and bias generators.

    Without softmax only unit j of the output moves; a softmax moves them all.
    """
    if layer.activation == "softmax":
        return None
    return np.broadcast_to(np.arange(shape[1])[None, :, None], shape).ravel()


def _dense_kernel_rows(layer, x, z, stencil):
    fan_in, units = layer.params["kernel"].shape
    offsets, count = stencil.offsets, len(stencil.offsets)
    cols = np.arange(units)
    per_chunk = max(1, CHUNK_ROWS // (units * count * len(x)))
    for i0 in range(0, fan_in, per_chunk):
        i_local, n = np.nonzero(x[:, i0:i0 + per_chunk].T)  # only examples with x[n, i] != 0 move
        if not len(n):
            continue
        i = i0 + i_local
        pre = np.repeat(z[n].astype(stencil.dtype)[:, None, None, :], units * count, axis=1)
        pre = pre.reshape(len(n), units, count, units)  # (pair, j, offset, unit)
        pre[:, cols, :, cols] += offsets[None, None, :] * x[n, i][None, :, None]  # unit j of row j only
        shape = (len(n), units, count)
        entry = np.broadcast_to((i * units)[:, None, None] + cols[None, :, None], shape)
        yield (entry.ravel(), np.broadcast_to(np.arange(count), shape).ravel(),
               np.broadcast_to(n[:, None, None], shape).ravel(),
               _dense_activate(layer, pre.reshape(-1, units)), _unit_of_rows(layer, shape))


def _dense_bias_rows(layer, x, z, stencil):
    units, count, batch = z.shape[1], len(stencil.offsets), len(x)
    cols = np.arange(units)
    pre = np.repeat(z.astype(stencil.dtype)[:, None, None, :], units * count, axis=1)
    pre = pre.reshape(batch, units, count, units)
    pre[:, cols, :, cols] += stencil.offsets[None, None, :]
    shape = (batch, units, count)
    yield (np.broadcast_to(cols[None, :, None], shape).ravel(),
           np.broadcast_to(np.arange(count), shape).ravel(),
           np.broadcast_to(np.arange(batch)[:, None, None], shape).ravel(),
           _dense_activate(layer, pre.reshape(-1, units)), _unit_of_rows(layer, shape))


def _dense_input_rows(layer, x, z, stencil):
    kernel = layer.params["kernel"]  # (I, O)
    fan_in, units = kernel.shape
    count = len(stencil.offsets)
    for n in range(len(x)):  # x[n, i] moves example n only: z[n] + offset * W[i, :]
        pre = z[n].astype(stencil.dtype) + stencil.offsets[None, :, None] * kernel[:, None, :]
        shape = (fan_in, count)
        yield (np.broadcast_to((n * fan_in + np.arange(fan_in))[:, None], shape).ravel(),
               np.broadcast_to(np.arange(count), shape).ravel(), np.full(fan_in * count, n),
               _dense_activate(layer, pre.reshape(-1, units)), None)


def _row_wise_input_rows(layer, x, z, stencil):
    """Any row-wise layer: example n with one entry moved, through the layer's own forward."""
    count, size = len(stencil.offsets), int(np.prod(x.shape[1:]))
    per_chunk = max(1, CHUNK_ROWS // count)
    for n in range(len(x)):
        for k0 in range(0, size, per_chunk):
            k = np.arange(k0, min(size, k0 + per_chunk))
            rows = np.repeat(x[n].reshape(1, 1, size).astype(stencil.dtype), len(k) * count, axis=0)
            rows = rows.reshape(len(k), count, size)
            rows[np.arange(len(k)), :, k] += stencil.offsets[None, :]
            out = layer.forward(rows.reshape((-1,) + x.shape[1:]), training=True)
            shape = (len(k), count)
            yield (np.broadcast_to((n * size + k)[:, None], shape).ravel(),
                   np.broadcast_to(np.arange(count), shape).ravel(), np.full(len(k) * count, n), out, None)


def _whole_forward_rows(layer, x, target, stencil, key=None):
    """Any layer: one forward of the whole batch per perturbation (a user's layer's path)."""
    batch = len(x)
    flat_size = target.size
    for e in range(flat_size):
        for s, offset in enumerate(stencil.offsets):
            moved = target.astype(stencil.dtype).reshape(-1)
            moved[e] += offset
            moved = moved.reshape(target.shape)
            if key is None:
                out = layer.forward(moved, training=True)
            else:
                saved = layer.params[key]
                layer.params[key] = moved
                try:
                    out = layer.forward(x.astype(stencil.dtype) if stencil.complex else x, training=True)
                finally:
                    layer.params[key] = saved
            yield np.full(batch, e), np.full(batch, s), np.arange(batch), out, None


def _rows_for(layer, key, x, z, stencil):
    """The perturbed-rows generator for `layer`'s input (key None) or parameter `key`."""
    if isinstance(layer, Dense) and key in (None, "kernel", "bias"):
        return {None: _dense_input_rows, "kernel": _dense_kernel_rows, "bias": _dense_bias_rows}[key](
            layer, x, z, stencil)
    if key is None and isinstance(layer, ROW_WISE):
        return _row_wise_input_rows(layer, x, z, stencil)
    return _whole_forward_rows(layer, x, x if key is None else layer.params[key], stencil, key)


# ------------------------------------------------------------ the driver
class _Chain:
    """A network cut at one layer: what follows it, its ReLU patterns and each example's value."""

    def __init__(self, layers, x, value, scale):
        self.layers, self.value, self.scale = layers, value, scale
        self.inputs, self.pre, self.outputs, self.active = [], [], [], []
        h = x
        for layer in layers:
            self.inputs.append(h)
            is_dense = isinstance(layer, Dense)
            self.pre.append(spec.dense_forward(h, layer.params["kernel"], layer.params["bias"], False)
                            if is_dense else None)
            h = layer.forward(h, training=True)
            self.outputs.append(h)
            self.active.append(_active(layer, h, False))
        self.base = value(h, np.arange(len(x)))  # (B,) each example's value
        self.f0 = float(self.base.sum() * scale)

    def numeric(self, k, key, stencil):
        """(numeric gradient, kink mask) of the value w.r.t. layer k's input or parameter `key`."""
        layer = self.layers[k]
        target = self.inputs[k] if key is None else layer.params[key]
        count = len(stencil.offsets)
        changes = np.zeros(target.size * count)
        kinks = np.zeros(target.size, bool)
        for entry, step, n, out, unit in _rows_for(layer, key, self.inputs[k], self.pre[k], stencil):
            kink = _crossed(layer, out, self.active[k], n, stencil.complex)
            start = k + 1
            if unit is not None and start < len(self.layers) and isinstance(self.layers[start], Dense):
                # Only one unit of each row moved, so the next Dense's pre-activation
                # moves by that change times one row of its kernel: (R,) x (R, O)
                # instead of a (R, I) @ (I, O) product. Its activation and the
                # layers after it run as usual.
                later = self.layers[start]
                change = out[np.arange(len(n)), unit] - self.outputs[k][n, unit]
                # A row whose unit did not move (a ReLU that stayed off) leaves everything
                # after it bit-for-bit as it was: its change of f is exactly 0, so it is dropped.
                kinks[entry[kink]] = True
                moved = change != 0
                entry, step, n, kink, unit = entry[moved], step[moved], n[moved], kink[moved], unit[moved]
                if not len(n):
                    continue
                pre = self.pre[start][n] + change[moved, None] * later.params["kernel"][unit]
                out = _dense_activate(later, pre)
                kink |= _crossed(later, out, self.active[start], n, stencil.complex)
                start += 1
            for later, active in zip(self.layers[start:], self.active[start:]):
                out = later.forward(out, training=True)
                kink |= _crossed(later, out, active, n, stencil.complex)
            value = self.value(out, n)
            value = value.imag if stencil.complex else value - self.base[n]
            changes += np.bincount(entry * count + step, weights=value, minlength=changes.size)
            kinks[entry[kink]] = True
        numeric = stencil.derivative(changes.reshape(-1, count)) * self.scale
        return numeric.reshape(target.shape), kinks.reshape(target.shape)


def bounds(method, noise=NOISE, tolerance=TOLERANCE):
    """(noise, tolerance) of a method: the derived FD floor, or none for the complex step."""
    return (0.0, COMPLEX_TOLERANCE) if method == "complex" else (noise, tolerance)


def check_arrays(chain, targets, method, noise=NOISE, tolerance=TOLERANCE):
    """Reports for targets: (name, layer index, key or None, analytic array)."""
    stencil = _Stencil(method)
    noise, tolerance = bounds(method, noise, tolerance)
    reports = []
    relative_floor = COMPLEX_FLOOR if method == "complex" else 0.0
    for name, k, key, analytic in targets:
        numeric, kinks = chain.numeric(k, key, stencil)
        reports.append(report_from_arrays(name, analytic, numeric, kinks, chain.f0, noise, tolerance,
                                          relative_floor))
    return reports


# ------------------------------------------------------------- public calls
def _method(method):
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(map(repr, METHODS))}; got {method!r}")
    return method


def check_layer_fast(layer, x, rng, method="fd"):
    """As per_entry.check_layer (fake loss sum(forward(x) * dout)), batched; method "fd" or "complex".

    x: (N, *layer.input_shape) float64; rng draws dout. The layer is left as
    it was (parameters, grads and caches). Returns one ArrayCheck for the
    input and one per parameter.
    """
    _method(method)
    x = prepare_layer(layer, x, rng)
    with kept(layer):
        dout, dx, grads = fake_loss_gradients(layer, x, rng)
        analytic = [("input", None, dx)] + [(key, key, grads[key]) for key in layer.params]
        layer.backend = spec

        def value(out, n):
            return (out * dout[n]).reshape(len(n), -1).sum(axis=1)

        chain = _Chain([layer], x, value, 1.0)
        return check_arrays(chain, [(f"{layer.name}.{name}", 0, key, g) for name, key, g in analytic], method)


def check_model_fast(model, x, y, method="fd", analytic_model=None):
    """As per_entry.check_model (every parameter's loss gradient), batched; method "fd" or "complex".

    analytic_model: optionally a float32 twin with the same weights whose
    gradients are checked instead, to the float32 bounds (FLOAT32).
    """
    _method(method)
    x, y, analytic, noise_tol = prepare_model(model, x, y, analytic_model)
    layers = model._logit_layers()
    with model._untouched():
        for layer in layers:
            layer.backend = spec

        def value(logits, n):
            return spec._xent_per_example(logits, y[n])[0]

        chain = _Chain(layers, x, value, 1.0 / len(x))
        targets = []
        for (layer, key), g in zip(model.parameter_refs(), analytic):
            k = next(i for i, lyr in enumerate(layers) if lyr.params is layer.params)
            targets.append((f"model:{layer.name}.{key}", k, key, g))
        return check_arrays(chain, targets, method, *noise_tol)
