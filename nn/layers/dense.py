"""Teaching path: Dense, the fully connected layer, in Keras's layout."""

import copy

import numpy as np

from nn._checks import positive_int
from nn.errors import InputError
from nn.layers.base import Layer

_ACTIVATIONS = {None: None, "linear": None, "relu": "relu", "softmax": "softmax"}


def glorot_uniform(rng, fan_in, fan_out, dtype):
    """U(-l, l) with l = sqrt(6 / (fan_in + fan_out)), shaped (fan_in, fan_out)."""
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(dtype)


class Dense(Layer):
    """act(x @ kernel + bias) with kernel (I, O) and bias (O,), as keras.layers.Dense.

    activation: None (or "linear"), "relu" or "softmax". The kernel starts
    Glorot-uniform and the bias at zero, Keras's defaults, so weights move
    between nn and Keras unchanged.
    """

    def __init__(self, units, activation=None, name=None, input_shape=None):
        super().__init__(name=name, input_shape=input_shape)
        self.units = positive_int(units, "units")
        if not isinstance(activation, (str, type(None))) or activation not in _ACTIVATIONS:
            raise InputError(
                f"activation must be None, 'linear', 'relu' or 'softmax'; got {activation!r}"
            )
        self.activation = _ACTIVATIONS[activation]
        self.needs_input_grad = True  # the model turns this off for its first layer

    def compute_output_shape(self, input_shape):
        """(I,) -> (units,)."""
        if len(input_shape) != 1:
            raise InputError(
                f"Dense expects flat inputs shaped (N, features); got examples shaped "
                f"{tuple(input_shape)} (put a Flatten layer first)"
            )
        return (self.units,)

    def build(self, input_shape, rng, dtype):
        """Create kernel (I, units) Glorot-uniform and bias (units,) zeros."""
        out_shape = super().build(input_shape, rng, dtype)
        fan_in = self.input_shape[0]
        self.params = {
            "kernel": glorot_uniform(rng, fan_in, self.units, self.dtype),
            "bias": np.zeros(self.units, self.dtype),
        }
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        return out_shape

    def forward(self, x, training=False):
        """(N, I) -> (N, units)."""
        k = self.backend
        y = k.dense_forward(x, self.params["kernel"], self.params["bias"], self.activation == "relu")
        if self.activation == "softmax":
            y = k.softmax(y)
        self._x, self._y = x, y
        return y

    def backward(self, dout):
        """(N, units) -> (N, I), or None when the input gradient is not needed."""
        k = self.backend
        if self.activation == "relu":
            dout = k.relu_backward(dout, self._y)
        elif self.activation == "softmax":
            dout = k.softmax_backward(dout, self._y)
        self.grads["kernel"] = k.matmul_tn(self._x, dout)  # (I, N) @ (N, O)
        self.grads["bias"] = k.bias_grad(dout)  # (O,)
        if not self.needs_input_grad:
            return None
        return k.matmul_nt(dout, self.params["kernel"])  # (N, O) @ (O, I)

    @property
    def relu_mask(self):
        """Which units were active in the last forward (None without ReLU)."""
        return self._y > 0 if self.activation == "relu" else None

    def without_activation(self):
        """This layer with no activation, sharing its params and grads dicts.

        The model trains a softmax output through its logits (the fused
        softmax + cross-entropy gradient); this view computes those logits
        while updates land in the original layer's arrays.
        """
        view = copy.copy(self)
        view.activation = None
        return view

    def get_config(self):
        """Constructor arguments."""
        return {"name": self.name, "units": self.units, "activation": self.activation}
