"""Keras's side of `nn inspect --compare-keras`: one step of the same weights and batch, via tf.GradientTape.

`keras_step(model, x, y)` computes with the Keras twin (reference.twin.to_keras)
what nn.inspect.trace and nn.inspect.adam_step compute with nn: every
layer's output, the gradient arriving at each output, every parameter's
gradient and the update one Adam step would apply. `compare(model, x, y)`
puts both side by side as Karpathy's cmp() does in makemore part 4: for each
quantity, exact (bit-identical), close (within the tolerance below) and the
largest absolute difference.

Tolerance, the rule of tests/reference/conftest.py: a result reached through
a chain of N summed terms carries a rounding error like a random walk of N
steps of relative size u (2^-24 in float32, 2^-53 in float64), so two
implementations may differ by 2 sqrt(N) u of the result's scale (its largest
magnitude). N is the whole network's chain, as in the parity tests: forward,
every Dense's fan-in + 1; a gradient, that plus the widths it flows back
through and the batch it sums over. An Adam step divides by sqrt(v) + eps,
which amplifies a gradient's error where |g| is tiny: entry by entry the
step may differ by as much as the step moves when its gradient moves by
that gradient's tolerance (the step evaluated at both ends), plus the
step's own rounding (2 sqrt(N) u of it) and the rounding of w + step.
"""

import numpy as np

from reference import runtime  # noqa: F401  (configures TensorFlow first)
from reference.twin import keras_floatx, set_keras_adam_state, to_keras

import tensorflow as tf

from nn.inspect import adam_step, trace
from nn.layers import Dense


def chain_terms(model, batch_size):
    """(forward, gradient): summed terms on the longest chains of a Dense stack (see the docstring)."""
    dense = [layer for layer in model.layers if isinstance(layer, Dense)]
    forward = sum(layer.input_shape[0] + 1 for layer in dense)
    return forward, forward + sum(layer.units for layer in dense[1:]) + batch_size


def chain_tolerance(terms, dtype):
    """2 sqrt(N) u: how far two implementations of an N-term chain may differ, relative to scale."""
    return 2 * np.sqrt(terms) * float(np.finfo(dtype).eps) / 2


def keras_step(model, x, y):
    """Keras's values for one step: {"loss", "outputs", "grad_outputs", "grads", "steps"} (arrays).

    outputs[i] is layer i's output, grad_outputs[i] the loss's gradient
    there (for a softmax output, dL/dp of the cross-entropy of the
    probabilities, as nn.inspect.trace reports it); grads and steps are in
    get_weights() order. The loss whose gradients are taken is Keras's
    compute_loss, as in fit (the softmax hands its logits to the loss).
    """
    kmodel = to_keras(model)
    with keras_floatx(model.dtype.name):
        loss, outputs, grad_outputs, grads = _tape(kmodel, tf.constant(x), tf.constant(y))
        grads = [g.numpy() for g in grads]
        stepper = to_keras(model)  # a second copy: applying the step must not move kmodel
        if model.optimizer.state is not None:
            set_keras_adam_state(stepper, model.optimizer.state)
        before = [v.numpy() for v in stepper.trainable_variables]
        stepper.optimizer.apply_gradients(zip([tf.constant(g) for g in grads],
                                              stepper.trainable_variables))
        steps = [v.numpy() - b for v, b in zip(stepper.trainable_variables, before)]
    return {"loss": float(loss), "outputs": [o.numpy() for o in outputs],
            "grad_outputs": [g.numpy() for g in grad_outputs], "grads": grads, "steps": steps}


def _tape(kmodel, x, y):
    @tf.function  # traced, as in fit
    def run(x, y):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)  # so the tape also reaches the layers' outputs that do not depend on weights
            h, outputs = x, []
            for layer in kmodel.layers:
                h = layer(h, training=True)
                outputs.append(h)
            loss = kmodel.compute_loss(x=x, y=y, y_pred=h)
            # dL/dp of -mean(log p[y]), as nn.inspect.trace reports it. Not Keras's loss of
            # probabilities: that one first divides p by its sum, which adds 1 / (B sum p)
            # to every entry (the same gradient along the simplex, a different vector).
            probs = tf.identity(h)
            picked = tf.gather(probs, tf.cast(y, tf.int32), axis=1, batch_dims=1)
            prob_loss = -tf.reduce_mean(tf.math.log(picked))
        grads = tape.gradient(loss, kmodel.trainable_variables)
        grad_outputs = tape.gradient(loss, outputs[:-1]) + [tape.gradient(prob_loss, probs)]
        return loss, outputs, grad_outputs, grads

    return run(x, y)


