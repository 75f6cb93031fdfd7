"""Sequential: fit's Keras semantics, evaluate, predict, weights, determinism, saving."""

import numpy as np
import pytest

from nn import Adam, Callback, Dense, Flatten, Sequential, load_model, save_model
from nn.recipe import seed_model


def small_model(seed=0, dtype="float32", lr=0.001):
    model = Sequential([Flatten(input_shape=(3, 2)), Dense(5, "relu"), Dense(4, "softmax")],
                       dtype=dtype, seed=seed)
    model.compile(optimizer=Adam(learning_rate=lr))
    return model


def data(rng, n=23, dtype=np.float32):
    return rng.standard_normal((n, 3, 2)).astype(dtype), rng.integers(0, 4, n)


class Recorder(Callback):
    """Records which examples each step trains on, by wrapping the model's step.

    Only the layers engine calls `_step` per batch: fit with engine="layers".
    """

    def on_train_begin(self, logs=None):
        self.batches, step = [], self.model._step

        def recording_step(x, y):
            self.batches.append(x.copy())
            return step(x, y)

        self.model._step = recording_step


def reference_loss_and_accuracy(model, x, y):
    """Mean cross-entropy and accuracy computed independently in float64 from the weights."""
    k0, b0, k1, b1 = (w.astype(np.float64) for w in model.get_weights())
    h = np.maximum(x.reshape(len(x), -1).astype(np.float64) @ k0 + b0, 0)
    z = h @ k1 + b1
    log_p = z - z.max(axis=1, keepdims=True)
    log_p -= np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    return -log_p[np.arange(len(y)), y].mean(), (z.argmax(axis=1) == y).mean()


def test_epoch_figures_are_batch_size_weighted_means_with_a_partial_last_batch(rng):
    # With lr = 0 the weights never move, so the running mean over batches of 8, 8 and
    # a last one of 2 must equal the plain mean over all 18 training examples; dividing
    # the last batch by 8 instead of 2, or not weighting by size, would break this.
    model = small_model(dtype="float64", lr=0.0)
    x, y = data(rng, n=23, dtype=np.float64)
    history = model.fit(x, y, batch_size=8, epochs=2, validation_split=0.2, verbose=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    split = int(np.floor(23 * 0.8))  # 18, Keras's rule
    loss, acc = reference_loss_and_accuracy(model, x[:split], y[:split])
    val_loss, val_acc = reference_loss_and_accuracy(model, x[split:], y[split:])
    for epoch in range(2):  # float64, <= 18-term sums: agreement to ~1e-15 relative
        assert history.history["loss"][epoch] == pytest.approx(loss, rel=1e-12)
        assert history.history["accuracy"][epoch] == pytest.approx(acc, rel=1e-12)
        assert history.history["val_loss"][epoch] == pytest.approx(val_loss, rel=1e-12)
        assert history.history["val_accuracy"][epoch] == pytest.approx(val_acc, rel=1e-12)


def test_validation_is_the_last_fifth_and_each_epoch_is_a_fresh_permutation(rng):
    model = small_model()
    x, y = data(rng, n=50)
    x[:, 0, 0] = np.arange(50)  # tag each example with its index
    recorder = Recorder()
    model.fit(x, y, batch_size=7, epochs=3, validation_split=0.2, verbose=0, callbacks=[recorder],
              engine="layers")
    assert [len(b) for b in recorder.batches] == [7] * 5 + [5] + [7] * 5 + [5] + [7] * 5 + [5]
    orders = [np.concatenate([b[:, 0, 0] for b in recorder.batches[i * 6:(i + 1) * 6]]).astype(int)
              for i in range(3)]
    for order in orders:
        assert sorted(order) == list(range(40))  # each epoch: every training example once
    assert not np.array_equal(orders[0], orders[1]) and not np.array_equal(orders[1], orders[2])


def test_shuffle_false_keeps_the_order(rng):
    model = small_model()
    x, y = data(rng, n=10)
    x[:, 0, 0] = np.arange(10)
    recorder = Recorder()
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0, callbacks=[recorder],
              engine="layers")
    assert np.concatenate([b[:, 0, 0] for b in recorder.batches]).tolist() == list(range(10))


