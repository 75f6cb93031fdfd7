"""Teaching path: the hot operations of the layers in plain NumPy, the specification.

Each function here has a twin with the same name and signature in
nn.fast.numba_kernels; the tests hold the twin to these. The fused engine's
whole-chunk steps are specified apart, in nn.fast.steps. Shapes use B for the batch, I for
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
    # .real is z itself for real logits; for the complex-step gradient check
    # (nn.gradcheck) it keeps the shift real, so no imaginary part cancels.
    e = np.exp(z - z.real.max(axis=1, keepdims=True))
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
    per_example, e, sums = _xent_per_example(logits, labels)
    probs = e / sums[:, None]
    loss = per_example.sum() / logits.dtype.type(logits.shape[0])
    return loss, probs


def _xent_per_example(logits, labels):
    """Each example's cross-entropy logsumexp(z) - z[y], (B,), with exp(z - max) and its row sums.

    The max shift comes from the real part (a no-op for real logits): the
    complex-step gradient check (nn.gradcheck) runs this on complex logits.
    """
    shifted = logits - logits.real.max(axis=1, keepdims=True)  # (B, C), max is 0
    e = np.exp(shifted)
    sums = e.sum(axis=1)  # (B,), each in [1, C]
    return np.log(sums) - shifted[np.arange(logits.shape[0]), labels], e, sums


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
