"""Fast engine: every compiled kernel beside its NumPy twin, with inputs to call both on.

One list drives both the twin tests (tests/fast/test_registry.py calls each
pair on the same inputs and compares every output and every array updated in
place) and the kernel benchmark (benchmarks/kernels.py times each pair at the
seed network's sizes), as numbagg's registry does. Importing this module
imports nothing compiled; `load` imports a kernel only when asked.

Each entry's `sample(rng, dtype, size)` returns the positional arguments;
size is "small" (odd shapes, for the tests) or "seed" (batch 32 of the seed
network, for the benchmark). `exact`: the fast kernel does the twin's
operations in the twin's order with no fastmath, so they must agree bit for
bit; otherwise sums may be ordered differently and fused (a*b + c in one
rounding), and tests/fast/test_registry.py derives the tolerance.
"""

import importlib
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

SIZES = {"small": (7, 13, 5), "seed": (32, 784, 128)}  # (batch, inputs, units)


class Kernel(NamedTuple):
    """One kernel: its name, the fast and twin implementations ("module:function"), its inputs."""

    name: str
    fast: str
    twin: str
    sample: Callable
    exact: bool
    terms: Callable  # (args) -> the most terms any output sums: the tolerance's K


def copied(value):
    """A deep copy of a kernel's arguments (arrays, tuples and NamedTuples of them), so an
    in-place kernel and its twin each start from the same inputs."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, tuple):
        items = [copied(item) for item in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    return value


def load(path):
    """The function at "module:function"."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _normal(rng, dtype, *shape):
    return rng.standard_normal(shape).astype(dtype)


def _dense(rng, dtype, size):
    b, i, o = SIZES[size]
    return _normal(rng, dtype, b, i), _normal(rng, dtype, i, o), _normal(rng, dtype, o), True


def _tn(rng, dtype, size):
    b, i, o = SIZES[size]
    return _normal(rng, dtype, b, i), _normal(rng, dtype, b, o)


def _nt(rng, dtype, size):
    b, i, o = SIZES[size]
    return _normal(rng, dtype, b, o), _normal(rng, dtype, i, o)


def _rows(rng, dtype, size):
    b, _, o = SIZES[size]
    return (_normal(rng, dtype, b, o),)


def _relu_back(rng, dtype, size):
    b, _, o = SIZES[size]
    return _normal(rng, dtype, b, o), np.maximum(_normal(rng, dtype, b, o), 0)


def _softmax_back(rng, dtype, size):
    b, _, _ = SIZES[size]
    z = _normal(rng, dtype, b, 10)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    return _normal(rng, dtype, b, 10), (p / p.sum(axis=1, keepdims=True)).astype(dtype)


def _xent(rng, dtype, size):
    b, _, _ = SIZES[size]
    return _normal(rng, dtype, b, 10), rng.integers(0, 10, b)


def _xent_back(rng, dtype, size):
    logits, labels = _xent(rng, dtype, size)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (p / p.sum(axis=1, keepdims=True)).astype(dtype), labels


def _adam(rng, dtype, size):
    n = 104_938 if size == "seed" else 61  # the seed network's parameters
    w, g, m = (_normal(rng, dtype, n) for _ in range(3))
    v = np.abs(_normal(rng, dtype, n))
    f = np.dtype(dtype).type
    return w, g, m, v, f(1e-3), f(0.1), f(0.001), f(1e-7)


def _train_steps(rng, dtype, size):
    """Arguments of train_steps: 6 steps of a small chain, or a chunk of 128 of the seed network."""
    from nn.fast.steps import AdamSteps, Batches, Chain, nonzero_rows
    from nn.optimizers import Adam

    b, i, o = SIZES[size]
    widths = (i, o, 32, 10) if size == "seed" else (i, o, 4, 3)
    n, steps = (128 * b, 128) if size == "seed" else (5 * b + 2, 6)  # small: the 6th batch is short
    x = _normal(rng, dtype, n, i)
    x[rng.random(x.shape) < 0.81] = 0
    shapes = np.array(list(zip(widths[:-1], widths[1:])), np.int64)
    count = sum(a * c + c for a, c in shapes.tolist())
    w = (0.1 * rng.standard_normal(count)).astype(dtype)
    chain = Chain(shapes, np.array([True] * (len(widths) - 2) + [False]), w, np.zeros_like(w),
                  np.zeros_like(w), np.zeros_like(w))
    batches = Batches(x, rng.integers(0, widths[-1], n), rng.permutation(n).astype(np.int64), b,
                      *nonzero_rows(x))
    c1, c2, eps = Adam().coefficients(1, dtype)[1:]
    return (chain, batches, 0, AdamSteps(Adam().alphas(1, steps, dtype), c1, c2, eps), 2,
            np.empty(steps, dtype), np.empty(steps, np.int64))


_LAYER = "nn.fast.numba_kernels:{0}", "nn.kernels.numpy_kernels:{0}"
_BY_INPUTS = lambda args: args[0].shape[1]  # noqa: E731  (x @ kernel: K = inputs)
_BY_BATCH = lambda args: args[0].shape[0]  # noqa: E731  (a^T b, bias sums: K = batch)
_BY_UNITS = lambda args: args[0].shape[1]  # noqa: E731  (g @ kernel^T, softmax: K = units)
_ONE = lambda args: 1  # noqa: E731

#: Every kernel of the numba backend and of the fused engine, with its twin.
KERNELS = [
    Kernel(name, *(p.format(name) for p in _LAYER), sample, exact, terms)
    for name, sample, exact, terms in [
        ("dense_forward", _dense, False, _BY_INPUTS),
        ("matmul_tn", _tn, False, _BY_BATCH),
        ("matmul_nt", _nt, False, _BY_UNITS),
        ("bias_grad", _rows, False, _BY_BATCH),
        ("relu_backward", _relu_back, True, _ONE),
        ("softmax", _rows, False, _BY_UNITS),
        ("softmax_backward", _softmax_back, False, _BY_UNITS),
        ("softmax_xent_forward", _xent, False, _BY_UNITS),
        ("softmax_xent_backward", _xent_back, False, _ONE),
        ("adam_update", _adam, True, _ONE),
    ]
] + [
    # A whole chunk of steps: the error compounds over the steps, so the test
    # allows K = steps * (largest sum) roundings; see tests/fast/test_registry.py.
    Kernel("train_steps", "nn.fast.numba_steps:train_steps", "nn.fast.steps:train_steps",
           _train_steps, False, lambda args: len(args[3].alphas) * args[0].shapes.max()),
]
