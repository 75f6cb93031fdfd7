"""nn.inspect.trace: every layer's values in one step, consistent with each other and with the maths."""

import numpy as np
import pytest

from nn import Dense, Flatten, InputError, ModelError, Sequential
from nn.inspect import trace
from nn.kernels import numpy_kernels

from test_gradients import assert_same, chain, data, layered, snapshot


def test_trace_links_each_layer_to_the_next_and_matches_gradients(rng):
    model = chain()
    x, y = data(rng)
    t = trace(model, x, y)
    loss, grads = model.gradients(x, y)
    assert t["loss"] == loss
    layers = t["layers"]
    assert [e["name"] for e in layers] == [layer.name for layer in model.layers]
    assert [e["class"] for e in layers] == ["Flatten", "Dense", "Dense", "Dense"]
    np.testing.assert_array_equal(layers[0]["input"], x)
    for below, above in zip(layers, layers[1:]):
        np.testing.assert_array_equal(below["output"], above["input"])
        # what a layer passes down is what arrives at the output of the one below
        np.testing.assert_array_equal(below["grad_output"], above["grad_input"])
    assert_same([g for e in layers for g in e["grads"].values()], grads)
    assert layers[0]["grad_input"].shape == x.shape  # dL/dx, reshaped back to images


def test_dense_entries_hold_pre_activations_and_their_gradients(rng):
    model = chain()
    x, y = data(rng)
    layers = trace(model, x, y)["layers"]
    for e in layers[1:3]:  # the ReLU layers
        assert e["activation"] == "relu"
        np.testing.assert_array_equal(e["output"], np.maximum(e["pre_activation"], 0))
        np.testing.assert_array_equal(e["grad_pre_activation"],
                                      np.where(e["output"] > 0, e["grad_output"], 0))
    last = layers[-1]
    z, p = last["pre_activation"], last["output"]
    np.testing.assert_allclose(p, np.exp(z) / np.exp(z).sum(1, keepdims=True), rtol=1e-14)
    onehot = np.eye(3)[y]
    np.testing.assert_allclose(last["grad_pre_activation"], (p - onehot) / len(y), rtol=1e-14)
    # dL/dp pushed back through the softmax's Jacobian gives the same dL/dz (float64:
    # each entry a 3-term sum of O(1) values, so agreement to ~1e-15 absolute)
    vjp = numpy_kernels.softmax_backward(last["grad_output"], p)
    np.testing.assert_allclose(vjp, last["grad_pre_activation"], rtol=0, atol=1e-14)


def test_input_gradient_equals_central_differences(rng):
    # Central differences in float64: truncation and rounding both ~1e-11 at
    # h = 1e-5 (see tests/test_gradients.py), so 1e-8 absolute is a safe bound.
    model = layered()
    x, y = data(rng, n=3)
    dx = trace(model, x, y)["layers"][0]["grad_input"]
    h, numeric = 1e-5, np.empty_like(x)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += h
        down[i] -= h
        numeric[i] = (model.gradients(up, y)[0] - model.gradients(down, y)[0]) / (2 * h)
    np.testing.assert_allclose(dx, numeric, rtol=0, atol=1e-8)


def test_separate_relu_and_softmax_layers_are_traced(rng):
    model = layered()
    x, y = data(rng)
    layers = trace(model, x, y)["layers"]
    assert [e["class"] for e in layers] == ["Flatten", "Dense", "ReLU", "Dense", "Softmax"]
    soft = layers[-1]
    np.testing.assert_allclose(soft["grad_input"], (soft["output"] - np.eye(3)[y]) / len(y),
                               rtol=1e-14)
    assert layers[2]["grads"] == {} and soft["grads"] == {}
    assert layers[1]["activation"] is None
    np.testing.assert_array_equal(layers[1]["pre_activation"], layers[1]["output"])


def test_trace_changes_nothing(rng):
    model = chain("numba")
    x, y = data(rng)
    model.train_on_batch(x, y)
    before = snapshot(model)
    trace(model, *data(rng, n=4))
    assert_same(snapshot(model), before)
    assert model.layers[1].needs_input_grad is False  # turned on for the trace only


def test_trace_refuses_bad_input():
    with pytest.raises(ModelError, match="not built"):
        m = Sequential([Dense(2, "softmax")])
        m.compile()
        trace(m, np.ones((1, 3)), [0])
    with pytest.raises(ModelError, match="not compiled"):
        trace(Sequential([Flatten(input_shape=(3,)), Dense(2, "softmax")]), np.ones((1, 3)), [0])
    model = chain()
    with pytest.raises(InputError, match="y must hold class indices"):
        trace(model, np.ones((2, 2, 3)), [0, 7])