def _adam_spread(model, grads, deltas):
    """max |step(g +- delta) - step(g)| entry by entry, one Adam step from the model's state, in float64.

    The step is monotone in g, so a gradient anywhere within delta of g
    moves it by at most this much (see the module docstring).
    """
    opt = model.optimizer
    state = opt.state
    t = 1 if state is None else state.count + 1
    alpha, c1, c2, eps = (float(c) for c in opt.coefficients(t, np.float64))

    def step(g, m, v):
        return alpha * (m + (g - m) * c1) / (np.sqrt(v + (g * g - v) * c2) + eps)

    spreads = []
    for i, (g, delta) in enumerate(zip(grads, deltas)):
        g = np.asarray(g, np.float64)
        m = 0.0 if state is None else np.asarray(state.m[i], np.float64)
        v = 0.0 if state is None else np.asarray(state.v[i], np.float64)
        at = step(g, m, v)
        spreads.append(np.maximum(np.abs(step(g + delta, m, v) - at), np.abs(step(g - delta, m, v) - at)))
    return spreads


def cmp(name, ours, theirs, tolerance):
    """One row: {"quantity", "nn_norm", "keras_norm", "exact", "close", "max_diff", "tolerance"}.

    tolerance: the largest allowed absolute difference, a scalar or one per entry.
    """
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    diff = np.abs(ours - theirs)
    return {"quantity": name, "nn_norm": float(np.linalg.norm(ours)),
            "keras_norm": float(np.linalg.norm(theirs)), "exact": bool(np.array_equal(ours, theirs)),
            "close": bool(np.all(diff <= tolerance)), "max_diff": float(diff.max(initial=0.0)),
            "tolerance": float(np.max(tolerance, initial=0.0))}


def compare(model, x, y):
    """nn against Keras on one step: a list of cmp() rows, forward then backward then Adam."""
    x, y = model._clean(x, y)
    ours = trace(model, x, y)
    theirs = keras_step(model, x, y)
    forward, gradient = chain_terms(model, len(y))
    f_tol, g_tol = chain_tolerance(forward, model.dtype), chain_tolerance(gradient, model.dtype)

    def scale(a):
        return float(np.abs(np.asarray(a, np.float64)).max(initial=0.0))

    rows = [cmp("loss", ours["loss"], theirs["loss"], f_tol * max(abs(theirs["loss"]), 1.0))]
    for e, out in zip(ours["layers"], theirs["outputs"]):
        rows.append(cmp(f"{e['name']}.output", e["output"], out, f_tol * scale(out)))
    for e, g in reversed(list(zip(ours["layers"], theirs["grad_outputs"]))):
        rows.append(cmp(f"{e['name']}.grad_output", e["grad_output"], g, g_tol * scale(g)))
    names = [f"{e['name']}.{key}" for e in ours["layers"] for key in e["grads"]]
    nn_grads = [g for e in ours["layers"] for g in e["grads"].values()]
    for name, g, kg in zip(names, nn_grads, theirs["grads"]):
        rows.append(cmp(f"{name} gradient", g, kg, g_tol * scale(kg)))
    # A step is measured as (w + step) - w: each side rounds w + step, by up to u |w + step|.
    u = float(np.finfo(model.dtype).eps) / 2
    spreads = _adam_spread(model, theirs["grads"], [g_tol * scale(kg) for kg in theirs["grads"]])
    for name, step, kstep, w, spread in zip(names, adam_step(model, nn_grads), theirs["steps"],
                                            model.get_weights(), spreads):
        bound = spread + g_tol * np.abs(kstep) + 2 * u * np.abs(np.asarray(w, np.float64) + kstep)
        rows.append(cmp(f"{name} Adam step", step, kstep, bound))
    return rows
