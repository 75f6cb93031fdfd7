"""The compressed-row first layer's sums (nn.fast.numba_sparse): each output one fixed chain.

`_rows_times` sums BLOCK outputs at a time in registers and the rest in a
plain loop. Both must give each output the same rounding, one fused
multiply-add per term from +0 in the order the terms come, so that results
do not depend on the layer's width or on which path an output took.
"""

import numpy as np
import pytest

numba_sparse = pytest.importorskip("nn.fast.numba_sparse")


def terms(rng, dtype, n, rows, width):
    """n terms: row indices into a (rows, width) matrix, with repeats, and their factors."""
    cols = rng.integers(0, rows, n).astype(np.int32)
    vals = rng.standard_normal(n).astype(dtype)
    return cols, vals, rng.standard_normal((rows, width)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("n", [0, 1, 5, 37])
def test_block_and_tail_round_alike(dtype, n, rng):
    block = numba_sparse.BLOCK
    cols, vals, matrix = terms(rng, dtype, n, 9, 2 * block + 3)  # two whole blocks and a tail
    out = np.full(matrix.shape[1], np.nan, dtype)  # every output must be written
    numba_sparse._rows_times(cols, vals, n, matrix, out, False)
    for j in range(0, matrix.shape[1], 7):  # output j alone takes the plain loop (O < BLOCK)
        alone = np.full(1, np.nan, dtype)
        numba_sparse._rows_times(cols, vals, n, np.ascontiguousarray(matrix[:, j:j + 1]), alone, False)
        assert out[j].tobytes() == alone[0].tobytes(), f"output {j}: {out[j]!r} vs {alone[0]!r}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_rows_times_is_the_product(dtype, rng):
    n, block = 23, numba_sparse.BLOCK
    cols, vals, matrix = terms(rng, dtype, n + 4, 11, block + 5)
    out = np.empty(matrix.shape[1], dtype)
    numba_sparse._rows_times(cols, vals, n, matrix, out, False)  # the 4 terms past n are ignored
    want = vals[:n].astype(np.float64) @ matrix[cols[:n]].astype(np.float64)
    # n terms summed in order: each rounding is at most u of the running sum,
    # so |out - want| <= n u sum|terms| (float64 reference, exact to ~1e-16).
    bound = n * np.finfo(dtype).eps / 2 * (np.abs(vals[:n, None]) * np.abs(matrix[cols[:n]])).sum(0)
    assert np.all(np.abs(out - want) <= bound)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_serial_and_parallel_steps_give_the_same_bits(dtype, rng):
    """serial_steps and sparse_steps on 1, 2 and 3 tasks: the same weights, moments, gradient,
    losses and counts, bit for bit, with a first layer of a whole register block and a tail."""
    from nn.fast.numba_steps import scratch_for, sparse_steps
    from nn.fast.steps import AdamSteps, Batches, Chain, nonzero_rows
    from nn.optimizers import Adam

    widths, n, batch, steps = (40, numba_sparse.BLOCK + 2, 6, 3), 50, 4, 13  # the 13th batch is short
    x = rng.standard_normal((n, widths[0])).astype(dtype)
    x[rng.random(x.shape) < 0.8] = 0
    shapes = np.array(list(zip(widths[:-1], widths[1:])), np.int64)
    w0 = (0.1 * rng.standard_normal(sum(a * c + c for a, c in shapes.tolist()))).astype(dtype)
    batches = Batches(x, rng.integers(0, 3, n), rng.permutation(n).astype(np.int64), batch,
                      *nonzero_rows(x))
    adam = AdamSteps(Adam().alphas(1, steps, dtype), *Adam().coefficients(1, dtype)[1:])
    results = []
    for run, pieces in (("serial", 1), ("parallel", 1), ("parallel", 2), ("parallel", 3)):
        chain = Chain(shapes, np.array([True, True, False]), w0.copy(), np.zeros_like(w0),
                      np.zeros_like(w0), np.zeros_like(w0))
        losses, correct = np.empty(steps, dtype), np.empty(steps, np.int64)
        loop = numba_sparse.serial_steps if run == "serial" else sparse_steps
        loop(chain, batches, 0, adam, scratch_for(chain, batches, pieces), pieces, losses, correct)
        results.append((chain.w, chain.m, chain.v, chain.grads, losses, correct))
    for got in results[1:]:
        for a, b, name in zip(got, results[0], ("w", "m", "v", "grads", "losses", "correct")):
            assert a.tobytes() == b.tobytes(), name
