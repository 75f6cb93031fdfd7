"""Adam against the Keras 3 update rule written out independently."""

import numpy as np
import pytest

from nn.errors import InputError
from nn.optimizers import Adam


def keras_adam_reference(w, grads, lr=0.001, b1=0.9, b2=0.999, eps=1e-7):
    """Keras 3's Adam in float64 Python, step by step (betas via float32 as Keras casts them)."""
    w, m, v = w.copy(), np.zeros_like(w), np.zeros_like(w)
    b1c, b2c = float(np.float32(b1)), float(np.float32(b2))
    for t, g in enumerate(grads, start=1):
        alpha = lr * np.sqrt(1 - b2c ** t) / (1 - b1c ** t)
        m = m + (g - m) * (1 - b1)
        v = v + (g * g - v) * (1 - b2)
        w = w - (m * alpha) / (np.sqrt(v) + eps)
    return w, m, v


def test_adam_matches_the_keras_rule_over_many_steps(rng):
    w0 = rng.standard_normal((5, 3))
    grads = [rng.standard_normal((5, 3)) for _ in range(50)]
    w = w0.copy()
    opt = Adam()
    for g in grads:
        opt.apply([w], [g])
    w_ref, m_ref, v_ref = keras_adam_reference(w0, grads)
    # Same operations in the same order in float64: only pow() may differ by an ulp,
    # which moves alpha by ~1e-16 relative; 50 steps keep the total far below 1e-13.
    np.testing.assert_allclose(w, w_ref, rtol=1e-13, atol=0)
    np.testing.assert_allclose(opt.state.m[0], m_ref, rtol=1e-13)
    np.testing.assert_allclose(opt.state.v[0], v_ref, rtol=1e-13)
    assert opt.iterations == 50


def test_bias_correction_uses_float32_betas_as_keras_does():
    alpha, omb1, omb2, eps = Adam().coefficients(1, np.float64)
    b1, b2 = 0.8999999761581421, 0.9990000128746033  # float32(0.9), float32(0.999) widened
    assert alpha == 0.001 * np.sqrt(1 - b2) / (1 - b1)
    assert omb1 == 1 - 0.9 and omb2 == 1 - 0.999 and eps == 1e-7
    # The exact 0.9 would give an alpha off by a constant ~6.7e-6 relative at t = 1.
    exact = 0.001 * np.sqrt(1 - 0.999) / (1 - 0.9)
    assert abs(alpha / exact - 1) > 1e-6


def test_first_step_moves_each_weight_by_about_the_learning_rate(rng):
    # At t = 1: m = 0.1 g, v = 0.001 g^2, alpha = lr * sqrt(0.001) / 0.1, so the step is
    # lr * g / (|g| + eps / sqrt(0.001)): lr * sign(g) for |g| >> 3e-6. The float32 betas
    # move sqrt(1 - b2) by 6.4e-6 relative, hence rtol 1e-5.
    w = np.zeros(100)
    g = rng.standard_normal(100)
    Adam(learning_rate=0.01).apply([w], [g])
    np.testing.assert_allclose(w, -0.01 * g / (np.abs(g) + 1e-7 / np.sqrt(0.001)), rtol=1e-5)
    assert np.abs(np.abs(w) - 0.01).max() < 0.01 * 3.2e-6 / np.abs(g).min() * 1.01


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_adam_keeps_the_dtype(dtype, rng):
    w = rng.standard_normal(4).astype(dtype)
    opt = Adam()
    opt.apply([w], [rng.standard_normal(4).astype(dtype)])
    assert w.dtype == dtype and opt.state.m[0].dtype == dtype and opt.state.v[0].dtype == dtype


@pytest.mark.parametrize("kwargs", [{"learning_rate": -1.0}, {"beta_1": 1.0}, {"beta_2": -0.1},
                                    {"epsilon": "small"}, {"learning_rate": True}],
                         ids=["negative-lr", "beta1-one", "beta2-negative", "eps-str", "lr-bool"])
def test_bad_hyperparameters_are_refused(kwargs):
    with pytest.raises(InputError, match=next(iter(kwargs))):
        Adam(**kwargs)
