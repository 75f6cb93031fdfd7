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
    numba_sparse._rows_times(cols, vals, n, matrix, out)
    for j in range(0, matrix.shape[1], 7):  # output j alone takes the plain loop (O < BLOCK)
        alone = np.full(1, np.nan, dtype)
        numba_sparse._rows_times(cols, vals, n, np.ascontiguousarray(matrix[:, j:j + 1]), alone)
        assert out[j].tobytes() == alone[0].tobytes(), f"output {j}: {out[j]!r} vs {alone[0]!r}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_rows_times_is_the_product(dtype, rng):
    n, block = 23, numba_sparse.BLOCK
    cols, vals, matrix = terms(rng, dtype, n + 4, 11, block + 5)
    out = np.empty(matrix.shape[1], dtype)
    numba_sparse._rows_times(cols, vals, n, matrix, out)  # the 4 terms past n are ignored
    want = vals[:n].astype(np.float64) @ matrix[cols[:n]].astype(np.float64)
    # n terms summed in order: each rounding is at most u of the running sum,
    # so |out - want| <= n u sum|terms| (float64 reference, exact to ~1e-16).
    bound = n * np.finfo(dtype).eps / 2 * (np.abs(vals[:n, None]) * np.abs(matrix[cols[:n]])).sum(0)
    assert np.all(np.abs(out - want) <= bound)
