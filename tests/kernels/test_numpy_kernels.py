"""The NumPy kernels (the specification) against values computed by hand."""

import numpy as np
import pytest

from nn.kernels import numpy_kernels as k


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_dense_forward_by_hand(dtype):
    x = np.array([[1.0, 2.0], [-1.0, 0.5]], dtype)
    w = np.array([[1.0, -1.0, 0.0], [0.5, 2.0, -3.0]], dtype)
    b = np.array([0.0, -4.0, 1.0], dtype)
    # row 0: [1+1, -1+4-4, 0-6+1] = [2, -1, -5]; row 1: [-1+0.25, 1+1-4, -1.5+1] = [-0.75, -2, -0.5]
    expected = np.array([[2.0, -1.0, -5.0], [-0.75, -2.0, -0.5]], dtype)
    np.testing.assert_array_equal(k.dense_forward(x, w, b, relu=False), expected)
    np.testing.assert_array_equal(k.dense_forward(x, w, b, relu=True), np.maximum(expected, 0))
    assert k.dense_forward(x, w, b, relu=True).dtype == dtype


def test_gradient_matmuls_and_bias_by_hand():
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    g = np.array([[1.0, 0.0, -1.0], [2.0, 1.0, 0.0]])
    # x^T g = [[1+6, 3, -1], [2+8, 4, -2]]
    np.testing.assert_array_equal(k.matmul_tn(x, g), [[7.0, 3.0, -1.0], [10.0, 4.0, -2.0]])
    w = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 1.0]])  # (I=2, O=3)
    # g W^T: row 0 = [1-3, 0+0-1], row 1 = [2+2, 0-1]
    np.testing.assert_array_equal(k.matmul_nt(g, w), [[-2.0, -1.0], [4.0, -1.0]])
    np.testing.assert_array_equal(k.bias_grad(g), [3.0, 1.0, -1.0])


def test_relu_backward_is_zero_at_zero():
    y = np.array([[0.0, 1.5, 0.0, 2.0]])
    dout = np.array([[5.0, 6.0, 7.0, -8.0]])
    np.testing.assert_array_equal(k.relu_backward(dout, y), [[0.0, 6.0, 0.0, -8.0]])


def test_softmax_xent_by_hand():
    # logits [0, ln 3]: softmax [1/4, 3/4]; label 1 -> loss -ln(3/4); label 0 -> -ln(1/4)
    logits = np.array([[0.0, np.log(3.0)], [0.0, np.log(3.0)]])
    labels = np.array([1, 0])
    loss, probs = k.softmax_xent_forward(logits, labels)
    np.testing.assert_allclose(probs, [[0.25, 0.75], [0.25, 0.75]], rtol=1e-15)
    assert loss == pytest.approx((-np.log(0.75) - np.log(0.25)) / 2, rel=1e-15)
    # (p - onehot) / B with B = 2
    np.testing.assert_allclose(k.softmax_xent_backward(probs, labels),
                               [[0.125, -0.125], [-0.375, 0.375]], rtol=1e-15)


def test_softmax_backward_by_hand():
    p = np.array([[0.25, 0.75]])
    dout = np.array([[1.0, 0.0]])
    # p * (dout - <dout, p>) = [0.25 * 0.75, 0.75 * -0.25]
    np.testing.assert_allclose(k.softmax_backward(dout, p), [[0.1875, -0.1875]], rtol=1e-15)


def test_adam_update_by_hand():
    w, g = np.array([1.0, -2.0]), np.array([0.5, 0.0])
    m, v = np.array([0.1, 0.2]), np.array([0.01, 0.04])
    k.adam_update(w, g, m, v, alpha=0.01, one_minus_beta_1=0.1, one_minus_beta_2=0.001, epsilon=1e-7)
    m_exp = np.array([0.1 + (0.5 - 0.1) * 0.1, 0.2 + (0.0 - 0.2) * 0.1])  # [0.14, 0.18]
    v_exp = np.array([0.01 + (0.25 - 0.01) * 0.001, 0.04 + (0.0 - 0.04) * 0.001])
    np.testing.assert_allclose(m, m_exp, rtol=1e-15)
    np.testing.assert_allclose(v, v_exp, rtol=1e-15)
    np.testing.assert_allclose(w, [1.0, -2.0] - 0.01 * m_exp / (np.sqrt(v_exp) + 1e-7), rtol=1e-15)
