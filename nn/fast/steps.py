"""Fast engine: the NumPy twin of the fused steps, the specification of nn.fast.numba_steps.

`train_steps` runs a chunk of Adam steps of a chain of Dense layers in one
call, exactly as the teaching path (Dense.forward/backward, the loss,
Adam.apply) takes them, written as one loop over the same NumPy kernels. It
is what `fit(engine="fused")` runs on the numpy backend, and the
specification the compiled version in `numba_steps` is tested against.
"""

from typing import NamedTuple

import numpy as np

from nn.kernels.numpy_kernels import (adam_update, bias_grad, dense_forward, matmul_nt, matmul_tn,
                                      relu_backward, softmax_xent_backward, softmax_xent_forward)
from nn.scaled import ScaledImages, divide, row_blocks

NAME = "numpy"


class Chain(NamedTuple):
    """The Dense chain being trained; its arrays are updated in place.

    shapes (L, 2) int64: (inputs, units) per Dense layer; relu (L,) bool: ReLU
    after it (the last layer gives logits). w, m, v (P,): parameters and
    Adam's moments, flat in Keras's order (see param_views); grads (P,): the
    last step's gradient, laid out like w.
    """

    shapes: np.ndarray
    relu: np.ndarray
    w: np.ndarray
    m: np.ndarray
    v: np.ndarray
    grads: np.ndarray


class Batches(NamedTuple):
    """The epoch's batches: step s trains on x[order[s*batch_size:(s+1)*batch_size]].

    x (N, I) float and y (N,) int64: the training set (x may be an
    nn.ScaledImages here; the compiled steps on the compressed-row path read
    only x's row count, and nn.fast.trainer then passes an (N, 0) stand-in); order (N,) int64: the
    epoch's permutation; the last batch may be short. indptr, indices, values:
    x's nonzero_rows, or empty arrays for none, a speed hint (the compiled
    steps then skip zero inputs) that never changes a result.
    """

    x: np.ndarray
    y: np.ndarray
    order: np.ndarray
    batch_size: int
    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray


class AdamSteps(NamedTuple):
    """Adam's scalars for a chunk of S steps: alphas (S,), one per step, and the rest as in adam_update."""

    alphas: np.ndarray
    one_minus_beta_1: float
    one_minus_beta_2: float
    epsilon: float


def param_views(flat, shapes):
    """[(kernel (I, O), bias (O,)), ...]: views into a flat vector laid out in Keras's order."""
    views, offset = [], 0
    for n_in, n_out in np.asarray(shapes).tolist():
        kernel = flat[offset:offset + n_in * n_out].reshape(n_in, n_out)
        offset += n_in * n_out
        views.append((kernel, flat[offset:offset + n_out]))
        offset += n_out
    return views


#: Bytes of a cache line (and of an AVX-512 register).
LINE = 64


def line_aligned(shape, dtype):
    """An uninitialized array whose first item starts a cache line (speed only).

    NumPy aligns to 16 bytes; with the flat weights 16 bytes off a line,
    every 64-byte load of a W1 row straddles two lines, and the compiled
    steps took 1.11x as long (paired epochs). Rows of 128 float32 then all
    start lines, as do their gradients, moments and the activations.
    """
    dtype = np.dtype(dtype)
    count = int(np.prod(shape))
    raw = np.empty(count * dtype.itemsize + LINE, np.uint8)
    start = -raw.ctypes.data % LINE
    return raw[start:start + count * dtype.itemsize].view(dtype).reshape(shape)


def nonzero_rows(x):
    """x (N, I), an array or an nn.ScaledImages, as compressed rows -> (indptr (N+1,) int64, indices, values).

    Row r's nonzero inputs sit at columns indices[indptr[r]:indptr[r+1]],
    ascending, with values values[indptr[r]:indptr[r+1]] (x's dtype). Column
    numbers are uint16 when I <= 65536 (MNIST's 784), int32 otherwise: each
    step reads a new batch's rows from memory, a quarter fewer bytes of them
    (and 14 MB less for MNIST). Made in two passes over blocks of rows
    (count, then fill), so that beside the result only one block's
    temporaries exist: never a mask or a float copy of all of x. A
    ScaledImages is read as its uint8 images, whose zeros are its floats'
    (a pixel of 1 or more over a finite scale is above 0), and only the
    nonzero pixels are divided: the same quotients, a fifth of the divisions.
    """
    scaled = isinstance(x, ScaledImages)
    raw = x.images.reshape(len(x), -1) if scaled else x
    counts = np.empty(len(x), np.int64)
    at = 0
    for block in row_blocks(raw):
        counts[at:at + len(block)] = np.count_nonzero(block, axis=1)
        at += len(block)
    indptr = np.zeros(len(x) + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    index = np.uint16 if x.shape[1] <= 1 << 16 else np.int32
    indices, values = np.empty(indptr[-1], index), np.empty(indptr[-1], x.dtype)
    columns, at = np.arange(x.shape[1], dtype=index), 0
    for block in row_blocks(raw):
        nonzero = block != 0  # boolean indexing is row-major: rows, then columns, ascending
        lo, hi = indptr[at], indptr[at + len(block)]
        indices[lo:hi] = np.broadcast_to(columns, block.shape)[nonzero]
        values[lo:hi] = divide(block[nonzero], x.scale, x.dtype) if scaled else block[nonzero]
        at += len(block)
    return indptr, indices, values


def train_steps(chain, batches, first_step, adam, threads, losses, correct, scratch=None):
    """len(adam.alphas) Adam steps of a chain of Dense layers, as the layer-by-layer path takes them.

    Steps first_step, first_step + 1, ... of the epoch (see Batches), on the
    Chain, whose arrays are updated in place; adam: AdamSteps. threads and
    scratch (the compiled twin's work arrays) are speed hints that never
    change a result; here they are unused. Writes each step's mean loss into
    losses (S,) and its number of correct argmax predictions into correct (S,),
    both measured before the step's update, and the last step's gradient into
    chain.grads.
    """
    x, y, order, batch_size = batches.x, batches.y, batches.order, batches.batch_size
    params, relu, grads = param_views(chain.w, chain.shapes), chain.relu, chain.grads
    for s in range(len(adam.alphas)):
        start = (first_step + s) * batch_size
        idx = order[start:start + batch_size]
        outputs, labels = [x[idx]], y[idx]
        for (kernel, bias), act in zip(params, relu):
            outputs.append(dense_forward(outputs[-1], kernel, bias, bool(act)))
        losses[s], probs = softmax_xent_forward(outputs[-1], labels)
        correct[s] = np.count_nonzero(probs.argmax(axis=1) == labels)
        g, layer_grads = softmax_xent_backward(probs, labels), []
        for layer in range(len(params) - 1, -1, -1):  # as each Dense.backward
            if relu[layer]:
                g = relu_backward(g, outputs[layer + 1])
            layer_grads[:0] = [matmul_tn(outputs[layer], g), bias_grad(g)]
            if layer > 0:
                g = matmul_nt(g, params[layer][0])
        grads[:] = np.concatenate([a.ravel() for a in layer_grads])
        adam_update(chain.w, grads, chain.m, chain.v, adam.alphas[s], adam.one_minus_beta_1,
                    adam.one_minus_beta_2, adam.epsilon)
