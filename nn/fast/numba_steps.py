"""Fast engine: the fused steps compiled with numba, the twin of nn.fast.steps.

`train_steps` takes a whole chunk of Adam steps of a Dense chain in one
call: on the compressed-row path (numba_sparse) the first layer visits only
nonzero inputs on every core; otherwise every product goes to BLAS
(numba_fused.dense_step). `threads` sets numba's and BLAS's thread counts
around a chunk (nn.fast.trainer does).
"""

import numpy as np
from numba import njit

from nn.fast.config import JIT
from nn.fast.numba_fused import dense_step, layout
from nn.fast.numba_kernels import MAX_THREADS
from nn.fast.numba_kernels import threads as thread_counts  # noqa: F401  (the trainer's knob)
from nn.fast.numba_sparse import nonzero_rows, sparse_step  # noqa: F401  (a step kernel)

NAME = "numba"


@njit(**JIT)
def train_steps(x, y, order, first_step, batch_size, shapes, relu, w, m, v, alphas,
                one_minus_beta_1, one_minus_beta_2, epsilon, indptr, indices, values, threads,
                losses, correct, grads):
    """len(alphas) Adam steps of a Dense chain from step `first_step` of an epoch; see the twin.

    With x's compressed rows (nonzero_rows; empty arrays for none) the first
    layer visits only nonzero inputs, in `threads` tasks (numba_sparse); run
    it inside `threads(...)` so that numba has that many. Without them, every
    product goes to BLAS.
    """
    at = layout(shapes)
    width, n_in = at[2][-1], shapes[:, 0].max()
    acts, deltas = np.empty(batch_size * width, x.dtype), np.empty(batch_size * width, x.dtype)
    labels = np.empty(batch_size, np.int64)
    pieces = max(1, min(threads, MAX_THREADS))
    sparse = indptr.shape[0] > 0
    counts = np.empty(batch_size, np.int64)
    longest = 0  # the most nonzero inputs of any row: sizes the scratch (MNIST: ~300 of 784)
    for r in range(indptr.shape[0] - 1):
        longest = max(longest, indptr[r + 1] - indptr[r])
    batch_cols = np.empty((batch_size if sparse else 0, longest), np.int64)
    batch_vals = np.empty((batch_size if sparse else 0, longest), x.dtype)
    starts = np.empty((pieces, n_in + 1), np.int64)
    scratch = batch_size * longest
    cols, vals = np.empty((pieces, scratch), np.int64), np.empty((pieces, scratch), x.dtype)
    xb = np.empty(0 if sparse else batch_size * x.shape[1], x.dtype)
    for s in range(alphas.shape[0]):
        start = (first_step + s) * batch_size
        idx = order[start:min(start + batch_size, x.shape[0])]
        adam = (alphas[s], one_minus_beta_1, one_minus_beta_2, epsilon)
        if sparse:
            losses[s], correct[s] = sparse_step(indptr, indices, values, y, idx, shapes, relu, w,
                                                m, v, grads, acts, deltas, labels, at, adam,
                                                batch_cols, batch_vals, counts, starts, cols,
                                                vals, pieces)
        else:
            losses[s], correct[s] = dense_step(x, y, idx, shapes, relu, w, m, v, grads, xb, acts,
                                               deltas, labels, at, adam)
