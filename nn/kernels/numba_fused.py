"""Training steps compiled whole: no Python between the steps of a chunk.

`train_steps` is the twin of `numpy_kernels.train_steps` (which is a plain
loop over the NumPy kernels); the row helpers below are shared with the
layer-by-layer kernels in `numba_kernels`, so both numba paths round alike.

Zero-skipping: with skip_zeros, the first layer's x @ W and x^T g visit only
the nonzero inputs (about 19% of MNIST's pixels). Each skipped term is an
exact zero, so the sums are the dense sums in the same order; only the time
changes. The benchmarks report the speed with and without it.
"""

import numpy as np
from numba import njit, prange

from nn.kernels.config import JIT, JIT_MATMUL


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
    out[:] = g[0]
    for i in range(1, rows):
        for j in range(g.shape[1]):
            out[j] += g[i, j]


@njit(**JIT)
def xent_rows(logits, labels, rows, probs):
    """Softmax into probs and (sum of per-row cross-entropies, rows argmax-correct)."""
    one = logits.dtype.type(1)
    loss_sum, correct = logits.dtype.type(0), 0
    for i in range(rows):
        z, p = logits[i], probs[i]
        top = z.max()
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


@njit(**JIT_MATMUL)
def sparse_forward(x, idx, kernel, out):
    """out[b] = x[idx[b]] @ kernel over the nonzero inputs only; out (B, O)."""
    for b in range(idx.shape[0]):
        row, o = x[idx[b]], out[b]
        o[:] = 0
        for k in range(row.shape[0]):
            a = row[k]
            if a != 0:
                for j in range(o.shape[0]):
                    o[j] += a * kernel[k, j]


@njit(**JIT_MATMUL)
def sparse_kernel_grad(x, idx, g, out):
    """out = x[idx].T @ g over the nonzero inputs only, batch rows in order; out (I, O)."""
    out[:] = 0
    for b in range(idx.shape[0]):
        row, gb = x[idx[b]], g[b]
        for k in range(row.shape[0]):
            a = row[k]
            if a != 0:
                for j in range(gb.shape[0]):
                    out[k, j] += a * gb[j]


@njit(parallel=True, **JIT)
def adam_parallel(w, g, m, v, alpha, one_minus_beta_1, one_minus_beta_2, epsilon, pieces):
    """adam_flat split into `pieces` fixed contiguous ranges, run on the threads."""
    n = w.shape[0]
    for c in prange(pieces):
        lo, hi = n * c // pieces, n * (c + 1) // pieces
        adam_flat(w[lo:hi], g[lo:hi], m[lo:hi], v[lo:hi], alpha, one_minus_beta_1,
                  one_minus_beta_2, epsilon)


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
def _forward(x, idx, shapes, relu, w, xb, acts, at, skip_zeros):
    """Every layer's output for the batch x[idx] into acts; returns the logits (B, C)."""
    kernel_at, bias_at, out_at = at
    rows, out = idx.shape[0], xb
    for layer in range(shapes.shape[0]):
        n_in, n_out = shapes[layer, 0], shapes[layer, 1]
        kernel = _block(w, kernel_at[layer], n_in, n_out)
        prev, out = out, _block(acts, rows * out_at[layer], rows, n_out)
        if layer == 0 and skip_zeros:
            sparse_forward(x, idx, kernel, out)
        else:
            np.dot(prev, kernel, out)
        bias_act(out, w[bias_at[layer]:bias_at[layer] + n_out], relu[layer])
    return out


@njit(**JIT)
def _backward(x, idx, shapes, relu, w, grads, xb, acts, deltas, at, skip_zeros):
    """Fill grads (flat, like w) from the logits' gradient already in deltas."""
    kernel_at, bias_at, out_at = at
    rows = idx.shape[0]
    for layer in range(shapes.shape[0] - 1, -1, -1):
        n_in, n_out = shapes[layer, 0], shapes[layer, 1]
        g = _block(deltas, rows * out_at[layer], rows, n_out)
        if relu[layer]:
            relu_mask(g, _block(acts, rows * out_at[layer], rows, n_out), rows)
        d_kernel = _block(grads, kernel_at[layer], n_in, n_out)
        if layer == 0:
            if skip_zeros:
                sparse_kernel_grad(x, idx, g, d_kernel)
            else:
                np.dot(xb.T, g, d_kernel)
        else:
            np.dot(_block(acts, rows * out_at[layer - 1], rows, n_in).T, g, d_kernel)
        bias_sum(g, rows, grads[bias_at[layer]:bias_at[layer] + n_out])
        if layer > 0:  # the first layer's input gradient is never needed
            np.dot(g, _block(w, kernel_at[layer], n_in, n_out).T,
                   _block(deltas, rows * out_at[layer - 1], rows, n_in))


@njit(**JIT)
def train_steps(x, y, order, first_step, batch_size, shapes, relu, w, m, v, alphas,
                one_minus_beta_1, one_minus_beta_2, epsilon, skip_zeros, threads, losses,
                correct):
    """len(alphas) Adam steps of a Dense chain from step `first_step` of an epoch; see the twin."""
    at = layout(shapes)
    width = at[2][-1]
    n_classes = shapes[-1, 1]
    grads = np.zeros_like(w)
    xb = np.empty(batch_size * x.shape[1], x.dtype)
    acts = np.empty(batch_size * width, x.dtype)
    deltas = np.empty(batch_size * width, x.dtype)
    labels = np.empty(batch_size, np.int64)
    for s in range(alphas.shape[0]):
        start = (first_step + s) * batch_size
        idx = order[start:min(start + batch_size, x.shape[0])]
        rows = idx.shape[0]
        batch = _block(xb, 0, rows, x.shape[1])
        for b in range(rows):
            labels[b] = y[idx[b]]
            if not skip_zeros:
                batch[b] = x[idx[b]]
        logits = _forward(x, idx, shapes, relu, w, batch, acts, at, skip_zeros)
        g = _block(deltas, rows * at[2][-2], rows, n_classes)
        loss_sum, correct[s] = xent_rows(logits, labels, rows, g)
        losses[s] = loss_sum / x.dtype.type(rows)
        scale = x.dtype.type(rows)
        for b in range(rows):  # (p - onehot) / B, as softmax_xent_backward
            g[b, labels[b]] -= 1
            for j in range(n_classes):
                g[b, j] /= scale
        _backward(x, idx, shapes, relu, w, grads, batch, acts, deltas, at, skip_zeros)
        if threads > 1:
            adam_parallel(w, grads, m, v, alphas[s], one_minus_beta_1, one_minus_beta_2,
                          epsilon, threads)
        else:
            adam_flat(w, grads, m, v, alphas[s], one_minus_beta_1, one_minus_beta_2, epsilon)
