"""Dense: Keras's layout and initialisation, shapes, and gradients."""

import numpy as np
import pytest

from nn import gradcheck
from nn.errors import InputError
from nn.layers import Dense


def built(layer, input_shape, rng, dtype="float64"):
    layer.build(input_shape, rng, dtype)
    return layer


def test_kernel_is_in_out_glorot_uniform_and_bias_is_zero(rng):
    layer = built(Dense(128), (784,), rng, "float32")
    kernel, bias = layer.params["kernel"], layer.params["bias"]
    assert kernel.shape == (784, 128) and bias.shape == (128,)
    assert kernel.dtype == np.float32 and not bias.any()
    limit = np.sqrt(6 / (784 + 128))
    assert np.abs(kernel).max() <= limit
    # U(-l, l) has variance l^2 / 3; with 100,352 draws the sample variance is within
    # ~0.9% (its relative standard error is sqrt(0.8 / n)); 5% leaves a wide margin.
    assert kernel.var() == pytest.approx(limit ** 2 / 3, rel=0.05)
    assert abs(kernel.mean()) < 5 * limit / np.sqrt(3 * kernel.size)  # 5 standard errors


def test_forward_shape_and_activation(rng):
    layer = built(Dense(3, activation="relu"), (4,), rng)
    y = layer.forward(rng.standard_normal((5, 4)))
    assert y.shape == (5, 3) and (y >= 0).all()
    probs = built(Dense(6, activation="softmax"), (4,), rng).forward(rng.standard_normal((2, 4)))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-15)


@pytest.mark.parametrize("activation", [None, "relu", "softmax"], ids=["linear", "relu", "softmax"])
@pytest.mark.parametrize("batch", [1, 3], ids=["batch1", "batch3"])
def test_gradients_match_finite_differences(activation, batch, rng):
    layer = built(Dense(5, activation=activation), (4,), rng)
    reports = gradcheck.check_layer(layer, rng.standard_normal((batch, 4)), rng)
    assert [r.name for r in reports] == ["dense.input", "dense.kernel", "dense.bias"]
    for report in reports:
        assert report.passed, report.line()


def test_gradient_shapes_match_parameter_shapes(rng):
    layer = built(Dense(5, activation="relu"), (4,), rng)
    layer.forward(rng.standard_normal((3, 4)))
    dx = layer.backward(rng.standard_normal((3, 5)))
    assert dx.shape == (3, 4)
    assert {k: v.shape for k, v in layer.grads.items()} == {k: v.shape for k, v in layer.params.items()}


def test_unknown_activation_and_bad_units_are_refused():
    with pytest.raises(InputError, match="activation"):
        Dense(3, activation="tanh")
    with pytest.raises(InputError, match="units"):
        Dense(0)


def test_unflattened_input_says_to_flatten(rng):
    with pytest.raises(InputError, match="Flatten"):
        Dense(3).build((28, 28), rng, "float32")
