"""Teaching path: a catalogue of planted backprop bugs, and which check catches each.

Each mutant is one small, realistic mistake, applied by patching a function
of nn's teaching path for the duration of a `with` block and restored after
(nn's files are never edited). `run_catalogue` runs every check on every
mutant, and once on the correct code, where no check may fire:

- "finite differences": nn.gradcheck's batched fourth-order differences on
  two small networks (a Dense chain with a square 5 x 5 layer, and one with
  separate ReLU and Softmax layers), every layer and the model's loss;
- "complex step": the same networks by the complex step;
- "adam formula": three Adam steps against Keras 3's update rule written out
  by hand below (`keras_adam`), from the same weights and gradients;
- "keras lockstep" (when TensorFlow is installed; reference.mutant_lockstep):
  three training steps of nn and its Keras twin, weights and Adam moments
  compared after each.

The square layer is there because two classic bugs (a transposed kernel
gradient, W instead of W^T) only type-check on square layers; on any other
layer they crash, which needs no check.
"""

import contextlib
from dataclasses import dataclass

import numpy as np

from nn.kernels import numpy_kernels as spec
from nn.layers import Dense, Flatten, ReLU, Softmax
from nn.model import Sequential
from nn.optimizers import Adam

ADAM_STEPS = 3
# Adam against the hand-written rule: both evaluate the same float64
# expressions in the same order, so they agree to a few ulps of each update;
# 1e-12 of the largest update leaves room for pow/sqrt differing by an ulp.
ADAM_TOLERANCE = 1e-12


@dataclass
class Mutant:
    """A planted bug: name, what it gets wrong, and the patches (object, attribute, replacement)."""

    name: str
    description: str
    patches: tuple

    @contextlib.contextmanager
    def applied(self):
        """The library with this bug inside the block; restored exactly afterwards."""
        saved = [(obj, attr, obj.__dict__[attr]) for obj, attr, _ in self.patches]
        try:
            for obj, attr, new in self.patches:
                setattr(obj, attr, new)
            yield self
        finally:
            for obj, attr, old in saved:
                setattr(obj, attr, old)


# ---------------------------------------------------------------- the bugs
_matmul_tn, _matmul_nt = spec.matmul_tn, spec.matmul_nt
_coefficients = Adam.coefficients


def _transposed_kernel_grad(a, b):
    return b.T @ a if a.shape[1] == b.shape[1] else _matmul_tn(a, b)  # dout^T x: fits a square layer only


def _input_grad_w_not_wt(a, b):
    return a @ b if b.shape[0] == b.shape[1] else _matmul_nt(a, b)  # g W instead of g W^T


def _no_mean(probs, labels):
    g = probs.copy()
    g[np.arange(len(g)), labels] -= 1
    return g  # forgot / B


def _mean_twice(probs, labels):
    g = probs.copy()
    g[np.arange(len(g)), labels] -= 1
    return g / len(g) / len(g)  # the mean taken in the loss and again in the gradient


def _sign_flipped(probs, labels):
    g = -probs
    g[np.arange(len(g)), labels] += 1
    return g / len(g)  # onehot - p: the gradient of the negated loss


def _dense_backward(mask_bias, mask_input):
    """Dense.backward with the ReLU mask left out of the bias or the input gradient."""
    def backward(self, dout):
        k = self.backend
        raw = dout
        if self.activation == "relu":
            dout = k.relu_backward(dout, self._y)
        elif self.activation == "softmax":
            dout = k.softmax_backward(dout, self._y)
        self.grads["kernel"] = k.matmul_tn(self._x, dout)
        self.grads["bias"] = k.bias_grad(dout if mask_bias else raw)
        if not self.needs_input_grad:
            return None
        return k.matmul_nt(dout if mask_input else raw, self.params["kernel"])
    return backward


