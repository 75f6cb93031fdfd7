"""The compressed-row first layer's sums (nn.fast.numba_sparse): each output one fixed chain.

`_rows_times` sums BLOCK outputs at a time in registers and the rest in a
plain loop. Both must give each output the same rounding, one fused
multiply-add per term from +0 in the order the terms come, so that results
do not depend on the layer's width or on which path an output took; the
test against a float64 product pins that chain to x @ W. The first layer
itself works in tiles of batch rows grouped by input column; its forward
must give each batch row exactly `_rows_times` over that row's nonzero
inputs, and its gradient each row of W1's gradient exactly `_rows_times`
over that column's batch rows, whatever the tiles and tasks.
"""

import numpy as np
import pytest

numba_sparse = pytest.importorskip("nn.fast.numba_sparse")


def sparse_chain_problem(rng, dtype, n, batch, steps):
    """A four-layer chain on n sparse rows (a first layer of a register block and a tail):
    (shapes, initial flat weights, the epoch's Batches, AdamSteps for `steps` steps)."""
    from nn.fast.steps import AdamSteps, Batches, nonzero_rows
    from nn.optimizers import Adam

    widths = (40, numba_sparse.BLOCK + 2, 6, 3)
    x = rng.standard_normal((n, widths[0])).astype(dtype)
    x[rng.random(x.shape) < 0.8] = 0
    shapes = np.array(list(zip(widths[:-1], widths[1:])), np.int64)
    w0 = (0.1 * rng.standard_normal(sum(a * c + c for a, c in shapes.tolist()))).astype(dtype)
    batches = Batches(x, rng.integers(0, 3, n), rng.permutation(n).astype(np.int64), batch,
                      *nonzero_rows(x))
    adam = AdamSteps(Adam().alphas(1, steps, dtype), *Adam().coefficients(1, dtype)[1:])
    return shapes, w0, batches, adam


def fresh_chain(shapes, w0):
    """The problem's chain at its start: weights w0, zero moments and gradient."""
    from nn.fast.steps import Chain

    return Chain(shapes, np.array([True, True, False]), w0.copy(), np.zeros_like(w0), np.zeros_like(w0),
                 np.zeros_like(w0))


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
def test_a_chain_goes_on_from_a_stored_partial_sum(dtype, rng):
    """onto=True: two calls, the second going on from what the first stored, give one call's bits."""
    cols, vals, matrix = terms(rng, dtype, 30, 9, numba_sparse.BLOCK + 3)
    whole, parts = np.empty(matrix.shape[1], dtype), np.full(matrix.shape[1], np.nan, dtype)
    numba_sparse._rows_times(cols, vals, 30, matrix, whole, False)
    numba_sparse._rows_times(cols, vals, 11, matrix, parts, False)
    numba_sparse._rows_times(cols[11:], vals[11:], 19, matrix, parts, True)
    assert parts.tobytes() == whole.tobytes()


def sparse_batch(rng, dtype, n, n_in):
    """x (n, n_in) with about 80% exact zeros (and one empty row), as Batches with its compressed rows."""
    from nn.fast.steps import Batches, nonzero_rows

    x = rng.standard_normal((n, n_in)).astype(dtype)
    x[rng.random(x.shape) < 0.8] = 0
    x[3] = 0
    return Batches(x, np.zeros(n, np.int64), rng.permutation(n).astype(np.int64), n, *nonzero_rows(x))


