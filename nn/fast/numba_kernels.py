"""Fast engine: the layers' hot operations compiled with numba, twins of nn.kernels.numpy_kernels.

Same names, signatures, shapes and dtypes as the NumPy specification, which
the tests hold these to. Matrix products go to BLAS through numba's np.dot
(which needs SciPy); everything elementwise is a plain loop. Adam and the
softmax use no fastmath, so they round exactly like their twins (Adam is
bit-identical to it). Importing this module needs numba: `nn.kernels` guards
the import.
"""

import contextlib
import ctypes
import functools
import glob
import os

import numba
import numpy as np
from numba import njit

from nn.fast import config
from nn.fast.config import BLAS_THREADS, JIT
from nn.fast.numba_fused import adam_flat, bias_act, bias_sum, relu_mask, xent_rows

config.check()  # refuse a bad NN_* setting before anything compiles or runs with it
config.shorter_spinning()  # before numba starts its OpenMP threads (see config.SPIN_COUNT)

MAX_THREADS = numba.config.NUMBA_NUM_THREADS  # the size of numba's thread pool



def _import_cython_blas():
    """Import scipy.linalg.cython_blas, whose BLAS numba's np.dot calls, without all of scipy.linalg.

    The usual import runs scipy/linalg/__init__.py first, about 0.25 s here (a
    quarter of a warm start), for an extension module that needs none of it.
    Loaded from its file under its own name, it is the module every later
    import of that name gets (from sys.modules: numba's BLAS lookup, SciPy's
    own Cython users); anything unexpected falls back to the usual import.
    """
    import importlib.util
    import sys

    name = "scipy.linalg.cython_blas"
    if name in sys.modules:
        return
    try:
        import scipy

        path = next(iter(glob.glob(os.path.join(os.path.dirname(scipy.__file__), "linalg",
                                                "cython_blas.*"))), None)
        spec = path and importlib.util.spec_from_file_location(name, path)
        if spec is not None:
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            sys.modules[name] = module
            return
    except Exception:  # noqa: BLE001  (another SciPy layout: the usual import below)
        sys.modules.pop(name, None)
    import scipy.linalg.cython_blas  # noqa: F401


try:  # numba's np.dot calls BLAS through SciPy; fail here, not at the first compile
    _import_cython_blas()
except ImportError as exc:
    raise ImportError("the numba backend needs SciPy for BLAS: pip install scipy") from exc

NAME = "numba"  # the name nn.kernels knows this backend by


@functools.cache
def _blas_thread_setter():
    """SciPy's OpenBLAS set_num_threads (the copy numba's np.dot calls), or None."""
    import scipy

    libs = os.path.join(os.path.dirname(os.path.dirname(scipy.__file__)), "scipy.libs")
    for path in glob.glob(os.path.join(libs, "libscipy_openblas*.so*")):
        lib = ctypes.CDLL(path)  # the copy SciPy already loaded: dlopen shares it
        for name in ("scipy_openblas_set_num_threads", "openblas_set_num_threads"):
            if hasattr(lib, name):
                return getattr(lib, name)
    return None


@contextlib.contextmanager
def threads(numba_threads, blas_threads):
    """Run the block with these counts of numba and BLAS threads; restore both after."""
    saved = numba.get_num_threads()
    numba.set_num_threads(max(1, min(numba_threads, MAX_THREADS)))
    set_blas_threads(blas_threads)
    try:
        yield
    finally:
        numba.set_num_threads(saved)
        set_blas_threads(BLAS_THREADS)


def set_blas_threads(count):
    """Set the threads of SciPy's OpenBLAS, which numba's np.dot calls; False if not found."""
    setter = _blas_thread_setter()
    if setter is not None:
        setter(ctypes.c_int(count))
    return setter is not None


BLAS_THREADS_SET = set_blas_threads(BLAS_THREADS)


@njit(**JIT)
def dense_forward(x, kernel, bias, relu):
    """Affine map with optional fused ReLU: act(x @ kernel + bias) -> (B, O)."""
    out = np.dot(np.ascontiguousarray(x), np.ascontiguousarray(kernel))  # (B, O)
    bias_act(out, bias, relu)
    return out


@njit(**JIT)
def matmul_tn(a, b):
    """a.T @ b: the kernel gradient x^T g, (B, I), (B, O) -> (I, O)."""
    return np.dot(np.ascontiguousarray(a).T, np.ascontiguousarray(b))


