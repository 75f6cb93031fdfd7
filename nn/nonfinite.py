"""Teaching path: stop training at the first non-finite value, with the weights before that step.

Both engines call `finite(model)` after a step (the layers engine) or a
chunk of steps (the fused engine). When it fails, the engine puts back the
state saved before the steps (`Snapshot`), replays the steps that were fine
(training is deterministic, so the replay lands on the same numbers) and
calls `diagnose`, which walks the bad step through the teaching path
(nn.inspect.trace) to name the first layer whose output or gradient went
non-finite, or whose Adam update overflowed.
"""

import math

import numpy as np

from nn.errors import NonFiniteError


def _arrays(model):
    """Weights and Adam's moments (when built), every array that training changes."""
    params = [layer.params[k] for layer, k in model.parameter_refs()]
    state = model.optimizer.state
    return params + ([] if state is None else list(state.m) + list(state.v))


def finite(model, losses=()):
    """True when every loss in `losses`, weight and Adam moment of `model` is finite."""
    if not all(math.isfinite(float(v)) for v in np.ravel(losses)):
        return False
    return all(np.isfinite(a).all() for a in _arrays(model))


class Snapshot:
    """The weights, Adam's moments and step count at one moment, to go back to."""

    def __init__(self, model):
        self.model = model
        self.arrays = [a.copy() for a in _arrays(model)]
        self.count = model.optimizer.iterations

    def restore(self):
        """Put the saved values back into the same arrays (views onto them stay valid)."""
        model = self.model
        if model.optimizer.state is not None and len(self.arrays) < len(_arrays(model)):
            model.optimizer.state = None  # the moments did not exist yet: back to unbuilt
        for dest, src in zip(_arrays(model), self.arrays):
            dest[...] = src
        if model.optimizer.state is not None:
            model.optimizer.state = model.optimizer.state._replace(count=self.count)


def _first_bad(entries, keys):
    for entry in entries:
        for key, label in keys:
            value = entry.get(key)
            if isinstance(value, np.ndarray) and not np.isfinite(value).all():
                return entry["name"], label
    return None


def _bad_update(model, x, y):
    """(layer name, parameter key) whose Adam update from this batch would be non-finite."""
    from nn.inspect import trace

    opt = model.optimizer
    result = trace(model, x, y)
    grads = {(e["name"], k): g for e in result["layers"] for k, g in e.get("grads", {}).items()}
    for i, (layer, key) in enumerate(model.parameter_refs()):
        w = layer.params[key].copy()
        if opt.state is None:
            m, v = np.zeros_like(w), np.zeros_like(w)
        else:
            m, v = opt.state.m[i].copy(), opt.state.v[i].copy()
        alpha, c1, c2, eps = opt.coefficients(opt.iterations + 1, w.dtype)
        with np.errstate(all="ignore"):
            model.backend.adam_update(w, grads[(layer.name, key)], m, v, alpha, c1, c2, eps)
        if not (np.isfinite(w).all() and np.isfinite(m).all() and np.isfinite(v).all()):
            return layer.name, key
    return None, None


def diagnose(model, x, y, epoch, step):
    """The NonFiniteError for a step on batch (x, y) that went non-finite, the model as before it."""
    from nn.inspect import trace

    where = f"epoch {epoch + 1}, step {step + 1}"
    with np.errstate(all="ignore"):
        result = trace(model, x, y)
        layers = result["layers"]
        bad = _first_bad(layers, [("output", "output")])
        if bad is None and not math.isfinite(result["loss"]):
            return NonFiniteError(f"the loss went non-finite at {where} although every layer's "
                                  f"output was finite; training stopped with the weights before "
                                  f"that step", epoch, step, None, "loss")
        if bad is None:
            bad = _first_bad(reversed(layers), [("grad_output", "gradient at its output"),
                                                ("grad_pre_activation", "gradient before its activation")])
        if bad is None:
            bad = next(((e["name"], f"{k} gradient") for e in reversed(layers)
                        for k, g in e.get("grads", {}).items() if not np.isfinite(g).all()), None)
        if bad is None:
            name, key = _bad_update(model, x, y)
            lr = model.optimizer.learning_rate
            return NonFiniteError(f"the Adam update of layer {name!r} ({key}) went non-finite at "
                                  f"{where} (learning rate {lr:g} too large?); training stopped "
                                  f"with the weights before that step", epoch, step, name, f"{key} update")
    name, label = bad
    return NonFiniteError(f"layer {name!r}: its {label} went non-finite at {where}; training "
                          f"stopped with the weights before that step (scale the inputs or lower "
                          f"the learning rate)", epoch, step, name, label)


class BadStep(Exception):
    """Raised by an engine at step `step` of an epoch, the model already back to before it."""

    def __init__(self, step):
        super().__init__(f"step {step} went non-finite")
        self.step = step
