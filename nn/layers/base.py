"""Teaching path: the layer interface every layer follows."""

import numpy as np

from nn import _checks, kernels
from nn.errors import InputError


class Layer:
    """A layer: `forward` caches what `backward` needs; `params`/`grads` share keys.

    Subclasses set `self.params` (name -> array) in `build` and fill
    `self.grads` with arrays of the same shapes in `backward`.
    """

    def __init__(self, name=None, input_shape=None):
        if name is not None and not (isinstance(name, str) and name):
            raise InputError(f"name must be a non-empty string; got {name!r}")
        self.name = name or type(self).__name__.lower()
        self.input_shape = None if input_shape is None else _checks.shape(input_shape, "input_shape")
        self.params = {}
        self.grads = {}
        self.built = False
        self.dtype = None
        self.backend = kernels.get_backend("numpy")

    def build(self, input_shape, rng, dtype):
        """Create parameters for inputs shaped (N, *input_shape); return the output shape."""
        self.input_shape = tuple(input_shape)
        self.dtype = np.dtype(dtype)
        self.built = True
        return self.compute_output_shape(self.input_shape)

    def compute_output_shape(self, input_shape):
        """Shape of one output example given the shape of one input example."""
        return tuple(input_shape)

    def forward(self, x, training=False):
        """Output for input x, (N, *input_shape) -> (N, *output_shape)."""
        raise NotImplementedError

    def backward(self, dout):
        """Gradient w.r.t. the last forward's input; fills `self.grads`."""
        raise NotImplementedError

    def get_config(self):
        """The constructor arguments, JSON-serialisable."""
        return {"name": self.name}

    def count_params(self):
        """Number of scalar parameters."""
        return int(sum(p.size for p in self.params.values()))
