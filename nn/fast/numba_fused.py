"""Fast engine: building blocks of the compiled training steps, and their BLAS path.

The row helpers here are shared by the layer-by-layer kernels in
`numba_kernels`, by the compressed-row path in `numba_sparse` and by the
BLAS path below (dense_step), so every numba path rounds alike.
"""

from typing import NamedTuple

import numpy as np
from numba import njit

from nn.fast.config import JIT


class Scratch(NamedTuple):
    """Work arrays of the compiled steps, allocated once per chunk (train_steps does).

    acts, deltas (B * sum of units,): each layer's outputs and gradients, layer
    after layer; labels (B,) int64; xb (B * I,): the gathered batch on the BLAS
    path (empty on the compressed-row path). Compressed-row path only, for
    the T tiles of batch rows the first layer cuts a batch into
    (numba_sparse.tile_count): starts (T, I + 1), cols, vals (T, most rows
    of a tile * most nonzeros of a row): each tile's nonzero inputs grouped
    by input column (cols: their rows in the tile; empty (0, ...) off that path).
    """

    acts: np.ndarray
    deltas: np.ndarray
    labels: np.ndarray
    xb: np.ndarray
    starts: np.ndarray
    cols: np.ndarray
    vals: np.ndarray


@njit(**JIT)
def bias_act(out, bias, relu):
    """out[i] = act(out[i] + bias) in place, out (B, O); act is ReLU or the identity."""
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            z = out[i, j] + bias[j]
            out[i, j] = 0 if relu and z < 0 else z  # -0.0 and NaN pass, as np.maximum
    return out


@njit(**JIT)
def relu_mask(g, y, rows):
    """g[i, j] = 0 where y[i, j] <= 0, for the first `rows` rows, in place."""
    for i in range(rows):
        for j in range(g.shape[1]):
            if not y[i, j] > 0:
                g[i, j] = 0


@njit(**JIT)
def bias_sum(g, rows, out):
    """out = sum of g's first `rows` rows, added in row order, out (O,)."""
    # Loops, not slice assignment: numba's shape check for `out[:] = g[0]`
    # compiles an error-message formatter, over a second of a cold start.
    for j in range(g.shape[1]):
        out[j] = g[0, j]
    for i in range(1, rows):
        for j in range(g.shape[1]):
            out[j] += g[i, j]


@njit(**JIT)
def xent_rows(logits, labels, rows, probs):
    """Softmax into probs and (sum of per-row cross-entropies, rows argmax-correct)."""
    loss_sum, correct = logits.dtype.type(0), 0
    for i in range(rows):
        z, p = logits[i], probs[i]
        top = z[0]
        for j in range(1, z.shape[0]):  # z.max() as a loop: compiling np.max costs ~1 s
            if top == top and not z[j] <= top:  # a NaN anywhere wins, as in np.max
                top = z[j]
        total = logits.dtype.type(0)
        for j in range(z.shape[0]):
            p[j] = np.exp(z[j] - top)
            total += p[j]
        loss_sum += np.log(total) - (z[labels[i]] - top)
        best = 0
        for j in range(z.shape[0]):
            p[j] /= total
            if p[j] > p[best]:
                best = j  # the first maximum, as np.argmax picks
        correct += best == labels[i]
    return loss_sum, correct


@njit(**JIT)
def adam_flat(w, g, m, v, alpha, one_minus_beta_1, one_minus_beta_2, epsilon):
    """Adam on 1-D arrays in place; the twin's order of operations, IEEE-exact."""
    for i in range(w.shape[0]):
        mi = m[i] + (g[i] - m[i]) * one_minus_beta_1
        vi = v[i] + (g[i] * g[i] - v[i]) * one_minus_beta_2
        m[i] = mi
        v[i] = vi
        w[i] -= (mi * alpha) / (np.sqrt(vi) + epsilon)


@njit(**JIT)
def layout(shapes):
    """Offsets of each layer's kernel and bias in the flat parameters, and of its outputs.

    shapes (L, 2) int: (inputs, units) per layer. Parameters are laid out in
    Keras's order, kernel then bias, layer after layer; outputs per example.
    """
    n = shapes.shape[0]
    kernel_at, bias_at, out_at = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n + 1, np.int64)
    offset, out_at[0] = 0, 0
    for layer in range(n):
        kernel_at[layer] = offset
        bias_at[layer] = offset + shapes[layer, 0] * shapes[layer, 1]
        offset = bias_at[layer] + shapes[layer, 1]
        out_at[layer + 1] = out_at[layer] + shapes[layer, 1]
    return kernel_at, bias_at, out_at


