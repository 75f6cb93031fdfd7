"""nn.fast.trainer and train_steps: the kernel against its twin; the trainer keeps fit's meaning."""

import numpy as np
import pytest

from nn import Callback, Dense, Flatten, Sequential
from nn.fast import steps as twin
from nn.optimizers import Adam

numba_steps = pytest.importorskip("nn.fast.numba_steps")


def problem(seed, n=29, sizes=(11, 6, 5, 3), dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, sizes[0]))
    x[rng.random(x.shape) < 0.5] = 0
    shapes = np.array(list(zip(sizes[:-1], sizes[1:])), np.int64)
    relu = np.array([True] * (len(sizes) - 2) + [False])
    w = (0.3 * rng.standard_normal(sum(i * o + o for i, o in shapes.tolist()))).astype(dtype)
    return x.astype(dtype), rng.integers(0, sizes[-1], n), rng.permutation(n), shapes, relu, w


def empty_rows(dtype):
    """No compressed rows: train_steps then takes the dense (BLAS) path."""
    return np.empty(0, np.int64), np.empty(0, np.int32), np.empty(0, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_nonzero_rows_keeps_every_nonzero_in_row_order(dtype, rng):
    x = rng.standard_normal((37, 13)).astype(dtype)
    x[rng.random(x.shape) < 0.7] = 0
    x[5] = 0  # a row with no nonzero at all
    assert numba_steps.nonzero_rows is twin.nonzero_rows  # NumPy on both backends
    indptr, indices, values = twin.nonzero_rows(x)
    assert (indptr.dtype, indices.dtype, values.dtype) == (np.int64, np.uint16, x.dtype)
    assert indptr[0] == 0 and indptr[-1] == np.count_nonzero(x) and indptr[6] == indptr[5]
    for r in range(len(x)):  # columns ascending within each row (in int64: no unsigned wrap)
        assert np.all(np.diff(indices[indptr[r]:indptr[r + 1]].astype(np.int64)) > 0)
    dense = np.zeros_like(x)
    for r in range(len(x)):  # rebuild x from its rows: nothing lost, nothing invented
        dense[r, indices[indptr[r]:indptr[r + 1]]] = values[indptr[r]:indptr[r + 1]]
    np.testing.assert_array_equal(dense, x)


@pytest.mark.parametrize("shape, dtype", [(7, np.float32), ((3, 5), np.float64), (1, np.int64)])
def test_line_aligned_arrays_start_a_cache_line(shape, dtype):
    for _ in range(5):  # NumPy's own allocations land on 16-byte steps: any of them must do
        a = twin.line_aligned(shape, dtype)
        assert a.ctypes.data % 64 == 0 and a.shape == np.empty(shape).shape and a.dtype == dtype
        assert a.flags.c_contiguous and a.flags.writeable


def test_nonzero_rows_of_more_than_65536_columns_count_in_int32():
    x = np.zeros((2, (1 << 16) + 1), np.float32)
    x[1, -1] = x[0, 3] = 1  # the last column's number does not fit in uint16
    indptr, indices, _ = twin.nonzero_rows(x)
    assert indices.dtype == np.int32 and list(indices) == [3, 1 << 16]
    assert twin.nonzero_rows(x[:, :1 << 16])[1].dtype == np.uint16  # 65536 columns: 0..65535


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("skip_zeros", [False, True], ids=["dense", "skip"])
def test_train_steps_matches_its_twin(skip_zeros, threads):
    x, y, order, shapes, relu, w0 = problem(0)
    batch, steps = 4, 8  # 29 examples: the 8th batch (first_step 0 .. 7) is short (1 example)
    alphas = Adam().alphas(1, steps, x.dtype)
    c = Adam().coefficients(1, x.dtype)[1:]
    results = []
    for module in (twin, numba_steps):
        w, m, v = w0.copy(), np.zeros_like(w0), np.zeros_like(w0)
        losses, correct, grads = np.empty(steps), np.empty(steps, np.int64), np.empty_like(w0)
        rows = module.nonzero_rows(x) if skip_zeros else empty_rows(x.dtype)
        module.train_steps(twin.Chain(shapes, relu, w, m, v, grads),
                           twin.Batches(x, y, order, batch, *rows), 0,
                           twin.AdamSteps(alphas, *c), threads, losses, correct)
        results.append((w, m, v, losses, correct, grads))
    for got, want in zip(*results[::-1]):  # float64, 8 steps: see tests/test_backends_agree.py
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_thread_count_never_changes_a_result():
    x, y, order, shapes, relu, w0 = problem(1, n=64, sizes=(20, 9, 4))
    alphas = Adam().alphas(1, 16, x.dtype)
    c = Adam().coefficients(1, x.dtype)[1:]
    results = []
    for threads in (1, 2, 3):
        w, m, v = w0.copy(), np.zeros_like(w0), np.zeros_like(w0)
        losses, correct = np.empty(16), np.empty(16, np.int64)
        numba_steps.train_steps(twin.Chain(shapes, relu, w, m, v, np.empty_like(w0)),
                                twin.Batches(x, y, order, 4, *numba_steps.nonzero_rows(x)), 0,
                                twin.AdamSteps(alphas, *c), threads, losses, correct)
        results.append(w)
    for w in results[1:]:
        np.testing.assert_array_equal(w, results[0])


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_history_says_how_many_steps_ran_on_each_thread_count(backend):
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((300, 12)), rng.integers(0, 3, 300)
    x[rng.random(x.shape) < 0.8] = 0  # sparse: the compressed-row path, where the choice runs
    model = Sequential([Dense(8, "relu", input_shape=(12,)), Dense(3, "softmax")],
                       dtype="float64", seed=0, backend=backend)
    model.compile()
    history = model.fit(x, y, batch_size=8, epochs=3, verbose=0, engine="fused")
    if backend == "numpy":  # one Python thread: no choice to report
        assert "thread_steps" not in history.params
        return
    taken = history.params["thread_steps"]
    assert sum(taken.values()) == 3 * 38  # every step of 3 epochs of ceil(300 / 8) steps, once
    assert set(taken) <= {1, 2, numba_steps.MAX_THREADS} and all(n > 0 for n in taken.values())


@pytest.mark.skipif(numba_steps.MAX_THREADS < 2, reason="numba has one thread here")
def test_the_blas_path_keeps_one_thread_count_for_the_whole_fit(monkeypatch):
    # OpenBLAS's sums depend on its thread count (a fit at batch 32 on 2,000 MNIST
    # images ended in other bits on 1 and 2 threads): moving between counts there
    # would make a result depend on timing.
    from nn.fast import config
    monkeypatch.setattr(config, "SKIP_ZEROS", "0")
    monkeypatch.setattr(config, "ADAPTIVE_THREADS", True)  # the default, whatever NN_NUM_THREADS says here
    monkeypatch.setattr(config, "NUM_THREADS", 2)
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((600, 12)), rng.integers(0, 3, 600)
    model = Sequential([Dense(8, "relu", input_shape=(12,)), Dense(3, "softmax")],
                       dtype="float64", seed=0, backend="numba")
    model.compile()
    history = model.fit(x, y, batch_size=4, epochs=3, verbose=0, engine="fused")
    assert history.params["thread_steps"] == {2: 3 * 150}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_alphas_equal_coefficients_step_by_step(dtype):
    adam = Adam(learning_rate=0.003, beta_1=0.8, beta_2=0.99)
    first = 4990  # past where b2^t underflows nothing, through many roundings
    alphas = adam.alphas(first, 40, dtype)
    assert alphas.dtype == dtype
    assert [adam.coefficients(t, dtype)[0] for t in range(first, first + 40)] == list(alphas)
    assert list(Adam().alphas(1, 3, dtype)) == [Adam().coefficients(t, dtype)[0] for t in (1, 2, 3)]


class Batches(Callback):
    def on_train_begin(self, logs=None):
        self.seen = []

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append((batch, dict(logs)))


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_callbacks_see_every_batch_with_the_layer_paths_logs(backend):
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((70, 2, 3)), rng.integers(0, 3, 70)
    seen = {}
    for fused in (False, True):
        model = Sequential([Flatten(input_shape=(2, 3)), Dense(5, "relu"), Dense(3, "softmax")],
                           dtype="float64", seed=0, backend=backend)
        model.compile()
        hook = Batches()
        model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[hook],
                  engine="fused" if fused else "layers")
        seen[fused] = hook.seen
        assert model.optimizer.iterations == 10  # 5 batches (the last of 6) per epoch
    assert [b for b, _ in seen[True]] == [0, 1, 2, 3, 4] * 2
    if backend == "numpy":
        assert seen[True] == seen[False]
    else:
        for (_, a), (_, b) in zip(seen[True], seen[False]):
            assert a == pytest.approx(b, rel=1e-12)


