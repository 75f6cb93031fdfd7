"""Property tests (hypothesis) of softmax, the loss, gradients and batching."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from nn import Dense, Flatten, ReLU, Sequential, Softmax
from nn.kernels import numpy_kernels as k
from nn.losses import SparseCategoricalCrossentropy

EPS = {np.float32: np.finfo(np.float32).eps, np.float64: np.finfo(np.float64).eps}
dtypes = st.sampled_from([np.float32, np.float64])


def logits_of(dtype, bound, max_batch=16, max_classes=12):
    shapes = st.tuples(st.integers(1, max_batch), st.integers(2, max_classes))
    return shapes.flatmap(lambda s: hnp.arrays(
        dtype, s, elements=st.floats(-bound, bound, width=np.dtype(dtype).itemsize * 8)))


@settings(deadline=None, max_examples=60)
@given(data=st.data(), dtype=dtypes)
def test_softmax_rows_sum_to_one_and_ignore_a_constant_shift(data, dtype):
    z = data.draw(logits_of(dtype, bound=20.0))
    width = np.dtype(dtype).itemsize * 8
    shift = data.draw(hnp.arrays(dtype, (z.shape[0], 1), elements=st.floats(-100, 100, width=width)))
    p = k.softmax(z)
    # C probabilities, each within a few eps relative of exact: the sum is 1 within C * 4 eps.
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=0, atol=z.shape[1] * 4 * EPS[dtype])
    # z + c rounds each logit by at most half an ulp of |z + c| <= 120, i.e. 60 eps, and
    # so does subtracting the row max: each shifted logit moves by <= 120 eps absolute and
    # p_i = e^s_i / sum_j e^s_j by <= 2 * 120 eps relative, plus a few eps of rounding of
    # its own on either side: 256 eps.
    np.testing.assert_allclose(k.softmax(z + shift), p, rtol=256 * EPS[dtype], atol=1e-30)


@settings(deadline=None, max_examples=60)
@given(data=st.data())
def test_loss_and_gradient_stay_finite_for_float32_logits_up_to_1e4(data):
    z = data.draw(logits_of(np.float32, bound=1e4))
    y = data.draw(hnp.arrays(np.int64, z.shape[0], elements=st.integers(0, z.shape[1] - 1)))
    loss = SparseCategoricalCrossentropy()
    value = loss.forward(z, y)
    grad = loss.backward()
    assert np.isfinite(value) and value >= 0 and value.dtype == np.float32
    assert np.isfinite(grad).all() and grad.dtype == np.float32
    # The gradient's rows sum to 0 (sum p = 1, minus one hot), up to C * 4 eps / B.
    np.testing.assert_allclose(grad.sum(axis=1), 0, atol=z.shape[1] * 4 * EPS[np.float32])


@settings(deadline=None, max_examples=60)
@given(data=st.data(), dtype=dtypes)
def test_loss_does_not_change_when_the_batch_is_permuted(data, dtype):
    z = data.draw(logits_of(dtype, bound=30.0, max_batch=64))
    y = data.draw(hnp.arrays(np.int64, z.shape[0], elements=st.integers(0, z.shape[1] - 1)))
    perm = data.draw(st.permutations(range(z.shape[0])))
    loss = SparseCategoricalCrossentropy()
    base, g = loss.forward(z, y), loss.backward()
    permuted, gp = loss.forward(z[perm], y[perm]), loss.backward()
    # Per-example losses are identical; only the order of the B-term sum of
    # non-negative numbers changes, which moves it by at most B * eps relative.
    assert abs(permuted - base) <= z.shape[0] * EPS[dtype] * base + 1e-30
    np.testing.assert_allclose(gp, g[perm], rtol=4 * EPS[dtype], atol=1e-30)  # row-wise ops only


architectures = st.lists(st.tuples(st.integers(1, 9), st.sampled_from(["dense-relu", "dense+relu", "dense"])),
                         min_size=0, max_size=3)


@settings(deadline=None, max_examples=40)
@given(hidden=architectures, n_in=st.integers(1, 6), n_classes=st.integers(2, 6),
       batch=st.integers(1, 9), split_softmax=st.booleans(), dtype=dtypes, seed=st.integers(0, 2**31))
def test_every_gradient_has_its_parameters_shape_and_dtype(hidden, n_in, n_classes, batch,
                                                           split_softmax, dtype, seed):
    layers = [Flatten(input_shape=(n_in,))]
    for width, kind in hidden:
        layers += {"dense-relu": [Dense(width, "relu")], "dense+relu": [Dense(width), ReLU()],
                   "dense": [Dense(width)]}[kind]
    layers += [Dense(n_classes), Softmax()] if split_softmax else [Dense(n_classes, "softmax")]
    model = Sequential(layers, dtype=dtype, seed=seed)
    model.compile()
    rng = np.random.default_rng(seed)
    loss, _ = model.train_on_batch(rng.standard_normal((batch, n_in)), rng.integers(0, n_classes, batch))
    assert np.isfinite(loss)
    for layer in model.layers:
        assert {k: (v.shape, v.dtype) for k, v in layer.grads.items()} == \
               {k: (v.shape, v.dtype) for k, v in layer.params.items()}


@settings(deadline=None, max_examples=25)
@given(n=st.integers(1, 41), batch_size=st.sampled_from([1, 2, 3, 5, 7, 32, 64]), seed=st.integers(0, 99))
def test_any_batch_size_trains_with_the_right_number_of_steps(n, batch_size, seed):
    rng = np.random.default_rng(seed)
    model = Sequential([Dense(4, "relu", input_shape=(3,)), Dense(3, "softmax")], seed=seed)
    model.compile()
    history = model.fit(rng.standard_normal((n, 3)), rng.integers(0, 3, n), batch_size=batch_size,
                        epochs=2, verbose=0)
    assert model.optimizer.iterations == 2 * -(-n // batch_size)  # ceil(n / batch) per epoch
    assert all(np.isfinite(v) for v in history.history["loss"])


@pytest.mark.parametrize("dtype", [np.float64], ids=["f64"])
def test_model_loss_ignores_the_order_of_the_batch(dtype, rng):
    model = Sequential([Flatten(input_shape=(6,)), Dense(8, "relu"), Dense(5, "softmax")], dtype=dtype, seed=4)
    model.compile()
    x, y = rng.standard_normal((33, 6)), rng.integers(0, 5, 33)
    perm = rng.permutation(33)
    base = model.evaluate(x, y, batch_size=33)[0]
    # Rows are independent in every layer; only the 33-term mean changes order (33 eps relative).
    assert model.evaluate(x[perm], y[perm], batch_size=33)[0] == pytest.approx(base, rel=33 * EPS[dtype])
