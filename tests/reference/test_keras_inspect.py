"""`nn inspect --compare-keras`: Keras's step on the same weights and batch agrees within the parity tolerances."""

import numpy as np
import pytest

from nn.recipe import seed_model

pytestmark = pytest.mark.keras


@pytest.mark.parametrize("trained", [False, True], ids=["fresh", "after-two-steps"])
def test_every_compared_quantity_is_close(dtype, batch, trained, chain_tolerance, seed_terms):
    from reference import inspect_keras

    model = seed_model(0, dtype, backend="numpy")
    x, y = batch(dtype, start=64)
    if trained:  # Adam's moments and step count then enter the compared step
        for start in (0, 32):
            model.train_on_batch(*batch(dtype, start=start))
    # The module restates conftest's rule; its chain lengths must be the tests' own.
    assert inspect_keras.chain_terms(model, 32) == (seed_terms["forward"], seed_terms["gradient"])
    assert inspect_keras.chain_tolerance(100, dtype) == chain_tolerance(100, dtype)
    before = model.get_weights()
    rows = inspect_keras.compare(model, x, y)
    assert len(rows) == 1 + 4 + 4 + 6 + 6
    failed = [r for r in rows if not r["close"]]
    assert not failed, failed
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_wrong_value_is_not_close():
    from reference import inspect_keras

    row = inspect_keras.cmp("x", np.array([1.0, 2.0]), np.array([1.0, 2.001]), 1e-6)
    assert row == {"quantity": "x", "nn_norm": pytest.approx(np.sqrt(5)),
                   "keras_norm": pytest.approx(np.sqrt(1 + 2.001 ** 2)), "exact": False,
                   "close": False, "max_diff": pytest.approx(0.001), "tolerance": 1e-6}