def test_a_batch_hook_set_on_a_callback_instance_is_called_too():
    # The fused engine calls per batch only callbacks whose on_train_batch_end
    # is not Callback's empty one: one set on the instance counts.
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((70, 6)), rng.integers(0, 3, 70)
    model = Sequential([Dense(5, "relu", input_shape=(6,)), Dense(3, "softmax")], dtype="float64", seed=0)
    model.compile()
    hook, seen = Callback(), []
    hook.on_train_batch_end = lambda batch, logs=None: seen.append((batch, logs["loss"]))
    history = model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[hook], engine="fused")
    assert [b for b, _ in seen] == [0, 1, 2, 3, 4] * 2
    assert seen[-1][1] == history.history["loss"][-1]  # the epoch's logs are its last batch's


class Adds(Callback):
    """Writes into each batch's logs, as a user's callback may."""

    def on_train_batch_end(self, batch, logs=None):
        logs["batches"] = batch + 1


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_what_a_callback_adds_to_the_last_batchs_logs_reaches_history_on_both_engines(backend):
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((70, 6)), rng.integers(0, 3, 70)
    keys = {}
    for engine in ("layers", "fused"):
        model = Sequential([Dense(5, "relu", input_shape=(6,)), Dense(3, "softmax")], dtype="float64",
                           seed=0, backend=backend)
        model.compile()
        keys[engine] = model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[Adds()],
                                 engine=engine).history
    assert keys["fused"]["batches"] == keys["layers"]["batches"] == [5, 5]


