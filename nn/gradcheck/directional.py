"""Teaching path: directional gradient checks, for models too large to check entry by entry.

For a random unit direction v over a whole array (a layer's input or one
parameter), the directional derivative of f along v is v . grad f. Its
finite difference takes four forward passes however large the array is:

    d ~ (-f(w + 2h v) + 8 f(w + h v) - 8 f(w - h v) + f(w - 2h v)) / (12 h),

with the error bound of nn.gradcheck.per_entry (v has unit length, so the
truncation and rounding terms are those of one coordinate step). Each
direction is one "entry" of the report (index (k,) for the k-th direction);
a direction along which any ReLU changes state is excluded and listed. A
bug that moves the gradient by a vector u moves v . grad by v . u, which is
of the size |u| / sqrt(size) for a random v: far above the 1e-7 tolerance for
any real bug, though a bug confined to a few entries of a huge array is
found more surely by the entry-by-entry checks.
"""

import numpy as np

from nn.gradcheck.per_entry import (_STENCIL, NOISE, STEP, TOLERANCE, _activation_pattern, fake_loss_gradients, kept,
                                    prepare_layer, prepare_model, report_from_arrays)

DIRECTIONS = 8  # per array: each costs four forward passes


def _directional(name, analytic, evaluate, target, layers, rng, count, noise, tolerance):
    """Report for `count` random unit directions over `target` (perturbed in place, restored)."""
    f0 = evaluate()
    base = _activation_pattern(layers)
    directions = rng.standard_normal((count,) + target.shape)
    directions /= np.sqrt((directions.reshape(count, -1) ** 2).sum(axis=1)).reshape((count,) + (1,) * target.ndim)
    saved = target.copy()
    numeric, kinks = np.empty(count), np.zeros(count, bool)
    try:
        for k, v in enumerate(directions):
            total = 0.0
            for steps, weight in _STENCIL:
                target[...] = saved + steps * STEP * v
                total += weight * evaluate()
                kinks[k] |= _activation_pattern(layers) != base
            numeric[k] = total / (12 * STEP)
    finally:
        target[...] = saved
    projected = (directions.reshape(count, -1) @ np.asarray(analytic, np.float64).reshape(-1))
    return report_from_arrays(f"{name} (directional)", projected, numeric, kinks, f0, noise, tolerance)


def check_layer_directional(layer, x, rng, count=DIRECTIONS):
    """check_layer along `count` random directions per array; rng draws dout and the directions."""
    x = prepare_layer(layer, x, rng)
    with kept(layer):
        dout, dx, grads = fake_loss_gradients(layer, x, rng)

        def evaluate():
            return float(np.sum(layer.forward(x, training=True) * dout))

        reports = [_directional(f"{layer.name}.input", dx, evaluate, x, [layer], rng, count, NOISE, TOLERANCE)]
        for key, param in layer.params.items():
            reports.append(_directional(f"{layer.name}.{key}", grads[key], evaluate, param, [layer], rng,
                                        count, NOISE, TOLERANCE))
    return reports


def check_model_directional(model, x, y, rng, analytic_model=None, count=DIRECTIONS):
    """check_model along `count` random directions per parameter array."""
    x, y, analytic, bounds = prepare_model(model, x, y, analytic_model)
    layers = model._logit_layers()
    with model._untouched():
        def evaluate():
            return float(model.loss.forward(model._logits(x, training=True), y))

        return [_directional(f"model:{layer.name}.{key}", g, evaluate, layer.params[key], layers, rng, count,
                             *bounds) for (layer, key), g in zip(model.parameter_refs(), analytic)]