def _adam(change):
    """Adam.coefficients with one change to (t, alpha, 1 - b1, 1 - b2, eps)."""
    def coefficients(self, t, dtype):
        return change(self, t, dtype)
    return coefficients


def _t_off_by_one(self, t, dtype):
    return _coefficients(self, t + 1, dtype)


def _eps_on_vhat(self, t, dtype):  # PyTorch's placement: m_hat / (sqrt(v_hat) + eps)
    alpha, c1, c2, eps = _coefficients(self, t, dtype)
    f = np.dtype(dtype).type
    return alpha, c1, c2, eps * np.sqrt(f(1) - f(np.float32(self.beta_2)) ** f(t))


def _no_bias_correction(self, t, dtype):
    _, c1, c2, eps = _coefficients(self, t, dtype)
    return np.dtype(dtype).type(self.learning_rate), c1, c2, eps


def _betas_swapped(self, t, dtype):
    alpha, c1, c2, eps = _coefficients(self, t, dtype)
    return alpha, c2, c1, eps


MUTANTS = (
    Mutant("kernel-grad-transposed", "dW = dout^T x instead of x^T dout (fits a square layer)",
           ((spec, "matmul_tn", _transposed_kernel_grad),)),
    Mutant("input-grad-W-not-WT", "dx = dout W instead of dout W^T (fits a square layer)",
           ((spec, "matmul_nt", _input_grad_w_not_wt),)),
    Mutant("missing-1/B", "the loss gradient p - onehot without dividing by the batch size",
           ((spec, "softmax_xent_backward", _no_mean),)),
    Mutant("loss-averaged-twice", "the loss gradient divided by the batch size twice",
           ((spec, "softmax_xent_backward", _mean_twice),)),
    Mutant("xent-grad-sign-flipped", "onehot - p instead of p - onehot",
           ((spec, "softmax_xent_backward", _sign_flipped),)),
    Mutant("bias-grad-mean", "the bias gradient as the mean over the batch instead of the sum",
           ((spec, "bias_grad", lambda g: g.mean(axis=0)),)),
    Mutant("softmax-jacobian-no-dot", "softmax backward p * dout, without the - <dout, p> term",
           ((spec, "softmax_backward", lambda dout, p: p * dout),)),
    Mutant("relu-mask-from-dout", "ReLU's mask taken from the incoming gradient instead of the output",
           ((spec, "relu_backward", lambda dout, y: np.where(dout > 0, dout, 0.0)),)),
    Mutant("relu-mask-inclusive", "ReLU's mask y >= 0, true for every output: no mask at all",
           ((spec, "relu_backward", lambda dout, y: np.where(y >= 0, dout, 0.0)),)),
    Mutant("bias-grad-before-relu-mask", "Dense's bias gradient from dout before the ReLU mask",
           ((Dense, "backward", _dense_backward(mask_bias=False, mask_input=True)),)),
    Mutant("input-grad-before-relu-mask", "Dense's input gradient from dout before the ReLU mask",
           ((Dense, "backward", _dense_backward(mask_bias=True, mask_input=False)),)),
    Mutant("adam-t-off-by-one", "Adam's bias correction for step t + 1",
           ((Adam, "coefficients", _adam(_t_off_by_one)),)),
    Mutant("adam-eps-on-sqrt-vhat", "eps added to sqrt(v_hat) (PyTorch's placement), not sqrt(v)",
           ((Adam, "coefficients", _adam(_eps_on_vhat)),)),
    Mutant("adam-no-bias-correction", "Adam without bias correction: alpha = lr",
           ((Adam, "coefficients", _adam(_no_bias_correction)),)),
    Mutant("adam-betas-swapped", "b1 and b2 swapped in the moment updates",
           ((Adam, "coefficients", _adam(_betas_swapped)),)),
)


