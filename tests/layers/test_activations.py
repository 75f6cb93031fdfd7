"""ReLU, Softmax and Flatten: values and gradients."""

import numpy as np
import pytest

from nn import gradcheck
from nn.layers import Flatten, ReLU, Softmax


def test_relu_values():
    relu = ReLU()
    relu.build((3,), None, "float64")
    np.testing.assert_array_equal(relu.forward(np.array([[-1.0, 0.0, 2.0]])), [[0.0, 0.0, 2.0]])


@pytest.mark.parametrize("layer, shape", [(ReLU(), (6,)), (Softmax(), (6,)), (Flatten(), (2, 3))],
                         ids=["relu", "softmax", "flatten"])
def test_gradients_match_finite_differences(layer, shape, rng):
    layer.build(shape, rng, "float64")
    x = 3 * rng.standard_normal((4,) + shape)
    for report in gradcheck.check_layer(layer, x, rng):
        assert report.passed, report.line()


def test_flatten_shapes():
    layer = Flatten()
    assert layer.build((28, 28), None, "float32") == (784,)
    x = np.zeros((5, 28, 28), np.float32)
    assert layer.forward(x).shape == (5, 784)
    assert layer.backward(np.zeros((5, 784), np.float32)).shape == (5, 28, 28)
