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
    "length-mismatch": (lambda x, y: (x, y[:39]), {}, "y has 39 labels but x has 40 examples"),
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
