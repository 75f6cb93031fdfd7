"""A learning-rate schedule keeps nn's fit in float64 lockstep with Keras's fit."""

import numpy as np
import pytest

from nn.callbacks import LearningRateScheduler
from nn.recipe import scale_images, seed_model

pytestmark = [pytest.mark.keras, pytest.mark.slow]


def schedule(epoch, lr):
    return [0.001, 0.003, 0.0005][epoch]


@pytest.mark.parametrize("backend, engine", [("numpy", "layers"), ("numba", "fused")])
def test_a_schedule_keeps_fit_within_1e_10_of_keras(backend, engine, twin, train_split):
    # Three epochs of 20 batches, unshuffled so that both take the same batches,
    # with the rate changed at each epoch's start. The float64 bound of
    # test_keras_lockstep (1e-10 over 1,500 steps) covers these 60 steps; a rate
    # reaching one side late by one chunk, or rounded through float32, moves the
    # weights by ~1e-4 relative and fails at once.
    import keras

    from reference.lockstep import rel_diff

    images, labels = train_split
    x, y = scale_images(images[:640], "float64"), labels[:640]
    model = seed_model(0, "float64", backend=backend)
    kmodel = twin.to_keras(model)
    history = model.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0, engine=engine,
                        callbacks=[LearningRateScheduler(schedule)])
    with twin.keras_floatx("float64"):
        khistory = kmodel.fit(x, y, batch_size=32, epochs=3, shuffle=False, verbose=0,
                              callbacks=[keras.callbacks.LearningRateScheduler(schedule)])
    assert history.history["learning_rate"] == [0.001, 0.003, 0.0005]
    assert rel_diff(model.get_weights(), kmodel.get_weights()) <= 1e-10
    np.testing.assert_allclose(history.history["loss"], khistory.history["loss"], rtol=1e-10)
    np.testing.assert_allclose(history.history["learning_rate"],
                               khistory.history["learning_rate"], rtol=0)
