"""Every parameter gradient nn computes equals tf.GradientTape's on the same batch."""

import numpy as np
import pytest

import nn
from nn.recipe import seed_model

pytestmark = pytest.mark.keras


def keras_gradients(kmodel, x, y):
    """Gradients of the loss Keras's train step differentiates (its compute_loss), as arrays."""
    import tensorflow as tf

    @tf.function  # traced, as in fit: the softmax output hands its logits to the loss
    def grads(x, y):
        with tf.GradientTape() as tape:
            loss = kmodel.compute_loss(x=x, y=y, y_pred=kmodel(x, training=True))
        return loss, tape.gradient(loss, kmodel.trainable_variables)

    loss, g = grads(tf.constant(x), tf.constant(y))
    return float(loss), [a.numpy() for a in g]


def nn_gradients(model, x, y):
    """nn's gradients on (x, y) through the public API, which must move no weight."""
    before = model.get_weights()
    loss, grads = model.gradients(x, y)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    return loss, grads


def any_stack(dtype):
    model = nn.Sequential([nn.Flatten(input_shape=(28, 28)), nn.Dense(16), nn.ReLU(),
                           nn.Dense(10), nn.Softmax()], dtype=dtype, seed=5, backend="numpy")
    model.compile()
    return model


@pytest.mark.parametrize("build", [lambda d: seed_model(0, d, backend="numpy"), any_stack],
                         ids=["seed-network", "relu-and-softmax-layers"])
def test_every_gradient_matches_gradient_tape(twin, dtype, batch, build, chain_tolerance,
                                              seed_terms, record_property):
    # Each gradient ends a chain of seed_terms["gradient"] = 1,021 summed terms
    # (forward 947, back through the 10- and 32-wide layers, over the batch of 32),
    # so the sides may differ by 2 sqrt(1021) u of that gradient's scale:
    # 3.8e-6 in float32 and 7.1e-15 in float64 (measured: 2e-7 and 4e-16).
    # The smaller stack's chains are shorter, so the same tolerance covers it.
    model = build(dtype)
    kmodel = twin.to_keras(model)
    x, y = batch(dtype, start=320)
    k_loss, k_grads = keras_gradients(kmodel, x, y)
    loss, grads = nn_gradients(model, x, y)
    tol = chain_tolerance(seed_terms["gradient"], dtype)
    assert loss == pytest.approx(k_loss, rel=tol)
    assert len(grads) == len(k_grads)
    record_property("max_rel_diff", max(np.abs(a - b).max() / np.abs(b).max()
                                        for a, b in zip(grads, k_grads)))
    for ours, theirs in zip(grads, k_grads):
        assert ours.dtype == theirs.dtype == dtype and ours.shape == theirs.shape
        assert np.abs(ours - theirs).max() <= tol * np.abs(theirs).max()
