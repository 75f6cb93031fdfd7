"""The batched checks against the per-entry reference, and the complex step against model.gradients.

Tolerance of the fast-vs-reference comparison, derived: both compute the same
fourth-order stencil with the same step, so their truncation errors are the
same number; they differ only in rounding, each within NOISE * F of exact
arithmetic (nn.gradcheck.per_entry), so they agree to 2 * NOISE * F.
"""

import numpy as np
import pytest

from nn import ReLU, gradcheck
from nn.gradcheck import batched, per_entry
from tests.test_gradcheck import random_network


def pairs(model, x, y, seed):
    """(reference, fast fd) report pairs for every layer and the model."""
    ref = gradcheck.check_network(model, x, y, "entry", seed)
    fast = gradcheck.check_network(model, x, y, "fd", seed)
    assert [r.name for r in ref] == [r.name for r in fast]
    return zip(ref, fast)


def noise_of(report):
    """NOISE * F, F = max(|f|, 1) of the function checked, from the report's floor (NOISE / TOLERANCE * F)."""
    return report.floor * per_entry.TOLERANCE


def assert_agree(ref, fast):
    assert fast.kinks == ref.kinks, ref.name
    assert fast.checked == ref.checked and fast.passed == ref.passed, ref.name
    assert fast.floor == pytest.approx(ref.floor, rel=1e-12), ref.name  # f0 summed in another order
    np.testing.assert_array_equal(np.isnan(fast.numeric_values), np.isnan(ref.numeric_values))
    diff = np.nan_to_num(np.abs(fast.numeric_values - ref.numeric_values))
    assert diff.max(initial=0) <= 2 * noise_of(ref), ref.name


@pytest.mark.parametrize("seed", range(10), ids=lambda s: f"net{s}")
def test_batched_fd_equals_the_per_entry_reference_entry_for_entry(seed):
    model, x, y = random_network(seed, softmax_layer=seed % 2 == 1)
    for ref, fast in pairs(model, x, y, seed):
        assert_agree(ref, fast)


@pytest.mark.parametrize("seed", range(10), ids=lambda s: f"net{s}")
def test_complex_step_equals_model_gradients(seed):
    model, x, y = random_network(seed, softmax_layer=seed % 2 == 0)
    _, grads = model.gradients(x, y)
    reports = batched.check_model_fast(model, x, y, "complex")
    for report, g in zip(reports, grads):
        if report.checked == 0:  # an example with every unit dead puts the next ReLUs exactly at 0
            assert set(report.kinks) <= {tuple(i) for i in np.ndindex(g.shape)} and report.kinks
            continue
        assert report.passed, report.line()
        np.testing.assert_array_equal(report.analytic_values, g)
        loss = model.evaluate(x, y, verbose=0)[0]
        floor = batched.COMPLEX_FLOOR * max(np.abs(g).max(), abs(loss), 1.0)
        compared = ~np.isnan(report.numeric_values)  # NaN: at a kink
        big = (np.abs(g) >= floor) & compared
        small = ~big & compared
        rel = np.abs(report.numeric_values - g)[big] / np.abs(g)[big]
        assert rel.max(initial=0) <= 1e-13, report.name
        assert np.abs(report.numeric_values - g)[small].max(initial=0) <= 1e-13 * floor, report.name
        np.testing.assert_array_equal(report.numeric_values[(g == 0) & compared], 0)  # exact zeros stay exact


def test_a_blank_input_gives_exact_zeros_without_a_pass():
    # x[:, 0] is 0 in every example: W[0, :] cannot move f, so both sides are exactly 0.
    model, x, y = random_network(3, softmax_layer=False)
    x[:, 0] = 0
    for method in ("fd", "complex"):
        kernel = batched.check_model_fast(model, x, y, method)[0]
        np.testing.assert_array_equal(kernel.numeric_values[0], 0)
        np.testing.assert_array_equal(kernel.analytic_values[0], 0)


@pytest.mark.data
def test_seed_network_fast_and_reference_agree_on_the_last_layers(mnist):
    from nn.recipe import scale_images, seed_model

    (x_train, y_train), _ = mnist
    x, y = scale_images(x_train[:4], "float64"), y_train[:4]
    model = seed_model(seed=0, dtype="float64")
    fast = {r.name: r for r in batched.check_model_fast(model, x, y, "fd")}
    _, grads = model.gradients(x, y)
    layers = model._logit_layers()

    def evaluate():
        return float(model.loss.forward(model._logits(x, training=True), y))

    # The per-entry reference on the arrays it checks in well under a second.
    for (layer, key), g in list(zip(model.parameter_refs(), grads))[2:]:
        ref = per_entry.compare(f"model:{layer.name}.{key}", g, evaluate, layer.params[key], layers)
        assert_agree(ref, fast[ref.name])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_real_part_max_shift_leaves_float_results_bit_identical(dtype, rng):
    # The formulas as they were before the complex step needed .real: equal bit for bit.
    from nn.kernels import numpy_kernels as k

    z = (rng.standard_normal((64, 10)) * 5).astype(dtype)
    labels = rng.integers(0, 10, 64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    e /= e.sum(axis=1, keepdims=True)
    np.testing.assert_array_equal(k.softmax(z), e)
    shifted = z - z.max(axis=1, keepdims=True)
    sums = np.exp(shifted).sum(axis=1)
    per_example = np.log(sums) - shifted[np.arange(64), labels]
    loss, probs = k.softmax_xent_forward(z, labels)
    assert loss == per_example.sum() / z.dtype.type(64) and loss.dtype == z.dtype
    np.testing.assert_array_equal(probs, np.exp(shifted) / sums[:, None])


def test_complex_inputs_take_each_relu_branch_from_the_real_part():
    from nn.kernels import numpy_kernels as k

    z = np.array([[2.0 + 1e-30j, -2.0 + 1e-30j, -1e-300 + 1e-30j]])
    out = k.dense_forward(z, np.eye(3), np.zeros(3), relu=True)
    np.testing.assert_array_equal(out, [[2.0 + 1e-30j, 0, 0]])
    np.testing.assert_array_equal(ReLU().forward(z), out)
