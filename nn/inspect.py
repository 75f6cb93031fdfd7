"""Teaching path: look inside one training step, layer by layer, as plain NumPy arrays.

`trace(model, x, y)` runs the step's forward and backward through the
model's own layers (the code `fit(engine="layers")` runs) and returns what
each layer saw and sent on, without changing the model. `inspect(model, x,
y)` condenses that into per-layer figures (activation statistics, gradient
norms, a sampled finite-difference check, Adam's effective step), the data
behind `python -m nn inspect`.
"""

import numpy as np

from nn import _checks, gradcheck
from nn.layers import Dense, ReLU
from nn.optimizers import Adam, AdamState


def _prob_gradient(probs, labels):
    """dL/dp of the mean cross-entropy -mean(log p[y]) w.r.t. the probabilities: -onehot / (B p)."""
    g = np.zeros_like(probs)  # (B, C)
    rows = np.arange(len(labels))
    g[rows, labels] = -1 / (probs.dtype.type(len(labels)) * probs[rows, labels])
    return g


def trace(model, x, y):
    """Every layer's input, output and gradients for one batch, in layer order.

    x (B, *input_shape), y (B,) int labels; the model must be built and
    compiled. Returns {"loss": float, "labels": (B,), "layers": [...]} where
    each entry of `layers` is a dict of plain arrays in the model's dtype:

    - "name", "class": the layer's name and class name;
    - "input" (B, ...): what its forward received; "output": what it returned;
    - "grad_output": the gradient of the loss arriving at its output in
      backward; "grad_input": the gradient it passes down (computed for the
      first layer too, though training skips it);
    - "grads": {parameter name: gradient}, as layer.grads (empty without parameters);
    - Dense only: "activation" (None, "relu" or "softmax"), "pre_activation"
      (x @ kernel + bias) and "grad_pre_activation" (the gradient there).

    For a softmax output the loss is computed from the logits, as in
    training and in Keras: its "grad_pre_activation" is the fused
    (p - onehot) / B, and its "grad_output" is dL/dp = -onehot / (B p), the
    gradient arriving at the probabilities, reported for completeness.
    Nothing changes: not the weights, the optimizer, nor the layers' state.
    """
    model._require(compiled=True)
    x, y = model._clean(x, y)
    with model._untouched():
        return _trace(model, x, y)


def _trace(model, x, y):
    kernels = model.backend
    train_layers = model._logit_layers()  # the last may be a Dense's softmax-free view
    entries, h = [], x
    for layer, runs in zip(model.layers, train_layers):
        entry = {"name": layer.name, "class": type(layer).__name__, "input": h}
        if isinstance(layer, Dense):
            entry["activation"] = layer.activation
            entry["pre_activation"] = kernels.dense_forward(
                h, layer.params["kernel"], layer.params["bias"], False)
        h = runs.forward(h, training=True)
        entry["output"] = h
        entries.append(entry)
    loss = model.loss.forward(h, y)
    probs, grad = model.loss.probs, model.loss.backward()  # grad: dL/dlogits
    if len(train_layers) < len(model.layers):  # a trailing Softmax layer, trained through its input
        last = model.layers[-1]
        entries.append({"name": last.name, "class": type(last).__name__, "input": h,
                        "output": probs, "grad_output": _prob_gradient(probs, y),
                        "grad_input": grad, "grads": {}})
    elif isinstance(model.layers[-1], Dense) and model.layers[-1].activation == "softmax":
        entries[-1]["output"] = probs
        entries[-1]["grad_output"] = _prob_gradient(probs, y)
        entries[-1]["grad_pre_activation"] = grad
    for layer, runs, entry in reversed(list(zip(model.layers, train_layers, entries))):
        entry.setdefault("grad_output", grad)
        if isinstance(layer, Dense) and "grad_pre_activation" not in entry:
            entry["grad_pre_activation"] = (kernels.relu_backward(grad, entry["output"])
                                            if layer.activation == "relu" else grad)
        if hasattr(runs, "needs_input_grad"):
            runs.needs_input_grad = True  # restored by _untouched
        grad = runs.backward(grad)
        entry["grad_input"] = grad
        entry["grads"] = {key: g.copy() for key, g in layer.grads.items()}
        if grad is None:  # a layer that passes nothing down ends the backward pass
            break
    return {"loss": float(loss), "labels": y, "layers": entries}


def _stats(output, relu):
    """mean, std, min, max of an output; dead_fraction: units zero for every example (ReLU only)."""
    out = np.asarray(output, np.float64).reshape(len(output), -1)  # (B, units)
    dead = float(np.mean(np.all(out == 0, axis=0))) if relu else None
    return {"mean": float(out.mean()), "std": float(out.std()), "min": float(out.min()),
            "max": float(out.max()), "dead_fraction": dead}


def _is_relu(layer):
    return isinstance(layer, ReLU) or (isinstance(layer, Dense) and layer.activation == "relu")


def float64_twin(model, backend="numpy"):
    """A float64 copy of a compiled model (same layers, names and weights), for finite differences.

    On the NumPy backend by default: the finite differences need the loss
    to float64 accuracy, not speed, and NumPy's BLAS is the faster there.
    """
    from nn.model import Sequential

    layers = [type(layer)(**layer.get_config()) for layer in model.layers]
    twin = Sequential(layers, input_shape=model.input_shape, dtype="float64",
                      backend=backend, name=model.name)
    twin.compile(loss=type(model.loss)(**model.loss.get_config()), metrics=model.metrics)
    twin.set_weights([w.astype(np.float64) for w in model.get_weights()])
    return twin


