"""The hot operations in plain NumPy: the specification every fast kernel follows.

Each function here has a twin with the same name and signature in every other
backend; the tests hold the twins to these. Shapes use B for the batch, I for
a layer's input width and O for its output width. Every function works in the
dtype of its inputs (float32 or float64) and never changes it.
"""

import numpy as np

NAME = "numpy"  # the name nn.kernels knows this backend by


def dense_forward(x, kernel, bias, relu):
    """Affine map with optional fused ReLU: act(x @ kernel + bias) -> (B, O)."""
    z = x @ kernel  # (B, I) @ (I, O) -> (B, O)
    z += bias  # (O,) broadcast over the batch
    if relu:
        np.maximum(z, 0, out=z)
    return z


def matmul_tn(a, b):
    """a.T @ b: the kernel gradient x^T g, (B, I), (B, O) -> (I, O)."""
    return a.T @ b


def matmul_nt(a, b):
    """a @ b.T: the input gradient g W^T, (B, O), (I, O) -> (B, I)."""
    return a @ b.T


def bias_grad(g):
    """Sum over the batch: the bias gradient, (B, O) -> (O,)."""
    return g.sum(axis=0)


def relu_backward(dout, y):
    """dout where the ReLU's output y is positive, else 0; both (B, O).

    The derivative at exactly 0 is taken as 0, as TensorFlow's ReluGrad does.
    """
    return np.where(y > 0, dout, np.zeros((), dout.dtype))


def softmax(z):
    """Row-wise softmax of logits (B, C) -> probabilities (B, C), max-shifted."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    e /= e.sum(axis=1, keepdims=True)
    return e


def softmax_backward(dout, p):
    """Vector-Jacobian product of softmax: p * (dout - <dout, p>), all (B, C)."""
    return p * (dout - (dout * p).sum(axis=1, keepdims=True))


def softmax_xent_forward(logits, labels):
    """Mean sparse cross-entropy from logits and the softmax: -> (loss, probs).

    logits (B, C) float, labels (B,) int in [0, C). Per example the loss is
    logsumexp(z) - z[y], computed on z - max(z) so that exp never overflows and
    the result stays finite for any finite logits (as in TensorFlow's
    sparse_softmax_cross_entropy_with_logits). loss is a 0-d array of the
    logits' dtype: the sum over the batch divided by B.
    """
    rows = np.arange(logits.shape[0])
    shifted = logits - logits.max(axis=1, keepdims=True)  # (B, C), max is 0
    e = np.exp(shifted)
    sums = e.sum(axis=1)  # (B,), each in [1, C]
    per_example = np.log(sums) - shifted[rows, labels]  # (B,)
    probs = e / sums[:, None]
    loss = per_example.sum() / logits.dtype.type(logits.shape[0])
    return loss, probs


def softmax_xent_backward(probs, labels):
    """Gradient of the mean cross-entropy w.r.t. the logits: (p - onehot) / B."""
    g = probs.copy()  # (B, C)
    g[np.arange(g.shape[0]), labels] -= 1
    g /= g.dtype.type(g.shape[0])
    return g


def adam_update(w, g, m, v, alpha, one_minus_beta_1, one_minus_beta_2, epsilon):
    """One Adam step in place, in Keras 3's order of operations.

    m += (g - m) * (1 - b1); v += (g*g - v) * (1 - b2);
    w -= (m * alpha) / (sqrt(v) + eps). All arrays share one shape and dtype;
    the scalars are already of that dtype (see nn.optimizers.Adam).
    """
    m += (g - m) * one_minus_beta_1
    v += (g * g - v) * one_minus_beta_2
    w -= (m * alpha) / (np.sqrt(v) + epsilon)


def param_views(flat, shapes):
    """[(kernel (I, O), bias (O,)), ...]: views into a flat vector laid out in Keras's order."""
    views, offset = [], 0
    for n_in, n_out in np.asarray(shapes).tolist():
        kernel = flat[offset:offset + n_in * n_out].reshape(n_in, n_out)
        offset += n_in * n_out
        views.append((kernel, flat[offset:offset + n_out]))
        offset += n_out
    return views


def nonzero_rows(x):
    """x (N, I) as compressed rows -> (indptr (N+1,) int64, indices int32, values).

    Row r's nonzero inputs sit at columns indices[indptr[r]:indptr[r+1]],
    ascending, with values values[indptr[r]:indptr[r+1]].
    """
    rows, cols = np.nonzero(x)  # row-major: rows ascending, columns ascending within a row
    indptr = np.zeros(len(x) + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=len(x)), out=indptr[1:])
    return indptr, cols.astype(np.int32), x[rows, cols]


def train_steps(x, y, order, first_step, batch_size, shapes, relu, w, m, v, alphas,
                one_minus_beta_1, one_minus_beta_2, epsilon, indptr, indices, values, threads,
                losses, correct):
    """len(alphas) Adam steps of a chain of Dense layers, as the layer-by-layer path takes them.

    x (N, I) float and y (N,) int64: the training set; order (N,) int64: the
    epoch's permutation; step s trains on order[s*batch_size:(s+1)*batch_size]
    (the last batch may be short), for s = first_step, first_step + 1, ...
    shapes (L, 2) int64: (inputs, units) per Dense layer; relu (L,) bool: ReLU
    after it (the last layer gives logits). w, m, v (P,): parameters and Adam
    moments, flat in Keras's order (see param_views), updated in place.
    alphas (S,): Adam's alpha for each of the S steps; the other Adam scalars
    as in adam_update. indptr, indices, values (x's nonzero_rows, or empty
    arrays) and threads are speed hints that never change a result. Writes each step's mean loss into losses (S,) and its
    number of correct argmax predictions into correct (S,), both measured
    before the step's update.
    """
    params = param_views(w, shapes)
    for s in range(len(alphas)):
        start = (first_step + s) * batch_size
        idx = order[start:start + batch_size]
        outputs, labels = [x[idx]], y[idx]
        for (kernel, bias), act in zip(params, relu):
            outputs.append(dense_forward(outputs[-1], kernel, bias, bool(act)))
        losses[s], probs = softmax_xent_forward(outputs[-1], labels)
        correct[s] = np.count_nonzero(probs.argmax(axis=1) == labels)
        g, grads = softmax_xent_backward(probs, labels), []
        for layer in range(len(params) - 1, -1, -1):  # as each Dense.backward
            if relu[layer]:
                g = relu_backward(g, outputs[layer + 1])
            grads[:0] = [matmul_tn(outputs[layer], g), bias_grad(g)]
            if layer > 0:
                g = matmul_nt(g, params[layer][0])
        adam_update(w, np.concatenate([a.ravel() for a in grads]), m, v, alphas[s],
                    one_minus_beta_1, one_minus_beta_2, epsilon)
