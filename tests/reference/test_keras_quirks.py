"""Keras behaviours the reference works around, pinned so an upgrade that changes one shows."""

import numpy as np
import pytest

pytestmark = pytest.mark.keras


def test_seeded_fit_replays_one_permutation_every_epoch(twin):
    # After keras.utils.set_random_seed, tf.random.shuffle inside the data
    # pipeline draws the same permutation at every epoch (and in the next fit):
    # Keras's "shuffle" then is one fixed reordering. nn draws a fresh one each epoch.
    import keras

    seen = []

    class Recorder(keras.Sequential):
        def train_step(self, data):
            seen.append(data[0].numpy()[:, 0].astype(int).tolist())
            return super().train_step(data)

    keras.utils.set_random_seed(0)
    model = Recorder([keras.Input((1,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", run_eagerly=True)
    x, y = np.arange(10, dtype="float32")[:, None], np.zeros(10, int)
    model.fit(x, y, batch_size=10, epochs=3, verbose=0)
    assert sorted(seen[0]) == list(range(10)) and seen[0] != list(range(10))
    assert seen[1] == seen[0] and seen[2] == seen[0]


def test_keras_casts_float64_arrays_to_floatx_in_fit_evaluate_predict(twin):
    # A float64 model fed float64 NumPy arrays still computes in float32 unless
    # floatx is float64: the array adapter casts float inputs to floatx first.
    from nn.recipe import seed_model

    model = seed_model(0, "float64", backend="numpy")
    kmodel = twin.to_keras(model)
    x = np.random.default_rng(0).random((64, 28, 28))
    exact = model.predict(x)
    gap_default = np.abs(kmodel.predict(x, verbose=0) - exact).max()
    with twin.keras_floatx("float64"):
        gap_floatx = np.abs(kmodel.predict(x, verbose=0) - exact).max()
    assert gap_default > 1e-9 > 1e-14 > gap_floatx


def test_keras_adam_bias_correction_uses_float32_betas(twin):
    # ops.cast(0.9, "float64") goes through a float32 constant, so Keras's b^t
    # uses float32(b) even in float64. At t = 1 that moves alpha = lr sqrt(1 - b2)
    # / (1 - b1) by a relative -6.7e-6 (mostly sqrt(1 - float32(0.999))): ignore it
    # and every float64 step is off by that much. nn.optimizers.Adam matches it.
    import keras

    import nn

    b1, b2 = (float(keras.ops.convert_to_numpy(keras.ops.cast(b, "float64"))) for b in (0.9, 0.999))
    assert b1 == float(np.float32(0.9)) != 0.9 and b2 == float(np.float32(0.999)) != 0.999
    keras_alpha = 0.001 * np.sqrt(1 - b2) / (1 - b1)
    exact_alpha = 0.001 * np.sqrt(1 - 0.999) / (1 - 0.9)
    assert keras_alpha / exact_alpha - 1 == pytest.approx(-6.7e-6, rel=0.01)
    assert nn.Adam().coefficients(1, "float64")[0] == keras_alpha


def test_keras_takes_the_loss_from_the_softmax_logits(twin):
    # A softmax output carries its logits and the loss uses them: for logits
    # (0, 40) and label 0 the loss is 40 (log-sum-exp), not -log(1e-7) = 16.1
    # as clipping the probability to [eps, 1 - eps] would give. nn does the same.
    import keras

    import nn

    model = nn.Sequential([nn.Dense(2, activation="softmax", input_shape=(1,))], dtype="float64",
                          backend="numpy")
    model.compile()
    model.set_weights([np.array([[0.0, 40.0]]), np.zeros(2)])
    kmodel = twin.to_keras(model)
    x, y = np.ones((1, 1)), np.array([0])
    with twin.keras_floatx("float64"):
        keras_loss = kmodel.evaluate(x, y, verbose=0)[0]
        traced = kmodel.train_on_batch(x, y)[0]
    assert keras_loss == pytest.approx(40.0, rel=1e-12) and traced == pytest.approx(40.0, rel=1e-12)
    assert model.evaluate(x, y)[0] == pytest.approx(40.0, rel=1e-12)
    bare = keras.losses.sparse_categorical_crossentropy(y, np.array([[4.2e-18, 1.0]]))
    assert keras.ops.convert_to_numpy(bare).item() == pytest.approx(16.118, rel=1e-3)  # clipped
