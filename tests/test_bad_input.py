"""Bad input: one clear InputError naming the argument, and nothing lost."""

import copy

import numpy as np
import pytest

from nn import Dense, Flatten, InputError, ModelError, Sequential
from nn.recipe import scale_images, seed_model


@pytest.fixture
def model():
    return seed_model(seed=0)


@pytest.fixture
def batch(rng):
    return rng.random((40, 28, 28)).astype(np.float32), rng.integers(0, 10, 40)


def nan_at(x, value):
    x = x.copy()
    x[3, 4, 5] = value
    return x


BAD_FIT = {
    "x-1d": (lambda x, y: (x[0, 0], y[:28]), {}, "x must have a batch axis"),
    "x-shape": (lambda x, y: (x[:, :27], y), {}, r"x must be shaped \(N, 28, 28\)"),
    "x-strings": (lambda x, y: (np.full((40, 28, 28), "a"), y), {}, "x must hold real numbers"),
    "x-complex": (lambda x, y: (x + 1j, y), {}, "x must hold real numbers"),
    "x-ragged": (lambda x, y: ([[1.0, 2.0], [3.0]], y), {}, "x must be an array-like"),
    "x-nan": (lambda x, y: (nan_at(x, np.nan), y), {}, "x contains 1 NaN or infinite"),
    "x-inf": (lambda x, y: (nan_at(x, np.inf), y), {}, "x contains 1 NaN or infinite"),
    "x-overflows-float32": (lambda x, y: (nan_at(x.astype(np.float64), 1e300), y), {},
                            "x contains 1 NaN or infinite value.*float32"),
    "x-empty": (lambda x, y: (x[:0], y[:0]), {}, "x is empty"),
    "y-too-big": (lambda x, y: (x, np.where(y == 3, 10, y)), {}, r"y must hold class indices in \[0, 9\]"),
    "y-negative": (lambda x, y: (x, -y - 1), {}, r"y must hold class indices in \[0, 9\]"),
    "y-fractional": (lambda x, y: (x, y + 0.5), {}, "y must hold whole numbers"),
    "y-nan": (lambda x, y: (x, np.full(40, np.nan)), {}, "y must hold whole numbers"),
    "y-2d": (lambda x, y: (x, np.eye(10)[y]), {}, r"y must be a vector of class indices"),
    "y-strings": (lambda x, y: (x, y.astype(str)), {}, "y must hold integer class indices"),
    "length-mismatch": (lambda x, y: (x, y[:39]), {}, "y has 39 labels but x has 40; they must match"),
    "batch-size-0": (lambda x, y: (x, y), {"batch_size": 0}, "batch_size must be a positive integer"),
    "batch-size-negative": (lambda x, y: (x, y), {"batch_size": -32}, "batch_size must be a positive"),
    "batch-size-float": (lambda x, y: (x, y), {"batch_size": 32.5}, "batch_size must be a positive"),
    "epochs-0": (lambda x, y: (x, y), {"epochs": 0}, "epochs must be a positive integer"),
    "split-1": (lambda x, y: (x, y), {"validation_split": 1.0}, r"validation_split must be a number in \[0, 1\)"),
    "split-negative": (lambda x, y: (x, y), {"validation_split": -0.1}, r"validation_split must be a number"),
    "split-leaves-nothing": (lambda x, y: (x, y), {"validation_split": 0.99}, "leaves 0 for training"),
    "split-and-data": (lambda x, y: (x, y), {"validation_split": 0.2, "validation_data": ([], [])},
                       "validation_split or validation_data"),
}


@pytest.mark.parametrize("case", BAD_FIT, ids=list(BAD_FIT))
def test_fit_refuses_bad_input_and_loses_nothing(case, model, batch):
    make, kwargs, message = BAD_FIT[case]
    x, y = make(*batch)
    x_before, y_before = copy.deepcopy(x), copy.deepcopy(y)
    weights = model.get_weights()
    with pytest.raises(InputError, match=message):
        model.fit(x, y, verbose=0, **kwargs)
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights()))
    assert model.optimizer.iterations == 0
    np.testing.assert_equal(x, x_before)  # the caller's data is untouched (NaN == NaN here)
    np.testing.assert_equal(y, y_before)


@pytest.mark.parametrize("method", ["evaluate", "predict", "train_on_batch"])
def test_other_entry_points_check_too(method, model, batch):
    x, y = batch
    args = (nan_at(x, np.nan),) if method == "predict" else (nan_at(x, np.nan), y)
    with pytest.raises(InputError, match="x contains"):
        getattr(model, method)(*args)
    args = (x[:, :5],) if method == "predict" else (x, y[:3])
    with pytest.raises(InputError):
        getattr(model, method)(*args)


