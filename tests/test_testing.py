"""nn.testing: the README's custom layer passes; broken layers fail naming the array and index."""

import pathlib
import re

import numpy as np
import pytest

from nn import Dense, InputError, Layer, ModelError, ReLU, Sequential
from nn.testing import assert_layer_gradients, assert_model_gradients

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def readme_example():
    text = README.read_text()
    match = re.search(r"<!-- README example: custom layer.*?-->\n```python\n(.*?)```", text, re.S)
    assert match, "the README's custom-layer example is missing"
    return match.group(1)


def test_the_readme_example_runs_and_passes():
    code = readme_example()
    assert len(code.splitlines()) <= 20  # the class itself is about ten lines
    namespace = {}
    exec(compile(code, str(README), "exec"), namespace)  # raises if the check fails
    # and the same layer, broken, fails: the example's check is not vacuous
    scale = namespace["Scale"]

    class Broken(scale):
        def backward(self, dout):
            dx = super().backward(dout)
            self.grads["w"] = self.grads["w"] * np.array([1.0, 1.0, 1.001])
            return dx

    layer = Broken()
    layer.build((3,), np.random.default_rng(0), "float64")
    with pytest.raises(AssertionError, match=r"broken\.w"):
        assert_layer_gradients(layer, np.random.default_rng(1).standard_normal((4, 3)))


class Square(Layer):
    """y = x * x * w: nonlinear in x, so a wrong input gradient shows."""

    def build(self, input_shape, rng, dtype):
        self.params = {"w": rng.uniform(0.5, 1.5, input_shape).astype(dtype)}
        return super().build(input_shape, rng, dtype)

    def forward(self, x, training=False):
        self._x = x
        return x * x * self.params["w"]

    def backward(self, dout):
        self.grads = {"w": (dout * self._x * self._x).sum(axis=0)}
        return 2 * dout * self._x * self.params["w"]


class WrongEntry(Square):
    """One weight's gradient doubled: the failure must point at w[2]."""

    def backward(self, dout):
        dx = super().backward(dout)
        self.grads["w"][2] *= 2
        return dx


class ForgetsTwo(Square):
    """The input gradient without the factor 2 of d(x^2)/dx."""

    def backward(self, dout):
        return super().backward(dout) / 2


def built(layer, shape=(4,), dtype="float64"):
    layer.build(shape, np.random.default_rng(0), dtype)
    return layer


@pytest.mark.parametrize("method", ["fd", "complex", "directional", "entry"])
def test_a_correct_custom_layer_passes_every_method(method, rng):
    reports = assert_layer_gradients(built(Square()), rng.standard_normal((3, 4)), method=method)
    assert [r.name.split(" ")[0] for r in reports] == ["square.input", "square.w"]


def test_a_wrong_parameter_entry_is_named_with_its_index(rng):
    with pytest.raises(AssertionError) as failure:
        assert_layer_gradients(built(WrongEntry(name="sq")), rng.standard_normal((3, 4)))
    text = str(failure.value)
    assert "1 of 2 arrays" in text and "sq.w" in text and "sq.input" not in text.split("worst entries")[1]
    first_row = text.split("rel error\n")[1].splitlines()[0].split()
    assert first_row[:2] == ["sq.w", "(2,)"]
    analytic, numeric = float(first_row[2]), float(first_row[3])
    assert analytic == pytest.approx(2 * numeric, rel=1e-6)
    assert "step h = 1e-03" in text and "1e-07 relative" in text and "ReLU kinks excluded: none" in text


def test_a_wrong_input_gradient_is_named(rng):
    with pytest.raises(AssertionError, match=r"forgetstwo\.input") as failure:
        assert_layer_gradients(built(ForgetsTwo()), rng.standard_normal((3, 4)), method="complex")
    assert "complex step h = 1e-30" in str(failure.value)


