"""Teaching path: Flatten, one example of any shape to a vector."""

import math

from nn.layers.base import Layer


class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1 * d2 * ...), as keras.layers.Flatten."""

    def compute_output_shape(self, input_shape):
        """(d1, d2, ...) -> (d1 * d2 * ...,)."""
        return (math.prod(input_shape),)

    def forward(self, x, training=False):
        """Reshape without copying when x is contiguous."""
        return x.reshape(x.shape[0], -1)

    def backward(self, dout):
        """Reshape the gradient back to the input's example shape."""
        return dout.reshape((dout.shape[0],) + self.input_shape)
