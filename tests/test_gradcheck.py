"""nn.gradcheck: it passes on correct gradients, fails on wrong ones, and reports kinks."""

import json

import numpy as np
import pytest

from nn import Dense, Flatten, ReLU, Sequential, Softmax, gradcheck
from nn.cli import main


def random_network(seed, softmax_layer):
    """A small random architecture: 1-3 hidden layers of width 2-9, mixing both ReLU styles."""
    rng = np.random.default_rng(seed)
    n_in, n_classes = int(rng.integers(2, 7)), int(rng.integers(2, 6))
    layers = [Flatten(input_shape=(n_in,))]
    for _ in range(rng.integers(1, 4)):
        width = int(rng.integers(2, 10))
        layers += [Dense(width, activation="relu")] if rng.random() < 0.5 else [Dense(width), ReLU()]
    layers += [Dense(n_classes), Softmax()] if softmax_layer else [Dense(n_classes, "softmax")]
    model = Sequential(layers, dtype="float64", seed=seed)
    model.compile()
    batch = int(rng.integers(1, 6))
    return model, rng.standard_normal((batch, n_in)), rng.integers(0, n_classes, batch)


@pytest.mark.parametrize("seed", range(8), ids=lambda s: f"net{s}")
def test_random_networks_pass(seed):
    model, x, y = random_network(seed, softmax_layer=seed % 2 == 1)
    reports = gradcheck.check_model(model, x, y)
    rng = np.random.default_rng(seed)
    h = x
    for layer in model.layers:
        reports += gradcheck.check_layer(layer, h, rng)
        h = layer.forward(h)
    for report in reports:
        assert report.passed, report.line()
    assert gradcheck.worst(reports).worst_error <= 1e-7


class OffByOnePercent(Dense):
    """A Dense whose kernel gradient is 1% too large: the kind of bug gradcheck must catch."""

    def backward(self, dout):
        dx = super().backward(dout)
        self.grads["kernel"] = self.grads["kernel"] * 1.01
        return dx


class ForgetsReLUMask(Dense):
    """A Dense(relu) whose backward ignores the ReLU mask."""

    def backward(self, dout):
        self.activation = None
        try:
            return super().backward(dout)
        finally:
            self.activation = "relu"


@pytest.mark.parametrize("broken", [OffByOnePercent(4, "relu", name="dense"), ForgetsReLUMask(4, "relu", name="dense")],
                         ids=["scaled-gradient", "missing-relu-mask"])
def test_wrong_gradients_are_caught(broken, rng):
    model = Sequential([broken, Dense(3, "softmax")], input_shape=(5,), dtype="float64", seed=1)
    model.compile()
    x, y = rng.standard_normal((6, 5)), rng.integers(0, 3, 6)
    reports = gradcheck.check_model(model, x, y)
    failed = [r.name for r in reports if not r.passed]
    assert "model:dense.kernel" in failed
    assert gradcheck.worst(reports).worst_error > 1e-3


def test_points_at_a_relu_kink_are_reported_and_excluded():
    # The unit's pre-activation is exactly 0 for the only example: any step in its
    # weights or bias crosses the kink, so those entries must be listed, not compared.
    layer = Dense(1, activation="relu")
    layer.build((2,), np.random.default_rng(0), "float64")
    layer.params["kernel"][...] = [[1.0], [-1.0]]
    x = np.array([[0.5, 0.5]])
    reports = {r.name: r for r in gradcheck.check_layer(layer, x, np.random.default_rng(0))}
    assert reports["dense.bias"].kinks == [(0,)]
    assert reports["dense.kernel"].kinks == [(0, 0), (1, 0)]
    assert reports["dense.input"].kinks == [(0, 0), (0, 1)]
    assert "kinks excluded" in reports["dense.bias"].line()
    # Nothing was left to compare, which must not count as a pass.
    assert not reports["dense.bias"].passed


@pytest.mark.slow
@pytest.mark.data
def test_seed_architecture_passes_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "gradcheck.json"
    assert main(["gradcheck", "--examples", "4", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["passed"]
    names = {a["name"] for a in report["arrays"]}
    assert {"dense.input", "dense.kernel", "model:dense.kernel", "model:dense_2.bias"} <= names
    assert max(a["worst_error"] for a in report["arrays"]) <= 1e-7
    assert "PASSED" in capsys.readouterr().out


@pytest.mark.parametrize("seed", range(3), ids=lambda s: f"net{s}")
def test_float32_gradients_pass_the_float32_bound(seed):
    model64, x, y = random_network(seed, softmax_layer=False)
    model32 = Sequential([type(lyr)(**lyr.get_config()) for lyr in model64.layers], input_shape=model64.input_shape,
                         dtype="float32", seed=seed)
    model32.compile()
    model64.set_weights([w.astype(np.float32).astype(np.float64) for w in model64.get_weights()])
    model32.set_weights(model64.get_weights())
    x = x.astype(np.float32).astype(np.float64)  # both models see exactly the same function
    reports = gradcheck.check_model(model64, x, y, analytic_model=model32)
    assert all(r.tolerance == gradcheck.FLOAT32[1] for r in reports)
    for report in reports:
        assert report.passed, report.line()


def test_reports_serialise_to_json():
    model, x, y = random_network(0, softmax_layer=False)
    reports = gradcheck.check_model(model, x, y)
    restored = json.loads(json.dumps([r.as_dict() for r in reports]))
    assert [r["name"] for r in restored] == [r.name for r in reports]
    assert all(r["passed"] is True and isinstance(r["checked"], int) for r in restored)
