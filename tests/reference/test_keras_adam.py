"""One Adam step from the same (weights, m, v, t) and the same gradients: nn's equals Keras's."""

import numpy as np
import pytest

import nn
from nn.optimizers import AdamState

pytestmark = pytest.mark.keras


def random_state(rng, shapes, dtype, t):
    """Weights, gradients and moments of plausible sizes, v >= 0, at step count t."""
    def draw(scale, positive=False):
        arrays = [scale * rng.standard_normal(s) for s in shapes]
        return [(np.abs(a) if positive else a).astype(dtype) for a in arrays]

    return draw(0.1), draw(0.01), AdamState(t, draw(1e-3), draw(1e-5, positive=True))


@pytest.mark.parametrize("t", [0, 6, 999], ids=["first-step", "step-7", "step-1000"])
def test_one_adam_step_from_the_same_state_matches_keras(twin, dtype, rng, t, unit_roundoff):
    import keras

    shapes = [(784, 128), (128,), (32, 10)]
    weights, grads, state = random_state(rng, shapes, dtype, t)
    with twin.keras_floatx(dtype):
        variables = [keras.Variable(w, dtype=dtype) for w in weights]
        kopt = keras.optimizers.Adam()
        kopt.build(variables)
    kopt.iterations.assign(t)
    for slot, value in zip(kopt._momentums + kopt._velocities, state.m + state.v):
        slot.assign(value)
    kopt.apply_gradients(zip([keras.ops.convert_to_tensor(g) for g in grads], variables))

    opt = nn.Adam()
    opt.state = AdamState(t, [a.copy() for a in state.m], [a.copy() for a in state.v])
    ours = [w.copy() for w in weights]
    opt.apply(ours, grads)

    assert opt.iterations == int(kopt.iterations.numpy()) == t + 1
    u = unit_roundoff(dtype)
    for i, w in enumerate(ours):
        # m and v go through the same IEEE operations in the same order from the
        # same inputs, each correctly rounded: they must agree bit for bit.
        np.testing.assert_array_equal(opt.state.m[i], kopt._momentums[i].numpy())
        np.testing.assert_array_equal(opt.state.v[i], kopt._velocities[i].numpy())
        # The step alpha m / (sqrt(v) + eps) differs only through alpha, whose
        # b^t powers come from different pow implementations (each within an
        # ulp or two: 4u relative between them); w - step then rounds once (u |w|).
        step = np.abs(w.astype(np.float64) - weights[i])
        assert np.all(np.abs(w - variables[i].numpy()) <= 4 * u * step + u * np.abs(w))


def test_adam_state_moves_both_ways_unchanged(twin, dtype, batch):
    from nn.recipe import seed_model

    model = seed_model(0, dtype, backend="numpy")
    for start in (0, 32, 64):
        model.train_on_batch(*batch(dtype, start=start))
    kmodel = twin.to_keras(model)
    twin.set_keras_adam_state(kmodel, model.optimizer.state)
    theirs = twin.keras_adam_state(kmodel)
    other = seed_model(1, dtype, backend="numpy")
    twin.set_nn_adam_state(other, theirs)
    for state in (theirs, other.optimizer.state):
        assert state.count == 3
        for ours, copied in zip(model.optimizer.state.m + model.optimizer.state.v,
                                state.m + state.v):
            assert copied.dtype == dtype
            np.testing.assert_array_equal(ours, copied)
