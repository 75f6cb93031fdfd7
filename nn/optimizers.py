"""Teaching path: Adam, exactly as Keras 3 computes it."""

import numbers
import weakref
from typing import NamedTuple

import numpy as np

from nn import kernels
from nn.errors import InputError, ModelError


class AdamState(NamedTuple):
    """Adam's state: steps taken, first moments m and second moments v (one per parameter)."""

    count: int
    m: list
    v: list


class Adam:
    """Adam as in Keras 3 (`keras.optimizers.Adam`), step for step.

    With t counting from 1, for each parameter w and its gradient g:

        alpha = lr * sqrt(1 - b2^t) / (1 - b1^t)
        m += (g - m) * (1 - b1)
        v += (g^2 - v) * (1 - b2)
        w -= (m * alpha) / (sqrt(v) + eps)

    Defaults lr=0.001, b1=0.9, b2=0.999, eps=1e-7 are Keras's.

    Where frameworks differ:
    - eps is added to sqrt(v), the *uncorrected* second moment, with the bias
      correction folded into alpha. PyTorch instead adds eps to
      sqrt(v_hat) = sqrt(v / (1 - b2^t)), so the same eps weighs differently
      early in training; PyTorch's default eps is also 1e-8, not 1e-7.
    - Keras computes b1^t and b2^t from b1 and b2 cast through a float32
      constant first (`ops.cast(0.9, dtype)` goes via float32), so in float64
      it uses float32(0.9) = 0.89999997615814 widened to float64. We do the
      same; in float64 the exact 0.9 would differ from Keras by a constant
      relative 6.7e-6 in every step. (1 - b1) in the moment updates is the
      plain Python float, as in Keras.
    Everything is computed in the parameter's dtype, in Keras's order of
    operations, so float32 steps round as Keras's do.
    """

    name = "adam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
        for name, value, lo, hi in (
            ("learning_rate", learning_rate, 0.0, np.inf),
            ("beta_1", beta_1, 0.0, 1.0),
            ("beta_2", beta_2, 0.0, 1.0),
        ):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not lo <= value < hi:
                raise InputError(f"Adam {name} must be a number in [{lo}, {hi}); got {value!r}")
        # eps > 0: a parameter whose gradient stays 0 (an always-blank pixel's
        # weights) has m = v = 0, and its update m / (sqrt(v) + eps) is 0 / 0.
        if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real) or not 0 < epsilon < np.inf:
            raise InputError(f"Adam epsilon must be a positive number; got {epsilon!r}")
        self.learning_rate = float(learning_rate)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)
        self.state = None
        self._owner = None  # weak references to the parameters `build` saw

    def build(self, params):
        """Zero moments for a list of parameter arrays; count starts at 0."""
        self.state = AdamState(0, [np.zeros_like(p) for p in params], [np.zeros_like(p) for p in params])
        self._owner = [weakref.ref(p) for p in params]

    def state_for(self, params):
        """The state for updating `params`: built on first use, else checked to be theirs.

        One Adam holds the moments of one model's parameters, as in Keras: a
        second model compiled with the same instance would inherit (or, with
        other shapes, overrun) the first one's moments, so it is refused.
        """
        if self.state is None:
            self.build(params)
        owner = self._owner
        if owner is not None and (len(owner) != len(params)
                                  or any(ref() is not p for ref, p in zip(owner, params))):
            raise ModelError("this Adam already holds the moments of another model's parameters; "
                             "compile each model with its own Adam()")
        state = self.state
        if not (len(state.m) == len(state.v) == len(params) and all(
                p.shape == m.shape == v.shape and p.dtype == m.dtype == v.dtype
                for p, m, v in zip(params, state.m, state.v))):
            raise ModelError("Adam's moments do not match the parameters they would update "
                             "(in number, shape or dtype); compile with a new Adam()")
        return state

    @property
    def iterations(self):
        """Number of updates applied so far (Keras's `optimizer.iterations`)."""
        return 0 if self.state is None else self.state.count

    def coefficients(self, t, dtype):
        """(alpha, 1 - b1, 1 - b2, eps) for step t >= 1, as scalars of `dtype`."""
        f = np.dtype(dtype).type
        b1_power = f(np.float32(self.beta_1)) ** f(t)
        b2_power = f(np.float32(self.beta_2)) ** f(t)
        alpha = f(self.learning_rate) * np.sqrt(f(1) - b2_power) / (f(1) - b1_power)
        return alpha, f(1 - self.beta_1), f(1 - self.beta_2), f(self.epsilon)

    def alphas(self, first_t, count, dtype):
        """alpha of `coefficients` for steps first_t .. first_t + count - 1, as a (count,) array.

        The same operations on arrays instead of scalars, so each entry equals
        coefficients(t, dtype)[0] (the tests check it); one call per chunk of
        fused steps instead of one Python call per step.
        """
        f = np.dtype(dtype).type
        t = np.arange(first_t, first_t + count).astype(dtype)
        b1_power = f(np.float32(self.beta_1)) ** t
        b2_power = f(np.float32(self.beta_2)) ** t
        return f(self.learning_rate) * np.sqrt(f(1) - b2_power) / (f(1) - b1_power)

    def apply(self, params, grads, backend=None):
        """One step: update every array in `params` in place from `grads`."""
        state = self.state_for(params)
        backend = backend or kernels.get_backend("numpy")
        t = state.count + 1
        coeffs = {}
        for w, g, m, v in zip(params, grads, state.m, state.v):
            if w.dtype not in coeffs:
                coeffs[w.dtype] = self.coefficients(t, w.dtype)
            backend.adam_update(w, g, m, v, *coeffs[w.dtype])
        self.state = self.state._replace(count=t)

    def get_config(self):
        """Constructor arguments."""
        return {
            "learning_rate": self.learning_rate,
            "beta_1": self.beta_1,
            "beta_2": self.beta_2,
            "epsilon": self.epsilon,
        }