def test_same_seed_is_bit_identical_and_another_seed_is_not(rng):
    x, y = data(rng, n=60)
    runs = []
    for seed in (7, 7, 8):
        model = small_model(seed=seed)
        history = model.fit(x, y, batch_size=5, epochs=2, validation_split=0.2, verbose=0)
        runs.append((model.get_weights(), history.history))
    assert all(np.array_equal(a, b) for a, b in zip(runs[0][0], runs[1][0]))
    assert runs[0][1] == runs[1][1]
    assert not np.array_equal(runs[0][0][0], runs[2][0][0])


def test_float64_is_float64_end_to_end(rng):
    model = small_model(dtype="float64")
    x, y = data(rng)
    model.fit(x, y, epochs=1, verbose=0)
    assert all(w.dtype == np.float64 for w in model.get_weights())
    assert all(m.dtype == np.float64 for m in model.optimizer.state.m + model.optimizer.state.v)
    assert model.predict(x).dtype == np.float64
    assert all(g.dtype == np.float64 for layer in model.layers for g in layer.grads.values())


def test_training_reduces_the_loss_on_a_learnable_problem(rng):
    x = rng.standard_normal((200, 3, 2)).astype(np.float32)
    y = (x[:, 0, 0] > 0).astype(int) + 2 * (x[:, 1, 1] > 0)
    model = small_model(lr=0.01)
    history = model.fit(x, y, batch_size=16, epochs=30, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert history.history["accuracy"][-1] > 0.9


def test_predict_evaluate_and_train_on_batch(rng):
    model = small_model()
    x, y = data(rng)
    probs = model.predict(x, batch_size=4)
    assert probs.shape == (23, 4) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-6)
    loss, acc = model.evaluate(x, y, batch_size=5)
    ref_loss, ref_acc = reference_loss_and_accuracy(model, x, y)
    assert loss == pytest.approx(ref_loss, rel=1e-5)  # float32 forward: ~1e-7 per op, few ops
    assert acc == ref_acc
    before = model.get_weights()
    expected_loss, expected_acc = model.evaluate(x[:4], y[:4])  # measured before the step
    batch_loss, batch_acc = model.train_on_batch(x[:4], y[:4])
    assert (batch_loss, batch_acc) == (expected_loss, expected_acc)  # same ops, same batch
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert model.optimizer.iterations == 1
    assert model.evaluate(x[:4], y[:4])[0] != expected_loss


def test_weights_round_trip_through_a_file(tmp_path, rng):
    model = small_model(dtype="float64")
    x, y = data(rng)
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "model.npz"
    save_model(model, path)
    with np.load(path, allow_pickle=False) as f:
        assert "config" in f.files
    loaded = load_model(path)
    assert loaded.dtype == np.float64 and [type(a) for a in loaded.layers] == [type(b) for b in model.layers]
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), loaded.get_weights()))
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.evaluate(x, y) == model.evaluate(x, y)


def test_seed_model_summary(capsys):
    model = seed_model(seed=0)
    model.summary()
    text = capsys.readouterr().out
    assert "Total params: 104,938" in text  # 784*128+128 + 128*32+32 + 32*10+10
    assert [w.shape for w in model.get_weights()] == [(784, 128), (128,), (128, 32), (32,), (32, 10), (10,)]


@pytest.mark.parametrize("call", ["fit", "fit-layers", "evaluate", "predict"])
def test_the_model_does_not_keep_the_callers_data_alive(rng, call):
    # The layers keep their last input for backward; were it a view of x, the
    # model would hold all of x (188 MiB for MNIST) until its next call.
    import gc
    import weakref

    model = small_model()
    x, y = data(rng, n=40)  # float32 and C-contiguous: every batch slice is a view of x
    model.fit(x[:8], y[:8], verbose=0)  # built and compiled, on other data
    alive = weakref.ref(x)
    if call.startswith("fit"):
        model.fit(x, y, validation_split=0.25, verbose=0, engine="layers" if call == "fit-layers" else None)
    elif call == "evaluate":
        model.evaluate(x, y, batch_size=16)  # 40 = 16 + 16 + 8: the last batch is partial
    else:
        model.predict(x, batch_size=16)
    del x
    gc.collect()
    assert alive() is None
