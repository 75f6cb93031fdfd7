"""Teaching path: activation layers: ReLU and Softmax."""

import numpy as np

from nn.layers.base import Layer


class ReLU(Layer):
    """max(x, 0) elementwise; any input shape."""

    def forward(self, x, training=False):
        """(N, ...) -> (N, ...)."""
        self._y = np.maximum(x, x.dtype.type(0))
        return self._y

    def backward(self, dout):
        """Pass dout where the output was positive (derivative 0 at 0)."""
        return self.backend.relu_backward(dout, self._y)

    @property
    def relu_mask(self):
        """Which units were active in the last forward (for gradcheck's kink test)."""
        return self._y > 0


class Softmax(Layer):
    """Row-wise softmax over the last axis of (N, C) logits."""

    def forward(self, x, training=False):
        """(N, C) logits -> (N, C) probabilities, each row summing to 1."""
        self._p = self.backend.softmax(x)
        return self._p

    def backward(self, dout):
        """Vector-Jacobian product p * (dout - <dout, p>)."""
        return self.backend.softmax_backward(dout, self._p)