def chain_for(dtype, n_in, n_out):
    from nn.fast.steps import Chain

    params = np.zeros(n_in * n_out + n_out, dtype)
    return Chain(np.array([[n_in, n_out]], np.int64), np.array([True]), params, params.copy(),
                 params.copy(), params.copy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
# One tile a task; several, uneven; the larger tiles of a large batch.
@pytest.mark.parametrize("rows", [5, 2 * numba_sparse.SMALL_TILE + 7, numba_sparse.LARGE_BATCH + 75])
@pytest.mark.parametrize("pieces", [1, 2, 3])
def test_tiled_forward_gives_each_row_its_own_chain(dtype, rows, pieces, rng):
    from nn.fast.numba_steps import scratch_for

    n_in, n_out = 40, numba_sparse.BLOCK + 5  # a register block and a tail
    batches = sparse_batch(rng, dtype, rows, n_in)
    kernel, bias = rng.standard_normal((n_in, n_out)).astype(dtype), rng.standard_normal(n_out).astype(dtype)
    scratch = scratch_for(chain_for(dtype, n_in, n_out), batches, pieces)
    out = np.full((rows, n_out), np.nan, dtype)
    numba_sparse.first_layer_rows(batches, batches.order, kernel, bias, True, out, scratch, pieces)
    x, want = batches.x[batches.order], np.empty(n_out, dtype)
    for b in range(rows):
        cols = np.flatnonzero(x[b]).astype(np.int32)
        numba_sparse._rows_times(cols, x[b, cols], len(cols), kernel, want, False)
        want = np.maximum(want + bias, 0)  # as bias_act: one rounded add, then ReLU
        assert out[b].tobytes() == want.tobytes(), f"batch row {b}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("rows", [5, 2 * numba_sparse.SMALL_TILE + 7, numba_sparse.LARGE_BATCH + 75])
@pytest.mark.parametrize("pieces", [1, 2, 3])
def test_tiled_gradient_sums_each_column_over_the_batch_in_row_order(dtype, rows, pieces, rng):
    from nn.fast.numba_steps import scratch_for

    n_in, n_out = 40, numba_sparse.BLOCK + 5
    batches = sparse_batch(rng, dtype, rows, n_in)
    kernel, g = np.zeros((n_in, n_out), dtype), rng.standard_normal((rows, n_out)).astype(dtype)
    scratch = scratch_for(chain_for(dtype, n_in, n_out), batches, pieces)
    numba_sparse.first_layer_rows(batches, batches.order, kernel, kernel[0], True,
                                  np.empty((rows, n_out), dtype), scratch, pieces)  # groups the tiles
    tiles = numba_sparse.tile_count(rows, pieces)
    got = np.full((n_in, n_out), np.nan, dtype)  # every row must be written, zero for an empty column
    for p in range(pieces):  # the tasks' input rows
        numba_sparse._gradient_rows(scratch, g, got, n_in * p // pieces, n_in * (p + 1) // pieces, tiles)
    x, want = batches.x[batches.order], np.empty(n_out, dtype)
    for k in range(n_in):
        rows_k = np.flatnonzero(x[:, k]).astype(np.uint32)
        numba_sparse._rows_times(rows_k, x[rows_k, k], len(rows_k), g, want, False)
        assert got[k].tobytes() == want.tobytes(), f"input {k}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("batch, n", [(4, 50), (numba_sparse.SMALL_TILE + 9, 100),
                                      (numba_sparse.LARGE_BATCH + 20, 1000)], ids=["small", "tiles", "large"])
def test_serial_and_parallel_steps_give_the_same_bits(dtype, batch, n, rng):
    """serial_steps and sparse_steps on 1, 2 and 3 tasks: the same weights, moments, gradient,
    losses and counts, bit for bit, with a first layer of a whole register block and a tail,
    on batches of one tile a task and of several (the last batch is short: in "large", 460
    rows in smaller tiles, more of them than the whole batches')."""
    from nn.fast.numba_steps import scratch_for, sparse_steps

    steps = -(-n // batch)
    shapes, w0, batches, adam = sparse_chain_problem(rng, dtype, n, batch, steps)
    results = []
    for run, pieces in (("serial", 1), ("parallel", 1), ("parallel", 2), ("parallel", 3)):
        chain = fresh_chain(shapes, w0)
        losses, correct = np.empty(steps, dtype), np.empty(steps, np.int64)
        loop = numba_sparse.serial_steps if run == "serial" else sparse_steps
        loop(chain, batches, 0, adam, scratch_for(chain, batches, pieces), pieces, losses, correct)
        results.append((chain.w, chain.m, chain.v, chain.grads, losses, correct))
    for got in results[1:]:
        for a, b, name in zip(got, results[0], ("w", "m", "v", "grads", "losses", "correct")):
            assert a.tobytes() == b.tobytes(), name
