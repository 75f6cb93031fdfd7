"""Teaching path: a callback that records how each layer trains (gradient and weight norms, update ratio, dead ReLUs).

`Diagnostics(x_probe, y_probe, every=None)` measures, on a fixed probe
batch, at the end of each epoch and (with `every=N`) about every N steps:

    diagnostics/<layer>.<param>/grad_norm     |dL/dw| of the probe batch's mean loss (L2 norm)
    diagnostics/<layer>.<param>/weight_norm   |w|
    diagnostics/<layer>.<param>/update_ratio  |dw| / |w| of the Adam step that gradient would
                                              take from the optimizer's current state (computed
                                              on copies; nothing moves). CS231n's rule of thumb:
                                              about 1e-3. None while |w| = 0 (zero biases).
    diagnostics/<layer>/dead_fraction         fraction of a ReLU layer's units that are zero for
                                              every probe example
    diagnostics/<layer>/activation_mean, activation_std   of the layer's output on the probe batch
    diagnostics/step                          the optimizer step (Adam's iterations) measured at

Per-epoch figures are appended to `model.history.history` under those keys,
one per epoch, beside loss and accuracy; the every-N figures go under the
same names with the prefix `diagnostics_steps/` instead of `diagnostics/`.

What is measured, and when, on each engine: the figures are always those
of the probe batch at the weights and Adam state of the moment, so both
engines record the same quantities. On the "layers" engine a measurement
happens after the first step at least N steps after the previous one. The
"fused" engine runs chunks of steps (4096 examples, 128 batches of 32, and
at least 16 steps at larger batches) and
calls the callbacks for each batch only after the whole chunk, with the
weights then at the end of the chunk: there the every-N measurements fall
on chunk ends, and `diagnostics_steps/step` says which step that was
(the weights after that many updates). Epoch-end figures are exact on both.
"""

import numpy as np

from nn.callbacks import Callback
from nn.errors import InputError
from nn.inspect import _is_relu, _norm, _stats, adam_step, trace
from nn.layers import Flatten

PREFIX, STEP_PREFIX = "diagnostics/", "diagnostics_steps/"


def measure(model, x, y):
    """The figures of the module docstring (without the prefix) for one probe batch, as a flat dict."""
    t = trace(model, x, y)
    grads = [g for e in t["layers"] for g in e["grads"].values()]
    steps = iter(adam_step(model, grads))
    out = {"step": model.optimizer.iterations}
    for layer, e in zip(model.layers, t["layers"]):
        if isinstance(layer, Flatten):
            continue  # its output is its input
        for key, g in e["grads"].items():
            w, dw = _norm(layer.params[key]), _norm(next(steps))
            out[f"{layer.name}.{key}/grad_norm"] = _norm(g)
            out[f"{layer.name}.{key}/weight_norm"] = w
            out[f"{layer.name}.{key}/update_ratio"] = dw / w if w > 0 else None
        stats = _stats(e["output"], _is_relu(layer))  # as nn inspect reports them
        if stats["dead_fraction"] is not None:
            out[f"{layer.name}/dead_fraction"] = stats["dead_fraction"]
        out[f"{layer.name}/activation_mean"] = stats["mean"]
        out[f"{layer.name}/activation_std"] = stats["std"]
    return out


class Diagnostics(Callback):
    """Record per-layer training figures on a fixed probe batch each epoch and every N steps.

    x_probe (B, *input_shape), y_probe (B,) int labels: the probe batch,
    checked when training begins. every: None (epoch ends only) or a
    positive int. See the module docstring for the keys and their timing.
    """

    def __init__(self, x_probe, y_probe, every=None):
        if every is not None and (isinstance(every, bool) or not isinstance(every, (int, np.integer))
                                  or every < 1):
            raise InputError(f"every must be None or a positive integer (steps); got {every!r}")
        self.x_probe, self.y_probe, self.every = x_probe, y_probe, every

    def on_train_begin(self, logs=None):
        """Check the probe batch against the model (so a bad one fails before any step)."""
        self._x, self._y = self.model._clean(self.x_probe, self.y_probe)
        self._last = self.model.optimizer.iterations

    def _record(self, prefix):
        figures = measure(self.model, self._x, self._y)
        self._last = figures["step"]
        history = self.model.history.history
        for key, value in figures.items():
            history.setdefault(prefix + key, []).append(value)

    def on_train_batch_end(self, batch, logs=None):
        """Measure when `every` steps have passed since the last measurement."""
        if self.every is not None and self.model.optimizer.iterations - self._last >= self.every:
            self._record(STEP_PREFIX)

    def on_epoch_end(self, epoch, logs=None):
        """Measure at the epoch's last weights."""
        self._record(PREFIX)


__all__ = ["Diagnostics", "measure", "PREFIX", "STEP_PREFIX"]