class EpochWeights(Callback):
    """The weights after each epoch."""

    def on_train_begin(self, logs=None):
        self.after = []

    def on_epoch_end(self, epoch, logs=None):
        self.after.append([w.copy() for w in self.model.get_weights()])


def test_a_checkpoint_every_n_batches_holds_the_weights_of_the_batch_it_names(tmp_path):
    # The fused engine replays a chunk's batches after running it; a checkpoint at
    # a batch inside the chunk would hold the chunk's last weights under its name.
    # Here an epoch is one chunk (150 steps): its end is the only batch it can save.
    from nn.callbacks import ModelCheckpoint
    from nn.saving import load_weights

    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((600, 6)), rng.integers(0, 3, 600)
    model = Sequential([Dense(5, "relu", input_shape=(6,)), Dense(3, "softmax")], dtype="float64", seed=0)
    model.compile()
    check = ModelCheckpoint(str(tmp_path / "ck-{epoch}-{batch}.weights.npz"), save_weights_only=True,
                            save_freq=7)
    ends = EpochWeights()
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[check, ends], engine="fused")
    assert [p.rsplit("/", 1)[1] for p in check.saved] == ["ck-1-150.weights.npz", "ck-2-150.weights.npz"]
    for path, want in zip(check.saved, ends.after):
        load_weights(model, path)
        for got, expected in zip(model.get_weights(), want):
            np.testing.assert_array_equal(got, expected, err_msg=path)


def test_zero_skipping_is_chosen_by_density_and_bad_settings_are_refused(monkeypatch):
    from nn import InputError
    from nn.fast import config

    sparse = np.zeros((10, 30))
    sparse[:, :9] = 1.0  # 30% nonzero: at most a third, so the compressed rows pay
    dense = np.ones((10, 30))
    monkeypatch.setattr(config, "SKIP_ZEROS", "auto")
    assert config.skip_zeros(sparse) and not config.skip_zeros(dense)
    monkeypatch.setattr(config, "SKIP_ZEROS", "0")
    assert not config.skip_zeros(sparse)
    monkeypatch.setattr(config, "SKIP_ZEROS", "1")
    assert config.skip_zeros(dense)
    monkeypatch.setattr(config, "SKIP_ZEROS", True)  # a bool, not "1": refused, not guessed
    with pytest.raises(InputError, match="NN_SKIP_ZEROS"):
        config.skip_zeros(dense)
