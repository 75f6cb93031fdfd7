"""nn.ScaledImages: uint8 images read as images / 255, the same floats as scale_images, a batch at a time."""

import tracemalloc

import numpy as np
import pytest

import nn.scaled
from nn import Dense, Flatten, InputError, ScaledImages, Sequential
from nn.backup import _digest
from nn.fast import config
from nn.fast.steps import nonzero_rows
from nn.inspect import trace
from nn.recipe import scale_images, seed_model

DTYPES = [pytest.param("float32", id="f32"), pytest.param("float64", id="f64")]


@pytest.fixture
def images(rng):
    x = rng.integers(0, 256, (50, 28, 28), dtype=np.uint8)
    x[0, 0, :2] = 0, 255  # both ends of the range
    return x


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("key", [3, -1, slice(5, 17), slice(None, None, 3), [4, 0, 4, 49],
                                 (slice(2, 4), 5), np.arange(50) % 3 == 0],
                         ids=["int", "negative", "slice", "step", "indices", "tuple", "mask"])
def test_every_selection_is_that_of_scale_images(images, dtype, key):
    key = np.array(key) if isinstance(key, list) else key
    want = scale_images(images, dtype)[key]
    got = ScaledImages(images, dtype=dtype)[key]
    assert isinstance(got, np.ndarray) and got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_whole_array_and_the_shape_are_those_of_scale_images(images, dtype):
    s = ScaledImages(images, dtype=dtype)
    np.testing.assert_array_equal(np.asarray(s), scale_images(images, dtype))
    assert (s.shape, s.ndim, s.size, len(s), s.dtype) == (images.shape, 3, images.size, 50, np.dtype(dtype))
    with pytest.raises(ValueError, match="no float array to share"):
        np.asarray(s, copy=False)


def test_select_and_reshape_stay_uint8_views(images):
    s = ScaledImages(images)
    part = s.select(slice(10, 20))
    assert isinstance(part, ScaledImages) and np.shares_memory(part.images, images)
    np.testing.assert_array_equal(part[:], scale_images(images[10:20]))
    flat = s.reshape(len(s), -1)
    assert flat.shape == (50, 784) and np.shares_memory(flat.images, images)
    with pytest.raises(InputError, match="first axis"):
        s.select((slice(None), 0))
    with pytest.raises(InputError, match="keep the 50 examples"):
        s.reshape(100, -1)


@pytest.mark.parametrize("args, match", [
    ((np.zeros((4, 3), np.float32),), "must be uint8"),
    ((np.zeros(4, np.uint8),), "batch axis first"),
    ((np.zeros((4, 3), np.uint8), 0), "scale must be a positive"),
    ((np.zeros((4, 3), np.uint8), float("nan")), "scale must be a positive"),
    ((np.zeros((4, 3), np.uint8), True), "scale must be a positive"),
    ((np.zeros((4, 3), np.uint8), 255, "int8"), "dtype must be"),
    ((np.zeros((4, 3), np.uint8), 1e39), "too large for float32"),  # float32 max is 3.4e38
], ids=["float", "1d", "zero-scale", "nan-scale", "bool-scale", "int-dtype", "huge-scale"])
def test_bad_arguments_are_refused_in_one_sentence(args, match):
    with pytest.raises(InputError, match=match):
        ScaledImages(*args)


# Every way fit can run: both backends, both engines, and the fused engine's
# BLAS path (NN_SKIP_ZEROS=0), which reads every input.
PATHS = [pytest.param("numba", "fused", "auto", id="numba-fused"),
         pytest.param("numba", "fused", "0", id="numba-fused-dense"),
         pytest.param("numba", "layers", "auto", id="numba-layers"),
         pytest.param("numpy", "fused", "auto", id="numpy-fused"),
         pytest.param("numpy", "layers", "auto", id="numpy-layers")]


@pytest.mark.parametrize("backend, engine, skip", PATHS)
def test_fit_ends_bit_identical_to_fit_on_the_float_array(mnist, backend, engine, skip, monkeypatch):
    monkeypatch.setattr(config, "SKIP_ZEROS", skip)
    (images, labels), _ = mnist
    images, labels = images[:600], labels[:600]
    runs = []
    for x in (scale_images(images), ScaledImages(images)):
        model = seed_model(seed=3, backend=backend)
        history = model.fit(x, labels, epochs=2, batch_size=32, validation_split=0.25, verbose=0,
                            engine=engine)
        runs.append((model, history.history))
    (plain, plain_history), (scaled, scaled_history) = runs
    assert scaled_history == plain_history
    for a, b in zip(plain.get_weights(), scaled.get_weights()):
        np.testing.assert_array_equal(a, b)
    test = ScaledImages(images[:300])
    np.testing.assert_array_equal(scaled.predict(test), scaled.predict(np.asarray(test)))
    assert scaled.evaluate(test, labels[:300]) == scaled.evaluate(np.asarray(test), labels[:300])


def test_validation_data_may_be_scaled_images_too(mnist):
    (images, labels), _ = mnist
    logs = []
    for wrap in (scale_images, ScaledImages):
        model = seed_model(seed=1, backend="numpy")
        logs.append(model.fit(wrap(images[:256]), labels[:256], epochs=1, verbose=0,
                              validation_data=(wrap(images[256:384]), labels[256:384])).history)
    assert logs[0] == logs[1]