@njit(**JIT)
def matmul_nt(a, b):
    """a @ b.T: the input gradient g W^T, (B, O), (I, O) -> (B, I)."""
    return np.dot(np.ascontiguousarray(a), np.ascontiguousarray(b).T)


@njit(**JIT)
def bias_grad(g):
    """Sum over the batch, rows added in order: the bias gradient, (B, O) -> (O,)."""
    out = np.empty(g.shape[1], g.dtype)
    bias_sum(g, g.shape[0], out)
    return out


@njit(**JIT)
def relu_backward(dout, y):
    """dout where the ReLU's output y is positive, else 0; both (B, O)."""
    out = dout.copy()
    relu_mask(out, y, dout.shape[0])
    return out


@njit(**JIT)
def softmax(z):
    """Row-wise softmax of logits (B, C) -> probabilities (B, C), max-shifted."""
    out = np.empty(z.shape, z.dtype)
    for i in range(z.shape[0]):
        top = z[i, 0]
        for j in range(1, z.shape[1]):
            top = max(top, z[i, j])
        total = z.dtype.type(0)
        for j in range(z.shape[1]):
            out[i, j] = np.exp(z[i, j] - top)
            total += out[i, j]
        for j in range(z.shape[1]):
            out[i, j] /= total
    return out


@njit(**JIT)
def softmax_backward(dout, p):
    """Vector-Jacobian product of softmax: p * (dout - <dout, p>), all (B, C)."""
    out = np.empty(p.shape, p.dtype)
    for i in range(p.shape[0]):
        inner = p.dtype.type(0)
        for j in range(p.shape[1]):
            inner += dout[i, j] * p[i, j]
        for j in range(p.shape[1]):
            out[i, j] = p[i, j] * (dout[i, j] - inner)
    return out


@njit(**JIT)
def _xent_forward(logits, labels):
    probs = np.empty(logits.shape, logits.dtype)
    loss_sum, _ = xent_rows(np.ascontiguousarray(logits), labels, logits.shape[0], probs)
    return loss_sum / logits.dtype.type(logits.shape[0]), probs


def softmax_xent_forward(logits, labels):
    """Mean sparse cross-entropy from logits and the softmax: -> (loss, probs).

    logits (B, C) float, labels (B,) int in [0, C); loss is a scalar of the
    logits' dtype, probs (B, C). See the NumPy twin for the formula.
    """
    loss, probs = _xent_forward(logits, np.asarray(labels, np.int64))
    return logits.dtype.type(loss), probs


@njit(**JIT)
def softmax_xent_backward(probs, labels):
    """Gradient of the mean cross-entropy w.r.t. the logits: (p - onehot) / B."""
    g = probs.copy()
    n = g.dtype.type(g.shape[0])
    for i in range(g.shape[0]):
        g[i, labels[i]] -= 1
        for j in range(g.shape[1]):
            g[i, j] /= n
    return g


@njit(**JIT)
def _adam_2d(w, g, m, v, alpha, one_minus_beta_1, one_minus_beta_2, epsilon):
    for i in range(w.shape[0]):
        adam_flat(w[i], g[i], m[i], v[i], alpha, one_minus_beta_1, one_minus_beta_2, epsilon)


def _as_2d(a):
    """A 2-D view of a, never a copy, so in-place updates land in `a`."""
    if a.ndim == 1:
        return a[None, :]
    if a.ndim > 2 and not a.flags.c_contiguous:
        raise ValueError("adam_update: arrays of more than 2 dimensions must be C-contiguous")
    return a.reshape(a.shape[0], -1)


def adam_update(w, g, m, v, alpha, one_minus_beta_1, one_minus_beta_2, epsilon):
    """One Adam step in place, in Keras 3's order of operations (see the NumPy twin).

    The scalars are cast to the arrays' dtype first, as NumPy's weak scalars are.
    """
    f = w.dtype.type
    _adam_2d(_as_2d(w), _as_2d(g), _as_2d(m), _as_2d(v), f(alpha), f(one_minus_beta_1),
             f(one_minus_beta_2), f(epsilon))


def warm_up(dtype):
    """Compile the kernels evaluate and predict call on `dtype` inputs, without running them.

    nn.fast.numba_steps.compile_parallel calls this, so the fused trainer
    compiles them at one moment with the parallel steps.
    """
    matrix, vector = numba.typeof(np.empty((1, 1), dtype)), numba.typeof(np.empty(1, dtype))
    dense_forward.compile((matrix, matrix, vector, numba.types.boolean))
    softmax.compile((matrix,))
    _xent_forward.compile((matrix, numba.typeof(np.empty(1, np.int64))))
