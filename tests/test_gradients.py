"""model.gradients and fit's engines: public gradients that change nothing, and the code that runs.

Finite-difference tolerance, derived: central differences (f(w+h) - f(w-h)) / 2h
in float64 have truncation error h^2 |f'''| / 6 ~ 2e-11 for h = 1e-5 and
third derivatives of order 1 on these small nets, and rounding error
~eps |f| / h = 2.2e-16 / 1e-5 ~ 2e-11; so 1e-8 absolute leaves a wide
margin while any real bug (a transpose, a missing 1/B) moves gradients by
more than 1e-3.
"""

import numpy as np
import pytest

from nn import Dense, Flatten, InputError, Layer, ModelError, ReLU, Sequential, Softmax
from nn.layers.dense import Dense as DenseClass


def chain(backend="numpy", dtype="float64", seed=3):
    model = Sequential([Flatten(input_shape=(2, 3)), Dense(5, "relu"), Dense(4, "relu"),
                        Dense(3, "softmax")], dtype=dtype, seed=seed, backend=backend)
    model.compile()
    return model


def layered(backend="numpy"):
    """Not a Dense chain: separate ReLU and Softmax layers (the fused engine cannot train it)."""
    model = Sequential([Flatten(input_shape=(2, 3)), Dense(5), ReLU(), Dense(3), Softmax()],
                       dtype="float64", seed=4, backend=backend)
    model.compile()
    return model


def data(rng, n=7):
    return rng.standard_normal((n, 2, 3)), rng.integers(0, 3, n)


def loss_at(model, x, y):
    return float(model.loss.forward(model._logits(x, training=False), y))


def snapshot(model):
    """Everything a call could change: weights, Adam's state, layer grads and caches."""
    state = model.optimizer.state
    layers = [{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in vars(lyr).items()
               if k != "grads"} for lyr in model.layers]
    grads = [{k: g.copy() for k, g in lyr.grads.items()} for lyr in model.layers]
    moments = None if state is None else (state.count, [a.copy() for a in state.m + state.v])
    return model.get_weights(), moments, layers, grads


def assert_same(a, b):
    if isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for p, q in zip(a, b):
            assert_same(p, q)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == b.dtype
    else:
        assert a is b or a == b


@pytest.mark.parametrize("build", [chain, layered], ids=["dense-chain", "relu-softmax-layers"])
def test_gradients_equal_central_differences(build, rng):
    model = build()
    x, y = data(rng)
    loss, grads = model.gradients(x, y)
    assert loss == pytest.approx(loss_at(model, x, y), rel=1e-15)
    h = 1e-5
    for (layer, key), g in zip(model.parameter_refs(), grads):
        w = layer.params[key]
        assert g.shape == w.shape and g.dtype == w.dtype
        numeric = np.empty_like(w)
        for i in np.ndindex(w.shape):
            orig = w[i]
            w[i] = orig + h
            up = loss_at(model, x, y)
            w[i] = orig - h
            down = loss_at(model, x, y)
            w[i] = orig
            numeric[i] = (up - down) / (2 * h)
        np.testing.assert_allclose(g, numeric, rtol=0, atol=1e-8, err_msg=f"{layer.name}.{key}")


def test_gradients_equal_driving_each_layers_backward_by_hand(rng):
    model = chain()
    x, y = data(rng)
    _, grads = model.gradients(x, y)
    # The same pass written out: forward through the layers, the loss from the
    # logits, then each backward in reverse (the last layer without its softmax).
    h = x
    *body, last = model.layers
    logits_layer = last.without_activation()
    for layer in body + [logits_layer]:
        h = layer.forward(h, training=True)
    model.loss.forward(h, y)
    g = model.loss.backward()
    for layer in reversed(body + [logits_layer]):
        g = layer.backward(g)
        if g is None:
            break
    by_hand = [layer.grads[key] for layer, key in model.parameter_refs()]
    assert_same(grads, by_hand)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_gradients_change_nothing(backend, rng):
    model = chain(backend)
    x, y = data(rng)
    model.train_on_batch(x, y)  # so there are Adam moments, layer grads and caches to keep
    before = snapshot(model)
    x2, y2 = data(rng, n=5)
    model.gradients(x2, y2)
    assert_same(snapshot(model), before)
    # and the next step is the one it would have been without the call
    twin = chain(backend)
    twin.train_on_batch(x, y)
    model.train_on_batch(x2, y2)
    twin.train_on_batch(x2, y2)
    assert_same(model.get_weights(), twin.get_weights())


def test_gradients_in_float32_are_float32(rng):
    model = chain(dtype="float32")
    x, y = data(rng)
    loss, grads = model.gradients(x, y)
    assert isinstance(loss, float)
    assert [g.dtype for g in grads] == [np.float32] * 6