def sampled_gradcheck(model, x, y, grads, samples=50, seed=0):
    """nn.gradcheck.compare on `samples` random entries of each parameter; a list of ArrayCheck.

    grads: the model's analytic gradients in get_weights() order. The finite
    differences run on a float64 twin (`float64_twin`), with gradcheck's
    float32 bounds (gradcheck.FLOAT32) when the model is float32; each
    array's sample is drawn from np.random.default_rng(seed) without
    replacement. gradcheck.compare perturbs the entries of a small
    `sample` array; evaluate() writes them into the parameter before each
    loss, so the step, the kink test and the error are gradcheck's own.
    """
    twin = float64_twin(model)
    x64 = np.asarray(x, np.float64)
    bounds = gradcheck.FLOAT32 if model.dtype == np.float32 else (gradcheck.NOISE, gradcheck.TOLERANCE)
    rng = np.random.default_rng(seed)
    layers = twin._logit_layers()
    reports = []
    for (layer, key), g in zip(twin.parameter_refs(), grads):
        flat = layer.params[key].reshape(-1)  # a view: writes reach the parameter
        idx = np.sort(rng.choice(flat.size, min(samples, flat.size), replace=False))
        original = flat[idx].copy()
        sample = original.copy()

        def evaluate(flat=flat, idx=idx, sample=sample):
            flat[idx] = sample
            return float(twin.loss.forward(twin._logits(x64, training=True), y))

        report = gradcheck.compare(f"{layer.name}.{key}", np.asarray(g).reshape(-1)[idx], evaluate,
                                   sample, layers, *bounds)
        flat[idx] = original
        report.kinks = [tuple(int(j) for j in np.unravel_index(idx[i[0]], layer.params[key].shape))
                        for i in report.kinks]
        if report.checked:
            report.worst_index = tuple(int(j) for j in np.unravel_index(
                idx[report.worst_index[0]], layer.params[key].shape))
        report.shape = tuple(layer.params[key].shape)
        reports.append(report)
    return reports


def adam_step(model, grads):
    """The update one Adam step would apply with `grads`, per parameter, computed on copies.

    Uses the model's optimizer settings and current state (zero moments
    before any step); the model and its optimizer are left as they were.
    Returns a list of (new weight - weight) arrays in get_weights() order.
    """
    weights = model.get_weights()
    adam = Adam(**model.optimizer.get_config())
    state = model.optimizer.state
    if state is not None:  # copies: the model's moments must not move
        adam.state = AdamState(state.count, [m.copy() for m in state.m], [v.copy() for v in state.v])
    new = [w.copy() for w in weights]
    adam.apply(new, [np.array(g, model.dtype) for g in grads], model.backend)
    return [n - w for n, w in zip(new, weights)]


def _norm(a):
    return float(np.linalg.norm(np.asarray(a, np.float64)))


def inspect(model, x, y, samples=50, seed=0):
    """One training step on (x, y), inspected layer by layer, as plain data (JSON-ready).

    x (B, *input_shape), y (B,) int labels; the model must be built and
    compiled. Returns {"loss", "batch_size", "adam_iterations" (the steps
    Adam's state has taken; 0: zero moments), "layers": [...]}, each entry:

    - "name", "class", "input_shape", "output_shape" (per example, lists);
    - "activation": mean, std, min, max of the layer's output over the batch,
      and "dead_fraction", the fraction of its ReLU units that are zero for
      every example of the batch (None for a layer without ReLU);
    - "grad_in_norm": the L2 norm of the gradient arriving at its output in
      backward (trace's "grad_output"; for a softmax output, dL/dp);
    - "params": {parameter name: {"grad_norm": L2 norm of dL/dparam,
      "gradcheck_rel_error": worst relative error of that gradient against
      nn.gradcheck's finite differences on `samples` sampled entries (None if
      every sampled entry sat at a ReLU kink), "gradcheck_passed",
      "gradcheck_tolerance", "update_ratio": |dw| / |w| of one Adam step
      from the optimizer's current state (None when |w| = 0, e.g. zero
      biases), "update_norm": |dw|, "weight_norm": |w|}}.

    Nothing in the model changes (weights, optimizer state, layer caches).
    """
    model._require(compiled=True)
    samples = _checks.positive_int(samples, "samples")
    x, y = model._clean(x, y)
    t = trace(model, x, y)
    grads = [g for entry in t["layers"] for g in entry["grads"].values()]
    checks = iter(sampled_gradcheck(model, x, y, grads, samples, seed))
    steps = iter(adam_step(model, grads))
    entries = []
    for layer, e in zip(model.layers, t["layers"]):
        params = {}
        for key, g in e["grads"].items():
            check, step = next(checks), next(steps)
            w, dw = _norm(layer.params[key]), _norm(step)
            params[key] = {"grad_norm": _norm(g),
                           "gradcheck_rel_error": check.worst_error if check.checked else None,
                           "gradcheck_passed": check.passed, "gradcheck_tolerance": check.tolerance,
                           "update_ratio": dw / w if w > 0 else None,
                           "update_norm": dw, "weight_norm": w}
        entries.append({"name": e["name"], "class": e["class"],
                        "input_shape": list(e["input"].shape[1:]),
                        "output_shape": list(e["output"].shape[1:]),
                        "activation": _stats(e["output"], _is_relu(layer)),
                        "grad_in_norm": _norm(e["grad_output"]), "params": params})
    return {"loss": t["loss"], "batch_size": len(y), "adam_iterations": model.optimizer.iterations,
            "layers": entries}


__all__ = ["trace", "inspect", "sampled_gradcheck", "adam_step", "float64_twin"]
