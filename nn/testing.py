"""Teaching path: gradient assertions for pytest, for nn's layers and your own.

    from nn.testing import assert_layer_gradients, assert_model_gradients

    def test_my_layer():
        layer = MyLayer()
        layer.build((3,), np.random.default_rng(0), "float64")
        assert_layer_gradients(layer, np.random.default_rng(1).standard_normal((4, 3)))

A layer follows the Layer interface (nn.layers.base.Layer): `build(input_shape,
rng, dtype)` creates `params` (name -> array) and returns the output shape;
`forward(x, training=False)` returns the output and caches what backward
needs; `backward(dout)` returns the gradient w.r.t. that forward's input and
fills `grads` with arrays under the same keys and shapes as `params`.

Both assertions run in float64 (finite differences in float32 would drown the
errors they look for in rounding; see nn.gradcheck.per_entry.WHY_FLOAT64),
and raise AssertionError with a table of the worst entries (array, index,
analytic, numeric, absolute and relative error), the step, the tolerances
and the entries excluded at ReLU kinks. Bad input (a float32 layer, an
unbuilt layer, a layer without params/grads) raises nn's InputError or
ModelError instead: that is a mistake in the test, not a wrong gradient.
"""

import numpy as np

from nn import gradcheck
from nn.errors import InputError
from nn.gradcheck import _method, batched, per_entry

METHODS = gradcheck.METHODS  # "fd", "complex", "directional", "entry"
WORST = 10  # rows of the failure table


def assert_layer_gradients(layer, x, *, method="fd", seed=0):
    """Assert that a built float64 layer's backward matches its forward at input x.

    Checks the input gradient and every parameter's gradient of the fake loss
    f = sum(forward(x) * dout) for a random dout (drawn from `seed`). x: (N,
    *input_shape) numbers. method: "fd" (fourth-order central differences,
    batched; the default), "complex" (the complex step: exact, but the
    layer's forward must accept complex arrays), "directional" (random
    directions) or "entry" (the per-entry reference). Returns the reports.
    """
    reports = gradcheck.check_layer_by(_method(method), layer, x, np.random.default_rng(_seed(seed)))
    _assert(reports, method, f"layer {layer.name}")
    return reports


def assert_model_gradients(model, x, y, *, method="fd", seed=0):
    """Assert that a compiled float64 model's `gradients(x, y)` match its loss, every parameter.

    x: (N, *input_shape) numbers, y: (N,) int labels; method as in
    assert_layer_gradients (seed draws the directions of "directional").
    Returns the reports.
    """
    reports = gradcheck.check_model_by(_method(method), model, x, y, rng=np.random.default_rng(_seed(seed)))
    _assert(reports, method, f"model {model.name}")
    return reports


def _seed(seed):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative integer; got {seed!r}")
    return int(seed)


def _assert(reports, method, what):
    if reports and all(r.passed for r in reports):
        return
    raise AssertionError(failure_message(reports, method, what))


def describe_bounds(method):
    """One sentence: the step and the tolerances of `method`."""
    if method == "complex":
        return (f"complex step h = {batched.COMPLEX_STEP:.0e}; entries held to {batched.COMPLEX_TOLERANCE:.0e} "
                f"relative, those below {batched.COMPLEX_FLOOR:.0e} * max(largest |gradient| of the array, |f|, 1) "
                f"to {batched.COMPLEX_TOLERANCE:.0e} of that floor absolute")
    how = "along random unit directions" if method == "directional" else "per entry"
    return (f"fourth-order central differences {how}, step h = {per_entry.STEP:.0e}; held to "
            f"{per_entry.TOLERANCE:.0e} relative, or {per_entry.NOISE:.0e} * max(|f|, 1) absolute below "
            f"{per_entry.NOISE / per_entry.TOLERANCE:.0e} * max(|f|, 1)")


def failure_message(reports, method, what):
    """The AssertionError text: which arrays failed, the worst entries, bounds and kinks."""
    failed = [r for r in reports if not r.passed]
    lines = [f"gradient check of {what} failed: {len(failed)} of {len(reports)} arrays "
             f"({describe_bounds(method)})"]
    lines += ["  " + r.line() for r in failed]
    rows = sorted(((r.name,) + row for r in failed for row in r.worst_entries(WORST)),
                  key=lambda row: -row[5])[:WORST]
    if rows:
        width = max(len(row[0]) for row in rows) + 2
        lines.append(f"  worst entries:\n  {'array':<{width}}{'index':<14}{'analytic':>15}{'numeric':>15}"
                     f"{'abs error':>11}{'rel error':>11}")
        for name, index, a, n, abs_err, rel_err in rows:
            lines.append(f"  {name:<{width}}{str(index):<14}{a:>+15.6e}{n:>+15.6e}{abs_err:>11.2e}{rel_err:>11.2e}")
    for r in failed:
        if r.checked == 0 and r.shape and np.prod(r.shape):
            lines.append(f"  {r.name}: every entry was at a ReLU kink; nothing could be compared")
    kinks = [(r.name, r.kinks) for r in reports if r.kinks]
    lines.append("  ReLU kinks excluded: " + ("; ".join(f"{name} {len(k)} {k[:5]}" for name, k in kinks)
                                               if kinks else "none"))
    return "\n".join(lines)