def test_relu_kinks_are_listed_in_the_message():
    # Input exactly at 0 for one entry: the ReLU's kink, excluded and listed.
    x = np.array([[0.0, 1.0, -1.0]])

    class BadReLU(ReLU):
        def backward(self, dout):
            return dout  # ignores the mask: wrong for the negative input

    with pytest.raises(AssertionError) as failure:
        assert_layer_gradients(built(BadReLU(), (3,)), x)
    text = str(failure.value)
    assert "ReLU kinks excluded: badrelu.input 1 [(0, 0)]" in text
    assert re.search(r"badrelu\.input\s+\(0, 2\)", text)


def test_model_gradients_pass_and_a_scaled_kernel_gradient_fails(rng):
    model = Sequential([Dense(5, "relu"), Dense(3, "softmax")], input_shape=(4,), dtype="float64", seed=1)
    model.compile()
    x, y = rng.standard_normal((6, 4)), rng.integers(0, 3, 6)
    for method in ("fd", "complex", "directional"):
        assert_model_gradients(model, x, y, method=method)

    class Scaled(Dense):
        def backward(self, dout):
            dx = super().backward(dout)
            self.grads["kernel"] = self.grads["kernel"] * 1.01
            return dx

    broken = Sequential([Scaled(5, "relu"), Dense(3, "softmax")], input_shape=(4,), dtype="float64", seed=1)
    broken.compile()
    with pytest.raises(AssertionError, match=r"model:scaled\.kernel"):
        assert_model_gradients(broken, x, y)


class NoGrads(Layer):
    """Forgets to keep grads under the params' keys."""

    def build(self, input_shape, rng, dtype):
        self.params = {"w": np.ones(input_shape, dtype)}
        return super().build(input_shape, rng, dtype)

    def forward(self, x, training=False):
        return x * self.params["w"]

    def backward(self, dout):
        return dout * self.params["w"]


def test_bad_input_gets_one_clear_error_not_an_assertion(rng):
    x = rng.standard_normal((2, 4))
    with pytest.raises(InputError, match="finite differences need float64: float32 rounds"):
        assert_layer_gradients(built(Square(), dtype="float32"), x)
    with pytest.raises(InputError, match="finite differences need float64"):
        assert_layer_gradients(built(ReLU(), dtype="float32"), x)
    with pytest.raises(ModelError, match="not built"):
        assert_layer_gradients(Square(), x)
    with pytest.raises(InputError, match="backward must fill grads with the keys and shapes of params"):
        assert_layer_gradients(built(NoGrads()), x)
    no_dicts = built(Square())
    del no_dicts.grads
    with pytest.raises(InputError, match="no params/grads dicts"):
        assert_layer_gradients(no_dicts, x)
    model32 = Sequential([Dense(3, "softmax")], input_shape=(4,), dtype="float32")
    model32.compile()
    with pytest.raises(InputError, match="finite differences need float64"):
        assert_model_gradients(model32, x, [0, 1])
    with pytest.raises(InputError, match="method must be one of"):
        assert_layer_gradients(built(Square()), x, method="exact")


@pytest.mark.parametrize("make", [Square, lambda: Dense(3, "relu")], ids=["new-grads-dict", "dense-in-place"])
def test_the_layer_is_left_as_it_was(make, rng):
    layer = built(make())
    x = rng.standard_normal((3, 4))
    layer.backward(np.ones_like(layer.forward(x, training=True)))
    before = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in vars(layer).items() if k != "grads"}
    grads = {k: v.copy() for k, v in layer.grads.items()}
    for method in ("fd", "complex", "directional"):
        assert_layer_gradients(layer, rng.standard_normal((2, 4)), method=method)
    assert set(vars(layer)) == set(before) | {"grads"}
    for key, value in before.items():
        np.testing.assert_array_equal(vars(layer)[key], value) if isinstance(value, np.ndarray) else None
    for key, g in grads.items():
        np.testing.assert_array_equal(layer.grads[key], g)