def test_gradients_refuse_bad_input_and_change_nothing(rng):
    unbuilt = Sequential([Dense(3, "softmax")])
    unbuilt.compile()
    with pytest.raises(ModelError, match="not built"):
        unbuilt.gradients(np.ones((2, 4)), [0, 1])
    assert not unbuilt.built
    uncompiled = Sequential([Dense(3, "softmax")], input_shape=(4,))
    with pytest.raises(ModelError, match="not compiled"):
        uncompiled.gradients(np.ones((2, 4)), [0, 1])
    model = chain()
    x, y = data(rng)
    before = snapshot(model)
    with pytest.raises(InputError, match=r"class indices in \[0, 2\]"):
        model.gradients(x, np.full(len(x), 3))
    with pytest.raises(InputError, match=r"shaped \(N, 2, 3\)"):
        model.gradients(np.ones((4, 6)), y[:4])
    with pytest.raises(InputError, match="4 labels but x has 7"):
        model.gradients(x, y[:4])
    assert_same(snapshot(model), before)


class BackwardSpy:
    """Counts calls of Dense.backward, wherever they come from."""

    def __init__(self, monkeypatch):
        self.calls = 0
        original = DenseClass.backward

        def spy(layer, dout):
            self.calls += 1
            return original(layer, dout)

        monkeypatch.setattr(DenseClass, "backward", spy)


def test_fit_on_the_numpy_backend_runs_dense_backward(monkeypatch, rng):
    spy = BackwardSpy(monkeypatch)
    x, y = rng.standard_normal((20, 2, 3)), rng.integers(0, 3, 20)
    history = chain("numpy").fit(x, y, batch_size=4, epochs=2, verbose=0)
    assert history.params["engine"] == "layers" == history.engine
    assert spy.calls == 2 * 5 * 3  # epochs x steps x Dense layers


def test_the_fused_engine_is_an_explicit_choice_and_history_says_which_ran(monkeypatch, rng):
    spy = BackwardSpy(monkeypatch)
    x, y = rng.standard_normal((20, 2, 3)), rng.integers(0, 3, 20)
    assert chain("numpy").fit(x, y, epochs=1, verbose=0, engine="fused").engine == "fused"
    assert chain("numba").fit(x, y, epochs=1, verbose=0).engine == "fused"  # numba's default
    assert spy.calls == 0  # the fused engine never calls the layers
    assert chain("numba").fit(x, y, batch_size=4, epochs=1, verbose=0,
                              engine="layers").engine == "layers"
    assert spy.calls == 5 * 3
    assert layered("numba").fit(x, y, epochs=1, verbose=0).engine == "layers"  # not a chain


def test_bad_engines_are_refused_before_any_work(rng):
    x, y = rng.standard_normal((20, 2, 3)), rng.integers(0, 3, 20)
    with pytest.raises(ModelError, match="fused engine cannot train this model.*engine='layers'"):
        layered().fit(x, y, verbose=0, engine="fused")
    model = chain()
    before = model.get_weights()
    with pytest.raises(InputError, match="engine must be one of 'layers', 'fused'"):
        model.fit(x, y, verbose=0, engine="fast")
    assert_same(model.get_weights(), before)
    assert model.optimizer.iterations == 0


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_both_engines_leave_the_last_steps_gradients_in_the_layers(backend, rng):
    # On numpy the fused twin is the layer path as a loop, so everything is
    # bit-identical; the numba kernels sum in other orders (float64, a few
    # steps: within 1e-10, see tests/test_backends_agree.py).
    x, y = rng.standard_normal((30, 2, 3)), rng.integers(0, 3, 30)
    models = {}
    for engine in ("layers", "fused"):
        models[engine] = chain(backend)
        models[engine].fit(x, y, batch_size=8, epochs=2, verbose=0, engine=engine)
    for a, b in zip(models["layers"].layers, models["fused"].layers):
        for key in a.grads:
            if backend == "numpy":
                np.testing.assert_array_equal(a.grads[key], b.grads[key])
            else:
                np.testing.assert_allclose(a.grads[key], b.grads[key], rtol=0, atol=1e-10)


class InPlaceScale(Layer):
    """y = x * w elementwise, w (features,); writes its gradient into the same array each time."""

    def build(self, input_shape, rng, dtype):
        shape = super().build(input_shape, rng, dtype)
        self.params = {"w": rng.uniform(0.5, 1.5, input_shape).astype(dtype)}
        self.grads = {"w": np.zeros(input_shape, dtype)}
        return shape

    def forward(self, x, training=False):
        self._x = x
        return x * self.params["w"]

    def backward(self, dout):
        self.grads["w"][...] = (dout * self._x).sum(axis=0)
        return dout * self.params["w"]


def test_gradients_restore_a_layer_that_writes_its_grads_in_place(rng):
    model = Sequential([Flatten(input_shape=(2, 3)), InPlaceScale(), Dense(3, "softmax")],
                       dtype="float64", seed=2, backend="numpy")
    model.compile()
    x, y = data(rng)
    model.train_on_batch(x, y)
    before = snapshot(model)
    _, grads = model.gradients(*data(rng, n=4))
    assert_same(snapshot(model), before)
    assert not np.array_equal(grads[0], before[3][1]["w"])  # it did compute another gradient