def test_a_model_of_the_other_dtype_refuses_it_and_changes_nothing(images, rng):
    model = Sequential([Flatten(), Dense(10, activation="softmax")], dtype="float64", backend="numpy")
    model.compile()  # unbuilt until it sees data
    labels = rng.integers(0, 10, len(images))
    with pytest.raises(InputError, match=r"ScaledImages of float32 rows but the model computes in "
                                         r"float64; make it with ScaledImages\(images, dtype='float64'\)"):
        model.fit(ScaledImages(images), labels, verbose=0)
    assert not model.built
    model.fit(ScaledImages(images, dtype="float64"), labels, verbose=0)  # the matching one trains
    with pytest.raises(InputError, match="ScaledImages of float32"):
        model.predict(ScaledImages(images))
    with pytest.raises(InputError, match=r"must be shaped \(N, 28, 28\)"):
        model.predict(ScaledImages(images.reshape(50, -1), dtype="float64"))


def test_inspect_gradients_and_train_on_batch_see_the_same_floats(images, rng):
    model = seed_model(seed=0, backend="numpy")
    labels = rng.integers(0, 10, 8)
    s = ScaledImages(images[:8])
    traced, plain = trace(model, s, labels), trace(model, np.asarray(s), labels)
    assert traced["loss"] == plain["loss"]
    for a, b in zip(traced["layers"], plain["layers"]):
        np.testing.assert_array_equal(a["grad_input"] if a["grad_input"] is not None else 0,
                                      b["grad_input"] if b["grad_input"] is not None else 0)
        np.testing.assert_array_equal(a["output"], b["output"])
    loss, grads = model.gradients(s, labels)
    want_loss, want = model.gradients(np.asarray(s), labels)
    assert loss == want_loss and all(np.array_equal(g, w) for g, w in zip(grads, want))
    other = seed_model(seed=0, backend="numpy")
    assert model.train_on_batch(s, labels) == other.train_on_batch(np.asarray(s), labels)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), other.get_weights()))


def test_the_backup_fingerprint_is_that_of_the_float_array(images, rng, monkeypatch):
    # A backup written by a run on the float array resumes a run on its ScaledImages
    # (and back): the digest is the same bytes, read 7 rows at a time here.
    monkeypatch.setattr(nn.scaled, "BLOCK_ROWS", 7)
    labels = rng.integers(0, 10, len(images))
    s = ScaledImages(images)
    assert _digest(s, labels) == _digest(np.asarray(s), labels)
    assert _digest(s, labels) != _digest(ScaledImages(images, scale=256), labels)


def test_nonzero_rows_by_blocks_equals_them_at_once(images, rng, monkeypatch):
    monkeypatch.setattr(nn.scaled, "BLOCK_ROWS", 7)  # 50 images: 8 blocks, the last short
    images = np.where(rng.random(images.shape) < 0.8, 0, images).astype(np.uint8)
    images[9] = 0  # a row with no nonzero
    x = scale_images(images).reshape(50, -1)
    mask = x != 0  # the obvious way, all at once
    columns = np.broadcast_to(np.arange(784, dtype=np.uint16), x.shape)[mask]  # 784 columns: uint16
    want = (np.concatenate([[0], np.cumsum(mask.sum(axis=1))]), columns, x[mask])
    for got in (nonzero_rows(x), nonzero_rows(ScaledImages(images).reshape(50, -1))):
        for a, b in zip(got, want):
            assert a.dtype == b.dtype or a.dtype == np.int64
            np.testing.assert_array_equal(a, b)


def traced_peak(fn):
    """Peak bytes NumPy and Python allocate while fn runs (numba's own arrays are not traced)."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# The fused engine on 20,000 images (its rows must be small beside the floats);
# the layers engine on 5,000, enough there and four times quicker under tracemalloc.
@pytest.mark.parametrize("backend, engine, n", [("numba", "fused", 20_000), ("numpy", "layers", 5_000)])
def test_fit_never_makes_the_float_array(mnist, backend, engine, n, monkeypatch):
    monkeypatch.setattr(nn.scaled, "BLOCK_ROWS", 512)
    (images, labels), _ = mnist
    x, y = ScaledImages(images[:n]), labels[:n]
    floats = n * 784 * 4  # the float32 array: 62.7 MB for 20,000 images, 15.7 MB for 5,000
    model = seed_model(seed=0, backend=backend)
    model.fit(x.select(slice(0, 64)), y[:64], epochs=1, verbose=0, engine=engine)  # compiled, warm
    peak = traced_peak(lambda: model.fit(x, y, epochs=1, validation_split=0.2, verbose=0, engine=engine))
    # What fit may hold: a few MB for the labels, the permutation, batches, chunks'
    # figures and the History; the fused engine adds its compressed rows of the
    # training images (exactly their nbytes) and a block of rows being compressed
    # (512 x 784 float32 plus its mask and selections: under 3 x 1.6 MB). The bound
    # is under half of `floats`, so a float copy of x cannot hide in it.
    train = int(n * 0.8)
    rows = sum(a.nbytes for a in nonzero_rows(x.select(slice(0, train)).reshape(train, -1)))
    bound = 4 * 2**20 + (rows + 3 * 512 * 784 * 4 if engine == "fused" else 0)
    assert bound < floats / 2
    assert peak < bound, f"fit peaked at {peak / 2**20:.1f} MiB of NumPy arrays (bound {bound / 2**20:.1f})"
