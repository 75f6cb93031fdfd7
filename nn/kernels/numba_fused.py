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


@njit(**JIT)
def nonzeros(x, idx, cols, vals, counts):
    """Row x[idx[b]]'s nonzero inputs: columns cols[b, :counts[b]], values vals[b, :counts[b]]."""
    for b in range(idx.shape[0]):
        row, n = x[idx[b]], 0
        for k in range(row.shape[0]):  # branch-free: write every entry, advance on nonzeros
            cols[b, n] = k
            vals[b, n] = row[k]
            n += row[k] != 0
        counts[b] = n


@njit(**JIT_MATMUL)
def sparse_forward(cols, vals, counts, kernel, out):
    """out[b] = sum over row b's nonzeros (k, a) of a * kernel[k], k ascending; out (B, O).

    Four terms per pass over out[b], added left to right: the same roundings
    as one term per pass, with a quarter of the loads and stores of out.
    """
    for b in range(counts.shape[0]):
        o, n, c = out[b], counts[b], 0
        o[:] = 0
        while c + 4 <= n:
            w0, w1, w2, w3 = kernel[cols[b, c]], kernel[cols[b, c + 1]], kernel[cols[b, c + 2]], kernel[cols[b, c + 3]]
            a0, a1, a2, a3 = vals[b, c], vals[b, c + 1], vals[b, c + 2], vals[b, c + 3]
            for j in range(o.shape[0]):
                o[j] = o[j] + a0 * w0[j] + a1 * w1[j] + a2 * w2[j] + a3 * w3[j]
            c += 4
        for c in range(c, n):
            w0, a0 = kernel[cols[b, c]], vals[b, c]
            for j in range(o.shape[0]):
                o[j] += a0 * w0[j]


@njit(**JIT)
def by_column(cols, vals, counts, n_in, starts, rows, values):
    """Regroup the nonzeros by input column: column k's are rows/values[starts[k]:starts[k+1]],
    batch rows ascending."""
    starts[:] = 0
    for b in range(counts.shape[0]):
        for c in range(counts[b]):
            starts[cols[b, c] + 1] += 1
    for k in range(n_in):
        starts[k + 1] += starts[k]
    fill = starts[:n_in].copy()
    for b in range(counts.shape[0]):
        for c in range(counts[b]):
            k = cols[b, c]
            rows[fill[k]], values[fill[k]] = b, vals[b, c]
            fill[k] += 1


@njit(**JIT_MATMUL)
def sparse_kernel_grad(starts, rows, values, g, out):
    """out[k] = sum over column k's nonzeros (b, a) of a * g[b], b ascending; out (I, O)."""
    for k in range(out.shape[0]):
        o, c, end = out[k], starts[k], starts[k + 1]
        o[:] = 0
        while c + 4 <= end:
            g0, g1, g2, g3 = g[rows[c]], g[rows[c + 1]], g[rows[c + 2]], g[rows[c + 3]]
            a0, a1, a2, a3 = values[c], values[c + 1], values[c + 2], values[c + 3]
            for j in range(o.shape[0]):
                o[j] = o[j] + a0 * g0[j] + a1 * g1[j] + a2 * g2[j] + a3 * g3[j]
            c += 4
        for c in range(c, end):
            g0, a0 = g[rows[c]], values[c]
            for j in range(o.shape[0]):
                o[j] += a0 * g0[j]


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
def _forward(sparse, shapes, relu, w, xb, acts, at, skip_zeros):
    """Every layer's output for the batch x[idx] into acts; returns the logits (B, C)."""
    kernel_at, bias_at, out_at = at
    rows, out = xb.shape[0], xb
    for layer in range(shapes.shape[0]):
        n_in, n_out = shapes[layer, 0], shapes[layer, 1]
        kernel = _block(w, kernel_at[layer], n_in, n_out)
        prev, out = out, _block(acts, rows * out_at[layer], rows, n_out)
        if layer == 0 and skip_zeros:
            sparse_forward(sparse[0], sparse[1], sparse[2][:rows], kernel, out)
        else:
            np.dot(prev, kernel, out)
        bias_act(out, w[bias_at[layer]:bias_at[layer] + n_out], relu[layer])
    return out


@njit(**JIT)
def _backward(sparse, shapes, relu, w, grads, xb, acts, deltas, at, skip_zeros):
    """Fill grads (flat, like w) from the logits' gradient already in deltas."""
    kernel_at, bias_at, out_at = at
    rows = xb.shape[0]
    for layer in range(shapes.shape[0] - 1, -1, -1):
        n_in, n_out = shapes[layer, 0], shapes[layer, 1]
        g = _block(deltas, rows * out_at[layer], rows, n_out)
        if relu[layer]:
            relu_mask(g, _block(acts, rows * out_at[layer], rows, n_out), rows)
        d_kernel = _block(grads, kernel_at[layer], n_in, n_out)
        if layer == 0:
            if skip_zeros:
                by_column(sparse[0], sparse[1], sparse[2][:rows], n_in, *sparse[3:])
                sparse_kernel_grad(sparse[3], sparse[4], sparse[5], g, d_kernel)
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
    n_in = x.shape[1]
    sparse = (np.empty((batch_size, n_in), np.int64), np.empty((batch_size, n_in), x.dtype),
              np.empty(batch_size, np.int64), np.empty(n_in + 1, np.int64),
              np.empty(batch_size * n_in, np.int64), np.empty(batch_size * n_in, x.dtype))
    for s in range(alphas.shape[0]):
        start = (first_step + s) * batch_size
        idx = order[start:min(start + batch_size, x.shape[0])]
        rows = idx.shape[0]
        batch = _block(xb, 0, rows, x.shape[1])
        for b in range(rows):
            labels[b] = y[idx[b]]
            if not skip_zeros:
                batch[b] = x[idx[b]]
        if skip_zeros:
            nonzeros(x, idx, sparse[0], sparse[1], sparse[2])
        logits = _forward(sparse, shapes, relu, w, batch, acts, at, skip_zeros)
        g = _block(deltas, rows * at[2][-2], rows, n_classes)
        loss_sum, correct[s] = xent_rows(logits, labels, rows, g)
        losses[s] = loss_sum / x.dtype.type(rows)
        scale = x.dtype.type(rows)
        for b in range(rows):  # (p - onehot) / B, as softmax_xent_backward
            g[b, labels[b]] -= 1
            for j in range(n_classes):
                g[b, j] /= scale
        _backward(sparse, shapes, relu, w, grads, batch, acts, deltas, at, skip_zeros)
        if threads > 1:
            adam_parallel(w, grads, m, v, alphas[s], one_minus_beta_1, one_minus_beta_2,
                          epsilon, threads)
        else:
            adam_flat(w, grads, m, v, alphas[s], one_minus_beta_1, one_minus_beta_2, epsilon)
