"""Every numba kernel against its NumPy twin, on random shapes, layouts and dtypes.

Tolerances, derived: a kernel and its twin may add the same terms in another
order (BLAS blocks, numpy's pairwise sums) and fuse a*b + c into one rounding.
Either way each of the K terms of a sum picks up at most ~K roundings of
relative size u (u = 2**-53 for float64, 2**-24 for float32), so
|fast - twin| <= 2 K u * sum(|terms|). We allow 4 K u * sum(|terms|): about
1e-14 relative to the terms in float64 and 2.4e-7 * K in float32.
Elementwise kernels (ReLU backward, Adam) do the twin's operations in its
order with no fastmath, so they must agree bit for bit. exp and log may come
from different libraries (NumPy's SIMD vs libm), each within 4 ulp, so the
softmax family gets 16 u relative per value on top of the sums' bound.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nn.kernels import numpy_kernels as twin

numba_kernels = pytest.importorskip("nn.fast.numba_kernels")

DTYPES = [np.float32, np.float64]
LAYOUTS = ["c", "f", "strided"]


def unit(dtype):
    return np.finfo(dtype).eps / 2


def arrange(a, layout):
    """The same values as a, stored C-ordered, Fortran-ordered or with a stride of 2."""
    if layout == "f":
        return np.asfortranarray(a)
    if layout == "strided":
        wide = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        wide[..., ::2] = a
        return wide[..., ::2]
    return np.ascontiguousarray(a)


def sum_bound(dtype, terms, scale):
    """Allowed |fast - twin| for sums of `terms` products whose |.| add up to `scale`."""
    return 4 * terms * unit(dtype) * scale + np.finfo(dtype).tiny


shapes = st.tuples(st.integers(1, 9), st.integers(1, 37), st.integers(1, 17))  # (B, I, O)
common = given(shape=shapes, dtype=st.sampled_from(DTYPES), layout=st.sampled_from(LAYOUTS),
               seed=st.integers(0, 2**32 - 1))


def draw(seed, dtype, *shape):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@common
@settings(max_examples=60, deadline=None)
def test_dense_forward(shape, dtype, layout, seed):
    b, i, o = shape
    x, w, bias = draw(seed, dtype, b, i), draw(seed + 1, dtype, i, o), draw(seed + 2, dtype, o)
    for relu in (False, True):
        fast = numba_kernels.dense_forward(arrange(x, layout), arrange(w, layout), bias, relu)
        spec = twin.dense_forward(x, w, bias, relu)
        assert fast.dtype == dtype and fast.shape == (b, o)
        scale = np.abs(x) @ np.abs(w) + np.abs(bias)
        assert np.all(np.abs(fast - spec) <= sum_bound(dtype, i + 1, scale))


@common
@settings(max_examples=60, deadline=None)
def test_gradient_matmuls(shape, dtype, layout, seed):
    b, i, o = shape
    x, g, w = draw(seed, dtype, b, i), draw(seed + 1, dtype, b, o), draw(seed + 2, dtype, i, o)
    fast = numba_kernels.matmul_tn(arrange(x, layout), arrange(g, layout))
    assert fast.dtype == dtype and fast.shape == (i, o)
    assert np.all(np.abs(fast - twin.matmul_tn(x, g)) <= sum_bound(dtype, b, np.abs(x).T @ np.abs(g)))
    fast = numba_kernels.matmul_nt(arrange(g, layout), arrange(w, layout))
    assert fast.dtype == dtype and fast.shape == (b, i)
    assert np.all(np.abs(fast - twin.matmul_nt(g, w)) <= sum_bound(dtype, o, np.abs(g) @ np.abs(w).T))
    fast = numba_kernels.bias_grad(arrange(g, layout))
    assert np.all(np.abs(fast - twin.bias_grad(g)) <= sum_bound(dtype, b, np.abs(g).sum(axis=0)))


@common
@settings(max_examples=40, deadline=None)
def test_relu_backward_is_bit_identical(shape, dtype, layout, seed):
    b, _, o = shape
    dout, y = draw(seed, dtype, b, o), np.maximum(draw(seed + 1, dtype, b, o), 0)
    y[0, 0] = 0  # the kink itself: derivative 0, as TensorFlow's ReluGrad
    fast = numba_kernels.relu_backward(arrange(dout, layout), arrange(y, layout))
    np.testing.assert_array_equal(fast, twin.relu_backward(dout, y))


@common
@settings(max_examples=60, deadline=None)
def test_softmax_family(shape, dtype, layout, seed):
    b, _, c = shape
    z, dout = 4 * draw(seed, dtype, b, c), draw(seed + 1, dtype, b, c)
    labels = np.random.default_rng(seed).integers(0, c, b)
    tol = (16 + 4 * c) * unit(dtype)  # exp within 4 ulp, plus a c-term sum
    p = numba_kernels.softmax(arrange(z, layout))
    np.testing.assert_allclose(p, twin.softmax(z), rtol=tol, atol=np.finfo(dtype).tiny)
    loss, probs = numba_kernels.softmax_xent_forward(arrange(z, layout), labels)
    spec_loss, spec_probs = twin.softmax_xent_forward(z, labels)
    assert type(loss) is type(spec_loss) and probs.dtype == dtype
    np.testing.assert_allclose(probs, spec_probs, rtol=tol, atol=np.finfo(dtype).tiny)
    # loss: a b-term sum of per-row values that each carry a c-term sum and a log
    per_row = np.abs(np.log(np.exp(z - z.max(axis=1, keepdims=True)).sum(axis=1))) + 2 * np.abs(z).max()
    assert abs(loss - spec_loss) <= (16 + 4 * (b + c)) * unit(dtype) * per_row.sum() / b
    grad = numba_kernels.softmax_xent_backward(arrange(spec_probs, layout), labels)
    np.testing.assert_array_equal(grad, twin.softmax_xent_backward(spec_probs, labels))
    vjp = numba_kernels.softmax_backward(arrange(dout, layout), arrange(spec_probs, layout))
    scale = spec_probs * (np.abs(dout) + (np.abs(dout) * spec_probs).sum(axis=1, keepdims=True))
    assert np.all(np.abs(vjp - twin.softmax_backward(dout, spec_probs)) <= sum_bound(dtype, c + 2, scale))


@given(rows=st.integers(1, 7), cols=st.integers(1, 40), dtype=st.sampled_from(DTYPES),
       layout=st.sampled_from(LAYOUTS), seed=st.integers(0, 2**32 - 1), t=st.integers(1, 5000))
@settings(max_examples=60, deadline=None)
def test_adam_update_is_bit_identical(rows, cols, dtype, layout, seed, t):
    from nn.optimizers import Adam

    coeffs = Adam().coefficients(t, dtype)
    w, g, m = (draw(seed + k, dtype, rows, cols) for k in range(3))
    v = np.abs(draw(seed + 3, dtype, rows, cols))
    spec = [a.copy() for a in (w, g, m, v)]
    fast = [arrange(a, layout) for a in (w, g, m, v)]
    twin.adam_update(*spec, *coeffs)
    numba_kernels.adam_update(*fast, *coeffs)
    for got, want in zip(fast, spec):
        np.testing.assert_array_equal(got, want)
    bias_spec, bias_fast = [a[0].copy() for a in (w, g, m, v)], [a[0].copy() for a in (w, g, m, v)]
    twin.adam_update(*bias_spec, *coeffs)  # 1-D arrays, as a bias, and Python-float scalars
    numba_kernels.adam_update(*bias_fast, *(float(c) for c in coeffs))
    for got, want in zip(bias_fast, bias_spec):
        np.testing.assert_array_equal(got, want)
