"""nn's fit and Keras's fit, unshuffled, give the same history in float64."""

import numpy as np
import pytest

from nn.recipe import scale_images, seed_model

pytestmark = [pytest.mark.keras, pytest.mark.slow]


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_fit_histories_agree_every_key_every_epoch(backend, twin, mnist, record_property):
    # Same weights, same batches (shuffle=False), Keras's split (last 20% of
    # the 60,000 held out) on both sides. Over 2 epochs (3,000 steps) float64
    # lockstep stays within ~1e-13 of Keras relative to the largest weight (see
    # test_keras_lockstep), so every figure, computed from those weights in
    # float64, agrees to far better than 1e-10. On numba, fit runs the fused
    # trainer (compressed rows, every core): the fast path itself is held here.
    (images, labels), _ = mnist
    x = scale_images(images, "float64")
    model = seed_model(0, "float64", backend=backend)
    kmodel = twin.to_keras(model)
    settings = dict(batch_size=32, epochs=2, validation_split=0.2, shuffle=False, verbose=0)
    with twin.keras_floatx("float64"):  # or Keras's adapter casts x to float32
        keras_history = kmodel.fit(x, labels, **settings).history
    history = model.fit(x, labels, **settings).history
    assert set(history) == set(keras_history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    worst = max(abs(a / b - 1) for key in history for a, b in zip(history[key], keras_history[key]))
    record_property("max_history_rel_diff", worst)  # shows in --junitxml reports
    for key in history:
        assert len(history[key]) == len(keras_history[key]) == 2
        np.testing.assert_allclose(history[key], keras_history[key], rtol=1e-10, err_msg=key)
    gap = max(np.abs(a - b).max() for a, b in zip(model.get_weights(), kmodel.get_weights()))
    assert gap <= 1e-10 * max(np.abs(w).max() for w in kmodel.get_weights())
