"""Sparse categorical cross-entropy: values, stability, gradient."""

import numpy as np

from nn.losses import SparseCategoricalCrossentropy


def test_loss_is_the_mean_negative_log_probability(rng):
    logits = rng.standard_normal((7, 10))
    labels = rng.integers(0, 10, 7)
    loss = SparseCategoricalCrossentropy()
    value = loss.forward(logits, labels)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)  # naive, fine for |z| < 5
    np.testing.assert_allclose(value, -np.log(p[np.arange(7), labels]).mean(), rtol=1e-14)
    onehot = np.eye(10)[labels]
    np.testing.assert_allclose(loss.backward(), (p - onehot) / 7, rtol=1e-13, atol=1e-17)


def test_huge_logits_stay_finite_and_exact():
    # The naive formula overflows here; log-sum-exp gives the exact answer 1000 - 0 = 1000
    # for the wrong class and log(1 + e^-1000) = 0 for the right one.
    logits = np.array([[1000.0, 0.0], [1000.0, 0.0]], np.float32)
    loss = SparseCategoricalCrossentropy()
    value = loss.forward(logits, np.array([1, 0]))
    assert value == np.float32(500.0)
    assert np.isfinite(loss.backward()).all()
