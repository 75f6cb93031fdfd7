"""Teaching path: look inside one training step, layer by layer, as plain NumPy arrays.

`trace(model, x, y)` runs the step's forward and backward through the
model's own layers (the code `fit(engine="layers")` runs) and returns what
each layer saw and sent on, without changing the model.
"""

import numpy as np

from nn.layers import Dense


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


__all__ = ["trace"]