# -------------------------------------------------------------- the checks
def networks(seed=0):
    """The two small float64 networks the gradient checks run on, with a batch each."""
    rng = np.random.default_rng(seed)
    chain = [Flatten(input_shape=(2, 3)), Dense(5, "relu"), Dense(5, "relu"), Dense(4, "softmax")]
    layered = [Flatten(input_shape=(2, 3)), Dense(5), ReLU(), Dense(5), ReLU(), Dense(4), Softmax()]
    out = []
    for i, layers in enumerate((chain, layered)):
        model = Sequential(layers, dtype="float64", seed=seed + i, backend="numpy")
        model.compile()
        out.append((model, rng.standard_normal((6, 2, 3)), rng.integers(0, 4, 6)))
    return out


def failing(reports):
    """The reports that show a wrong gradient (an array with nothing comparable is no alarm)."""
    return [r for r in reports if r.checked and r.worst_error > r.tolerance]


def _network_check(method):
    def check(seed=0):
        from nn import gradcheck

        found = []
        for model, x, y in networks(seed):
            found += failing(gradcheck.check_network(model, x, y, method, seed))
        return [r.name for r in found]
    return check


def keras_adam(w, grads, lr=0.001, b1=0.9, b2=0.999, eps=1e-7):
    """Keras 3's Adam (keras/optimizers/adam.py update_step) written out in float64.

    b1, b2 go through float32 for the powers as Keras's ops.cast does; the
    moments use the plain Python 1 - b1, 1 - b2.
    """
    w, m, v = w.copy(), np.zeros_like(w), np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        alpha = lr * np.sqrt(1 - float(np.float32(b2)) ** t) / (1 - float(np.float32(b1)) ** t)
        m = m + (g - m) * (1 - b1)
        v = v + (g * g - v) * (1 - b2)
        w = w - (m * alpha) / (np.sqrt(v) + eps)
    return w


def adam_check(seed=0):
    """Names of the arrays where nn's Adam and keras_adam differ by more than ADAM_TOLERANCE."""
    rng = np.random.default_rng(seed)
    found = []
    for scale in (1.0, 1e-4):  # large gradients and ones near eps
        w0 = rng.standard_normal((4, 3))
        grads = [scale * rng.standard_normal((4, 3)) for _ in range(ADAM_STEPS)]
        w, adam = w0.copy(), Adam()
        for g in grads:
            adam.apply([w], [g], spec)
        expected = keras_adam(w0, grads)
        if np.abs(w - expected).max() > ADAM_TOLERANCE * np.abs(expected - w0).max():
            found.append(f"adam(gradients ~{scale:g})")
    return found


CHECKS = {
    "finite differences": _network_check("fd"),
    "complex step": _network_check("complex"),
    "adam formula": adam_check,
}


def available_checks(keras=None):
    """The checks to run: CHECKS, plus the Keras lockstep if keras is True, or None and TensorFlow loads."""
    checks = dict(CHECKS)
    if keras is not False:
        try:
            from reference.mutant_lockstep import lockstep_check
        except ImportError:
            if keras:
                raise
        else:
            checks["keras lockstep"] = lockstep_check
    return checks


def run_catalogue(mutants=MUTANTS, keras=None, seed=0):
    """Run every check on the correct code, then on each mutant.

    Returns {"control": {check: [arrays that fired]}, "mutants": [{"name",
    "description", "caught", "caught_by", "fired": {check: [...]}}], "checks": [...]}.
    """
    checks = available_checks(keras)
    control = {name: check(seed) for name, check in checks.items()}
    results = []
    for mutant in mutants:
        with mutant.applied():
            fired = {name: check(seed) for name, check in checks.items()}
        caught_by = [name for name, found in fired.items() if found]
        results.append({"name": mutant.name, "description": mutant.description, "caught": bool(caught_by),
                        "caught_by": caught_by, "fired": fired})
    return {"checks": list(checks), "control": control, "mutants": results}


__all__ = ["MUTANTS", "CHECKS", "Mutant", "adam_check", "available_checks", "failing",
           "keras_adam", "networks", "run_catalogue"]