def test_uncompiled_and_unbuilt_models_say_what_to_do(batch):
    x, y = batch
    model = Sequential([Flatten(), Dense(10, "softmax")])
    with pytest.raises(ModelError, match="compile"):
        model.fit(x, y)
    with pytest.raises(ModelError, match="not built"):
        model.get_weights()
    model.compile()
    model.fit(x, y, verbose=0)  # builds from the data
    assert model.input_shape == (28, 28)


def test_softmax_output_with_from_logits_is_refused(batch):
    from nn import SparseCategoricalCrossentropy

    model = seed_model()
    model.compile(loss=SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(ModelError, match="from_logits"):
        model.fit(*batch, verbose=0)


def test_constructor_and_compile_arguments(rng):
    with pytest.raises(InputError, match="dtype"):
        Sequential([Dense(2)], dtype="float16")
    with pytest.raises(InputError, match="layers"):
        Sequential([])
    with pytest.raises(InputError, match="backend"):
        Sequential([Dense(2)], backend="cuda")
    with pytest.raises(InputError, match="optimizer"):
        seed_model().compile(optimizer="sgd")
    with pytest.raises(InputError, match="metrics"):
        seed_model().compile(metrics=["mse"])
    with pytest.raises(InputError, match="uint8"):
        scale_images(rng.random((2, 28, 28)))


def test_set_weights_checks_shapes():
    model = seed_model()
    weights = model.get_weights()
    with pytest.raises(InputError, match="weights has 5 arrays; this model has 6"):
        model.set_weights(weights[:5])
    with pytest.raises(InputError, match=r"dense.kernel must be a float array shaped \(784, 128\)"):
        model.set_weights([weights[0].T] + weights[1:])


@pytest.mark.parametrize("dtype", ["nonsense", "Float32", "float32 ", None, "int32"])
def test_unknown_dtypes_are_refused_not_read_as_float64(dtype):
    # np.dtype(None) is float64 and NumPy compares None == np.dtype("float64")
    # as True: a check written as `dt in (float32, float64)` let these through.
    with pytest.raises(InputError, match="dtype must be 'float32' or 'float64'"):
        Sequential([Dense(2)], dtype=dtype)


@pytest.mark.parametrize("kwargs, message", [
    ({"seed": -1}, "seed must be None or a non-negative integer"),
    ({"seed": 1.5}, "seed must be None or a non-negative integer"),
    ({"seed": "a"}, "seed must be None or a non-negative integer"),
    ({"input_shape": 4}, r"input_shape must be a tuple of positive integers"),
    ({"input_shape": (4.7,)}, r"input_shape must be a tuple of positive integers"),
    ({"input_shape": "28"}, r"input_shape must be a tuple of positive integers"),
    ({"input_shape": (None,)}, r"input_shape must be a tuple of positive integers"),
    ({"backend": ["numpy"]}, "backend must be one of"),
])
def test_constructor_refuses_what_it_would_otherwise_coerce(kwargs, message):
    with pytest.raises(InputError, match=message):
        Sequential([Dense(2)], **kwargs)


def test_layer_arguments_are_checked_where_given():
    with pytest.raises(InputError, match="input_shape must be a tuple"):
        Dense(3, input_shape=4)
    with pytest.raises(InputError, match="activation must be"):
        Dense(3, activation=["relu"])
    for layers in (Dense(3), None, "dense"):
        with pytest.raises(InputError, match="layers must be a non-empty list"):
            Sequential(layers)


def test_a_layer_belongs_to_one_model(batch):
    x, y = batch
    layers = [Flatten(), Dense(8, "relu"), Dense(10, "softmax")]
    first = Sequential(layers, input_shape=(28, 28), seed=0)
    first.compile()
    first.fit(x, y, verbose=0)
    trained = first.get_weights()
    with pytest.raises(ModelError, match="already belongs to model"):
        Sequential(layers, input_shape=(28, 28), seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(trained, first.get_weights()))
    dense = Dense(10, "softmax")
    with pytest.raises(ModelError, match="appears twice"):
        Sequential([Flatten(), dense, dense])
    spare = [Flatten(), Dense(10, "softmax")]  # a model that failed to build owns nothing
    with pytest.raises(InputError):
        Sequential(spare, dtype="float16")
    Sequential(spare, input_shape=(28, 28))


def test_building_again_never_replaces_trained_weights(model, batch):
    model.fit(*batch, verbose=0)
    trained = model.get_weights()
    model.build((28, 28))  # the same shape: nothing to do
    with pytest.raises(ModelError, match=r"already built for examples shaped \(28, 28\)"):
        model.build((64,))
    assert all(np.array_equal(a, b) for a, b in zip(trained, model.get_weights()))


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("entry", ["fit", "train_on_batch"])
def test_one_adam_cannot_train_two_models(backend, entry, batch):
    # Before: the numba path wrote past the moments of the smaller model
    # (NaN, then a segfault); numpy raised from deep inside a broadcast.
    from nn import Adam

    x, y = batch
    adam = Adam()
    small = Sequential([Flatten(), Dense(10, "softmax")], input_shape=(28, 28), backend=backend)
    small.compile(optimizer=adam)
    small.fit(x, y, verbose=0)
    for other in (Sequential([Flatten(), Dense(10, "softmax")], input_shape=(28, 28),
                             backend=backend, seed=1),  # same shapes: would inherit moments
                  seed_model(seed=1, backend=backend)):
        other.compile(optimizer=adam)
        weights = other.get_weights()
        with pytest.raises(ModelError, match="compile each model with its own Adam"):
            getattr(other, entry)(x, y, **({"verbose": 0} if entry == "fit" else {}))
        assert all(np.array_equal(a, b) for a, b in zip(weights, other.get_weights()))


def test_moments_that_do_not_fit_the_parameters_are_refused(model, batch):
    from nn.optimizers import AdamState

    model.fit(*batch, verbose=0)
    state = model.optimizer.state
    model.optimizer.state = AdamState(state.count, state.m[:-1], state.v[:-1])
    with pytest.raises(ModelError, match="moments do not match"):
        model.train_on_batch(*batch)


def test_adam_epsilon_must_be_positive():
    from nn import Adam

    # eps = 0 turns every weight whose gradient stays 0 into 0 / 0 = NaN
    for eps in (0.0, -1e-7, float("inf")):
        with pytest.raises(InputError, match="epsilon must be a positive number"):
            Adam(epsilon=eps)


@pytest.mark.parametrize("metrics", [[], None])
def test_fit_without_metrics_keeps_validation(metrics, batch):
    model = seed_model(seed=0)
    model.compile(metrics=metrics)
    history = model.fit(*batch, epochs=2, validation_split=0.25, verbose=0)
    assert sorted(history.history) == ["loss", "val_loss"]
    assert len(history.history["val_loss"]) == 2
    assert isinstance(model.evaluate(*batch), float)  # Keras gives the bare loss too


def test_compile_takes_one_metric_by_name():
    model = seed_model()
    model.compile(metrics="accuracy")
    assert model.metrics == ["accuracy"]


def test_labels_and_callbacks_must_be_given_properly(model, batch):
    from nn.callbacks import History

    x, y = batch
    with pytest.raises(InputError, match="y is required"):
        model.fit(x, None, verbose=0)
    with pytest.raises(InputError, match="callbacks must be a list"):
        model.fit(x, y, verbose=0, callbacks=History())
    assert model.optimizer.iterations == 0


@pytest.mark.parametrize("bad, message", [
    (np.nan, "contain NaN or infinite"),
    (np.inf, "contain NaN or infinite"),
    (1e300, r"contain NaN or infinite values \(after conversion to float32\)"),
])
def test_set_weights_refuses_non_finite_weights(bad, message):
    model = seed_model()
    before = model.get_weights()
    weights = [w.astype(np.float64) for w in before]
    weights[2][0, 0] = bad
    with pytest.raises(InputError, match=message):
        model.set_weights(weights)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_set_weights_refuses_what_is_not_a_list_of_arrays():
    model = seed_model()
    with pytest.raises(InputError, match="weights must be a list of arrays"):
        model.set_weights(None)
    weights = model.get_weights()
    with pytest.raises(InputError, match="dense.kernel"):
        model.set_weights([[[1.0, 2.0], [3.0]]] + weights[1:])


def test_uncompiled_train_on_batch_leaves_the_model_unbuilt(batch):
    model = Sequential([Flatten(), Dense(10, "softmax")])
    with pytest.raises(ModelError, match="compile"):
        model.train_on_batch(*batch)
    assert not model.built


def test_a_huge_batch_size_is_one_batch_on_every_backend(batch):
    # numba's fused trainer sized its scratch by batch_size: 10**12 raised MemoryError
    x, y = batch
    results = []
    for backend in ("numpy", "numba"):
        model = seed_model(seed=0, dtype="float64", backend=backend)
        results.append(model.fit(x, y, batch_size=10**12, verbose=0).history["loss"])
    # One batch of all 40 examples, its loss measured before the update: the
    # same float64 forward pass summed in two orders. Each logit ends a chain
    # of 947 terms, so the two differ by about 2 sqrt(947) u = 7e-15 relative;
    # 1e-12 leaves room and still fails on any other batching.
    np.testing.assert_allclose(results[0], results[1], rtol=1e-12)