@njit(**JIT)
def _block(buf, start, rows, cols):
    """The C-contiguous (rows, cols) matrix stored flat in buf from `start`."""
    return buf[start:start + rows * cols].reshape(rows, cols)


@njit(**JIT)
def _forward(shapes, relu, w, acts, at, rows, x, first):
    """Layers first.. of the chain on x, their input (rows, I), into acts; returns the logits."""
    kernel_at, bias_at, out_at = at
    out = x
    for layer in range(first, shapes.shape[0]):
        n_in, n_out = shapes[layer, 0], shapes[layer, 1]
        kernel = _block(w, kernel_at[layer], n_in, n_out)
        prev, out = out, _block(acts, rows * out_at[layer], rows, n_out)
        np.dot(prev, kernel, out)
        bias_act(out, w[bias_at[layer]:bias_at[layer] + n_out], relu[layer])
    return out


@njit(**JIT)
def _backward_from(shapes, relu, w, grads, x, acts, deltas, at, rows, first_kernel):
    """Fill grads (flat, like w) from the logits' gradient already in deltas.

    Kernel gradients are computed for layers first_kernel.. only (the
    compressed-row path computes the first one itself); every bias gradient
    and every layer's masked pre-activation gradient (in deltas) is filled.
    """
    kernel_at, bias_at, out_at = at
    for layer in range(shapes.shape[0] - 1, -1, -1):
        n_in, n_out = shapes[layer, 0], shapes[layer, 1]
        g = _block(deltas, rows * out_at[layer], rows, n_out)
        if relu[layer]:
            relu_mask(g, _block(acts, rows * out_at[layer], rows, n_out), rows)
        below = x if layer == 0 else _block(acts, rows * out_at[layer - 1], rows, n_in)
        if layer >= first_kernel:
            np.dot(below.T, g, _block(grads, kernel_at[layer], n_in, n_out))
        bias_sum(g, rows, grads[bias_at[layer]:bias_at[layer] + n_out])
        if layer > 0:  # the first layer's input gradient is never needed
            np.dot(g, _block(w, kernel_at[layer], n_in, n_out).T,
                   _block(deltas, rows * out_at[layer - 1], rows, n_in))


@njit(**JIT)
def _loss_gradient(logits, labels, rows, g):
    """Softmax + cross-entropy of the logits into g as (p - onehot) / B; (loss, correct)."""
    loss_sum, correct = xent_rows(logits, labels, rows, g)
    scale = logits.dtype.type(rows)
    for b in range(rows):  # (p - onehot) / B, as softmax_xent_backward
        g[b, labels[b]] -= 1
        for j in range(g.shape[1]):
            g[b, j] /= scale
    return loss_sum / scale, correct


@njit(**JIT)
def dense_step(chain, batches, idx, adam, scratch, at):
    """One Adam step of the chain on the batch x[idx], every product in BLAS: (loss, correct).

    adam = (alpha, 1 - b1, 1 - b2, eps) of this step; at = layout(chain.shapes).
    """
    x, shapes, relu, w, grads = batches.x, chain.shapes, chain.relu, chain.w, chain.grads
    acts, deltas, labels = scratch.acts, scratch.deltas, scratch.labels
    rows = idx.shape[0]
    batch = _block(scratch.xb, 0, rows, x.shape[1])
    for b in range(rows):
        labels[b] = batches.y[idx[b]]
        for k in range(x.shape[1]):
            batch[b, k] = x[idx[b], k]
    logits = _forward(shapes, relu, w, acts, at, rows, batch, 0)
    g = _block(deltas, rows * at[2][-2], rows, shapes[-1, 1])
    loss, correct = _loss_gradient(logits, labels, rows, g)
    _backward_from(shapes, relu, w, grads, batch, acts, deltas, at, rows, 0)
    adam_flat(w, grads, chain.m, chain.v, adam[0], adam[1], adam[2], adam[3])
    return loss, correct
