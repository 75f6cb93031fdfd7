"""Non-finite values stop fit on both engines, with the weights before the bad step."""

import json

import numpy as np
import pytest

from nn import Adam, Dense, Sequential, save_model
from nn.callbacks import EarlyStopping, LearningRateScheduler, TerminateOnNaN
from nn.errors import InputError, NonFiniteError

pytest.importorskip("numba")

ENGINES = [("numpy", "layers"), ("numpy", "fused"), ("numba", "layers"), ("numba", "fused")]
IDS = [f"{b}-{e}" for b, e in ENGINES]


def model_for(backend, lr=0.001, features=50):
    model = Sequential([Dense(16, "relu"), Dense(3, "softmax")], input_shape=(features,),
                       seed=0, backend=backend)
    model.compile(optimizer=Adam(learning_rate=lr))
    return model


def data(n=600, features=50):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, features)).astype(np.float32), rng.integers(0, 3, n)


def state(model):
    opt = model.optimizer.state
    return model.get_weights() + ([] if opt is None else list(opt.m) + list(opt.v)), model.optimizer.iterations


def trained_for(backend, engine, x, y, steps, lr, batch_size=10):
    """The same model trained on exactly the first `steps` batches (shuffle=False): the reference."""
    model = model_for(backend, lr)
    if steps:
        model.fit(x[:steps * batch_size], y[:steps * batch_size], batch_size=batch_size,
                  epochs=1, verbose=0, shuffle=False, engine=engine)
    return state(model)


def assert_same_state(got, want):
    (got_arrays, got_count), (want_arrays, want_count) = got, want
    assert got_count == want_count
    assert len(got_arrays) == len(want_arrays)
    for a, b in zip(got_arrays, want_arrays):
        np.testing.assert_array_equal(a, b)  # a replay of the same steps: bit for bit


@pytest.mark.parametrize(("backend", "engine"), ENGINES, ids=IDS)
def test_huge_inputs_stop_at_their_batch_naming_the_first_layer(backend, engine):
    # Row 457 of the training set is 3e38 in every feature (finite in float32, so the
    # input checks let it through); its batch is step 45 (0-based) of the first epoch,
    # in the middle of a fused chunk (409 steps of 10 examples). Its first layer's
    # x @ kernel sums 50 terms of 3e38 * U(-0.3, 0.3): it overflows to inf.
    x, y = data()
    x[457] = 3e38
    model = model_for(backend)
    with pytest.raises(NonFiniteError, match=r"layer 'dense': its output went non-finite at "
                                             r"epoch 1, step 46") as info:
        model.fit(x, y, batch_size=10, epochs=2, verbose=0, shuffle=False, engine=engine)
    assert (info.value.epoch, info.value.step, info.value.layer) == (0, 45, "dense")
    assert_same_state(state(model), trained_for(backend, engine, x, y, 45, 0.001))


@pytest.mark.parametrize(("backend", "engine"), ENGINES, ids=IDS)
def test_a_huge_learning_rate_stops_before_the_step_that_breaks(backend, engine):
    # lr = 1e37: the first update moves every weight by ~1e37 (Adam's step is lr
    # times m / sqrt(v) ~ 1), still finite; the second step's forward multiplies
    # them into inf. Training must stop before step 2 with the weights after step 1.
    x, y = data()
    model = model_for(backend, lr=1e37)
    with pytest.raises(NonFiniteError, match="epoch 1, step 2") as info:
        model.fit(x, y, batch_size=10, epochs=1, verbose=0, shuffle=False, engine=engine)
    assert info.value.step == 1 and info.value.layer is not None
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert_same_state(state(model), trained_for(backend, engine, x, y, 1, 1e37))


@pytest.mark.parametrize("engine", ["layers", "fused"])
def test_a_bad_step_in_a_later_epoch_keeps_the_finished_epochs(engine):
    # Shuffled epochs: the huge row lands in some batch of epoch 1 (0-based) or 0.
    x, y = data(n=200)
    x[3] = 3e38
    good = model_for("numba")
    history = good.fit(np.delete(x, 3, axis=0), np.delete(y, 3), epochs=1, batch_size=10,
                       verbose=0, engine=engine)
    assert len(history.history["loss"]) == 1
    model = model_for("numba")
    with pytest.raises(NonFiniteError) as info:
        model.fit(x, y, batch_size=10, epochs=3, verbose=0, engine=engine)
    assert info.value.epoch == 0 and info.value.layer == "dense"
    assert model.optimizer.iterations == info.value.step  # the steps before it, no more


@pytest.mark.parametrize("engine", ["layers", "fused"])
def test_terminate_on_nan_returns_the_finished_epochs_as_strict_json(engine, capsys):
    x, y = data()
    model = model_for("numba", lr=1e37)
    history = model.fit(x, y, batch_size=10, epochs=2, verbose=0, shuffle=False, engine=engine,
                        callbacks=[TerminateOnNaN()])
    assert "Batch 1: Invalid loss, terminating training" in capsys.readouterr().out
    json.dumps(history.history, allow_nan=False)  # no NaN slipped into the History
    assert history.history == {} and model.optimizer.iterations == 1
    with pytest.raises(NonFiniteError):
        model_for("numba", lr=1e37).fit(x, y, batch_size=10, verbose=0, shuffle=False, engine=engine,
                                        callbacks=[TerminateOnNaN(raise_error=True)])


@pytest.mark.parametrize("engine", ["layers", "fused"])
def test_early_stopping_restores_its_best_weights_on_a_bad_step(engine):
    # Two good epochs, then a schedule jumps the learning rate to 1e37 in the third:
    # its second step breaks, and EarlyStopping puts back the best epoch's weights.
    x, y = data(n=300)
    model = model_for("numba")
    stopper = EarlyStopping(monitor="loss", restore_best_weights=True, patience=5)
    schedule = LearningRateScheduler(lambda epoch, lr: 1e37 if epoch == 2 else 0.001)
    with pytest.raises(NonFiniteError, match=r"epoch 3, step 2.*EarlyStopping restored the "
                                             r"weights of epoch 2") as info:
        model.fit(x, y, batch_size=10, epochs=4, verbose=0, callbacks=[stopper, schedule],
                  shuffle=False, engine=engine)
    assert info.value.epoch == 2
    assert stopper.best_epoch == 1  # the loss fell from epoch 1 to 2
    for got, want in zip(model.get_weights(), stopper.best_weights):
        np.testing.assert_array_equal(got, want)


def test_save_model_refuses_non_finite_weights_and_writes_nothing(tmp_path):
    model = model_for("numpy")
    model.layers[0].params["kernel"][0, 0] = np.nan  # as a diverged run would leave it
    with pytest.raises(InputError, match="NaN or infinite.*not written"):
        save_model(model, tmp_path / "m.npz")
    assert list(tmp_path.iterdir()) == []
