"""nn.diagnostics.Diagnostics: the recorded figures equal the same figures computed directly from the model."""

import numpy as np
import pytest

from nn import Callback, InputError
from nn.diagnostics import PREFIX, STEP_PREFIX, Diagnostics

from test_gradients import chain


def direct(model, x, y):
    """The figures, computed here from the weights, model.gradients and Adam's formula, in float64."""
    weights = model.get_weights()
    _, grads = model.gradients(x, y)
    opt, state = model.optimizer, model.optimizer.state
    alpha, c1, c2, eps = opt.coefficients(opt.iterations + 1, np.float64)
    out, h = {}, x.reshape(len(x), -1)
    names = [layer.name for layer in model.layers[1:]]
    for i, name in enumerate(names):
        kernel, bias = weights[2 * i], weights[2 * i + 1]
        z = h @ kernel + bias
        h = np.maximum(z, 0) if i < len(names) - 1 else np.exp(z) / np.exp(z).sum(1, keepdims=True)
        if i < len(names) - 1:
            out[f"{name}/dead_fraction"] = np.mean(np.all(h == 0, axis=0))
        out[f"{name}/activation_mean"], out[f"{name}/activation_std"] = h.mean(), h.std()
        for j, key in ((2 * i, "kernel"), (2 * i + 1, "bias")):
            g, w = grads[j], weights[j]
            m = state.m[j] if state else 0 * g
            v = state.v[j] if state else 0 * g
            dw = alpha * (m + (g - m) * c1) / (np.sqrt(v + (g * g - v) * c2) + eps)
            out[f"{name}.{key}/grad_norm"] = np.linalg.norm(g)
            out[f"{name}.{key}/weight_norm"] = np.linalg.norm(w)
            out[f"{name}.{key}/update_ratio"] = (np.linalg.norm(dw) / np.linalg.norm(w)
                                                 if np.linalg.norm(w) else None)
    return out


class Witness(Callback):
    """Computes `direct` at every epoch end, after Diagnostics has measured the same weights."""

    def __init__(self, x, y):
        self.x, self.y, self.seen = x, y, []

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append((self.model.optimizer.iterations, direct(self.model, self.x, self.y)))


@pytest.mark.parametrize("engine", ["layers", "fused"])
def test_recorded_figures_equal_direct_computation(engine, rng):
    model = chain()
    x, y = rng.standard_normal((200, 2, 3)), rng.integers(0, 3, 200)
    probe = (x[:40], y[:40])
    diag, witness = Diagnostics(*probe, every=7), Witness(*probe)
    history = model.fit(x, y, batch_size=8, epochs=3, verbose=0, engine=engine,
                        callbacks=[diag, witness])
    h = history.history
    assert h[PREFIX + "step"] == [25, 50, 75]
    for epoch, (step, figures) in enumerate(witness.seen):
        assert h[PREFIX + "step"][epoch] == step
        assert set(figures) | {"step"} == {k[len(PREFIX):] for k in h if k.startswith(PREFIX)}
        for key, want in figures.items():
            got = h[PREFIX + key][epoch]
            if want is None:
                assert got is None, key
            else:  # float64 sums of at most 40 x 5 terms, taken in another order: 1e-12 relative
                assert got == pytest.approx(want, rel=1e-12, abs=1e-15), key
    steps = h[STEP_PREFIX + "step"]
    if engine == "layers":  # measured after the first step 7 or more steps after the last measurement
        assert steps == [7, 14, 21, 32, 39, 46, 57, 64, 71]
    else:  # one chunk per epoch here (4096 // 8 > 25 steps): its end is the only point to measure at
        assert steps == [25, 50, 75]
    assert all(len(v) == len(steps) for k, v in h.items() if k.startswith(STEP_PREFIX))


def test_both_engines_record_the_same_figures(rng):
    x, y = rng.standard_normal((120, 2, 3)), rng.integers(0, 3, 120)
    runs = []
    for engine in ("layers", "fused"):
        model = chain()
        runs.append(model.fit(x, y, batch_size=8, epochs=2, verbose=0, engine=engine,
                              callbacks=[Diagnostics(x[:30], y[:30])]).history)
    for key, values in runs[0].items():
        if key.startswith(PREFIX):  # same weights to rounding (the engines agree as tested elsewhere)
            np.testing.assert_allclose(np.array(values, float), np.array(runs[1][key], float),
                                       rtol=1e-9, err_msg=key)


def test_bad_probe_or_every_is_refused_before_any_step(rng):
    model = chain()
    x, y = rng.standard_normal((40, 2, 3)), rng.integers(0, 3, 40)
    before = model.get_weights()
    with pytest.raises(InputError, match="every must be None or a positive integer"):
        Diagnostics(x, y, every=0)
    with pytest.raises(InputError, match=r"x must be shaped \(N, 2, 3\)"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[Diagnostics(x[:, :1], y)])
    with pytest.raises(InputError, match="y must hold class indices"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[Diagnostics(x, y + 5)])
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer.iterations == 0
