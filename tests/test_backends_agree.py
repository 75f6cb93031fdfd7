"""Training on the numba backend agrees with the NumPy twin, and fused steps with layer steps.

Tolerances, derived. In float64 every kernel differs from its twin by at
most ~K u relative to its terms (K <= 784 terms, u = 1.1e-16: < 1e-13), so
a gradient entry g moves by < 1e-13 |terms|. Adam turns g into the step
lr * m / (sqrt(v) + eps); that ratio moves by at most its input's relative
error, and, for entries so small that sqrt(v) ~ eps = 1e-7, by at most
lr * |dg| / eps = 1e-3 * 1e-13 * |terms| / 1e-7 ~ 1e-9 |terms|. Over S steps
those add up, so weights may differ by S * 1e-9 in the worst case and by far
less in practice; we allow 1e-8 after a handful of steps. In float32, u is
6e-8: per-step losses (means over a batch) agree to ~K u = 5e-5 relative
before any weight moves, and the few steps here keep them within 1e-3.
"""

import numpy as np
import pytest

from nn import Dense, Flatten, ReLU, Sequential, gradcheck, kernels
from nn.fast import config
from nn.recipe import seed_model

pytest.importorskip("nn.fast.numba_kernels")


def chain(backend, dtype="float64", seed=3, sizes=(7, 5, 4)):
    """A small Dense chain that fit can fuse: Flatten, Dense relu ..., Dense softmax."""
    layers = [Flatten(input_shape=(3, 3))]
    layers += [Dense(n, "relu") for n in sizes[:-1]] + [Dense(sizes[-1], "softmax")]
    model = Sequential(layers, dtype=dtype, seed=seed, backend=backend)
    model.compile()
    return model


def sparse_data(rng, n=45, dtype=np.float64):
    """Inputs with many exact zeros, as MNIST's, so zero-skipping is exercised."""
    x = rng.standard_normal((n, 3, 3))
    x[rng.random(x.shape) < 0.6] = 0
    return x.astype(dtype), rng.integers(0, 4, n)


def fit(model, x, y, engine=None, skip_zeros=True, epochs=2, batch_size=8):
    saved, config.SKIP_ZEROS = config.SKIP_ZEROS, "1" if skip_zeros else "0"
    try:
        history = model.fit(x, y, epochs=epochs, batch_size=batch_size, validation_split=0.2,
                            verbose=0, engine=engine)
    finally:
        config.SKIP_ZEROS = saved
    return history.history, model.get_weights()


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_fused_steps_equal_layer_steps_bit_for_bit(backend, rng):
    # The twin of train_steps is the layer path as a loop; the numba train_steps
    # calls the same compiled helpers and BLAS calls as the numba layer kernels.
    x, y = sparse_data(rng)
    layer_hist, layer_w = fit(chain(backend), x, y, engine="layers")
    fused_hist, fused_w = fit(chain(backend), x, y, engine="fused", skip_zeros=False)
    assert fused_hist == layer_hist
    for a, b in zip(fused_w, layer_w):
        np.testing.assert_array_equal(a, b)


def test_zero_skipping_changes_nothing_beyond_summation_order(rng):
    x, y = sparse_data(rng)
    dense_hist, dense_w = fit(chain("numba"), x, y, engine="fused", skip_zeros=False)
    sparse_hist, sparse_w = fit(chain("numba"), x, y, engine="fused", skip_zeros=True)
    for a, b in zip(sparse_w, dense_w):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-8)  # float64, 10 steps: see above
    np.testing.assert_allclose(sparse_hist["loss"], dense_hist["loss"], rtol=1e-12)


def test_numba_and_numpy_train_alike_in_float64(rng):
    x, y = sparse_data(rng)
    numpy_hist, numpy_w = fit(chain("numpy"), x, y)  # the teaching path, layer by layer
    numba_hist, numba_w = fit(chain("numba"), x, y)  # the fused engine, compressed rows
    for a, b in zip(numba_w, numpy_w):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-8)
    for key in numpy_hist:
        np.testing.assert_allclose(numba_hist[key], numpy_hist[key], rtol=1e-12)


def test_unfusable_models_take_the_layer_path_on_both_backends(rng):
    # A separate ReLU layer is not a Dense chain: fit must fall back, with the same results.
    def model(backend):
        m = Sequential([Flatten(input_shape=(3, 3)), Dense(6), ReLU(), Dense(4, "softmax")],
                       dtype="float64", seed=1, backend=backend)
        m.compile()
        return m

    x, y = sparse_data(rng)
    numpy_hist, numpy_w = fit(model("numpy"), x, y)
    numba_hist, numba_w = fit(model("numba"), x, y)
    for a, b in zip(numba_w, numpy_w):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-8)


@pytest.mark.data
def test_seed_recipe_steps_agree_in_float32(mnist_scaled):
    (x, y), _ = mnist_scaled
    histories = {}
    for backend in ("numpy", "numba"):
        model = seed_model(seed=0, backend=backend)
        histories[backend] = model.fit(x[:1600], y[:1600], epochs=2, batch_size=32,
                                       validation_split=0.2, verbose=0).history
    for key in ("loss", "val_loss"):  # 80 float32 steps: see the module docstring
        np.testing.assert_allclose(histories["numba"][key], histories["numpy"][key], rtol=1e-3)
    for key in ("accuracy", "val_accuracy"):  # a flipped argmax or two at most
        np.testing.assert_allclose(histories["numba"][key], histories["numpy"][key], atol=3 / 320)


@pytest.mark.data
def test_numba_training_is_deterministic(mnist_scaled):
    (x, y), _ = mnist_scaled
    runs = []
    for _ in range(2):
        model = seed_model(seed=7, backend="numba")
        model.fit(x[:1000], y[:1000], epochs=1, batch_size=32, verbose=0)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_gradcheck_passes_on_each_backend(backend):
    rng = np.random.default_rng(5)
    model = Sequential([Flatten(input_shape=(4,)), Dense(6, "relu"), Dense(3, "softmax")],
                       dtype="float64", seed=5, backend=backend)
    model.compile()
    reports = gradcheck.check_model(model, rng.standard_normal((3, 4)), rng.integers(0, 3, 3))
    for layer, x in zip(model.layers[1:], (rng.standard_normal((3, 4)), rng.standard_normal((3, 6)))):
        reports += gradcheck.check_layer(layer, x, rng)
    assert all(r.passed for r in reports), gradcheck.worst(reports).line()


def test_backend_choice(monkeypatch):
    monkeypatch.delenv("NN_BACKEND", raising=False)
    assert kernels.default_backend() == "numba"  # fastest installed
    assert Sequential([Dense(2)]).backend_name == "numba"
    monkeypatch.setenv("NN_BACKEND", "numpy")
    assert Sequential([Dense(2)]).backend_name == "numpy"
    assert Sequential([Dense(2)], backend="numba").backend_name == "numba"


def test_numba_missing_degrades_to_numpy_with_a_warning(monkeypatch):
    monkeypatch.setitem(kernels._MISSING, "numba", "No module named 'numba'")
    monkeypatch.delenv("NN_BACKEND", raising=False)
    assert kernels.available_backends() == ("numpy",)
    assert kernels.default_backend() == "numpy"
    with pytest.warns(RuntimeWarning, match="numba backend cannot load.*pip install numba"):
        model = Sequential([Dense(2)], backend="numba")
    assert model.backend_name == "numpy"
