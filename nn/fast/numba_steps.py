"""Fast engine: the fused steps compiled with numba, the twin of nn.fast.steps.

`train_steps` takes a whole chunk of Adam steps of a Dense chain in one
call: on the compressed-row path (numba_sparse) the first layer visits only
nonzero inputs on every core; otherwise every product goes to BLAS
(numba_fused.dense_step). Each path is its own compiled loop, so a run
compiles only the one it takes. `threads` sets numba's and BLAS's thread
counts around a chunk (nn.fast.trainer does).

The compressed-row path has two loops: `serial_steps` (numba_sparse) on
one thread and `sparse_steps` on several, giving the same bits. The serial
one compiles in about half the time, so a run starts on it and the trainer
calls `compile_parallel` once the first chunk has been reported, offering
more threads only then.
"""

import numba
import numpy as np
from numba import njit

from nn.fast.config import CACHE, JIT
from nn.fast.numba_fused import Scratch, dense_step, layout
from nn.fast.numba_kernels import MAX_THREADS, warm_up
from nn.fast.numba_kernels import threads as thread_counts  # noqa: F401  (the trainer's knob)
from nn.fast.numba_sparse import prefetch_ahead, serial_steps, sparse_step
from nn.fast.steps import AdamSteps, Batches, Chain  # noqa: F401  (the arguments, shared)
from nn.fast.steps import line_aligned, nonzero_rows  # noqa: F401  (NumPy: a compiled loop took longer than it saves)

NAME = "numba"


def scratch_for(chain, batches, tasks):
    """Scratch for train_steps on these batches with up to `tasks` tasks (a few KB to MB)."""
    dtype, batch_size, n_in = batches.x.dtype, batches.batch_size, int(chain.shapes[:, 0].max())
    width = int(chain.shapes[:, 1].sum())
    sparse = len(batches.indptr) > 0
    longest = int(np.diff(batches.indptr).max(initial=0)) if sparse else 0  # MNIST: ~300 of 784
    per_task = batch_size * longest
    return Scratch(acts=line_aligned(batch_size * width, dtype),  # rows start cache lines
                   deltas=line_aligned(batch_size * width, dtype),
                   labels=np.empty(batch_size, np.int64),
                   xb=np.empty(0 if sparse else batch_size * batches.x.shape[1], dtype),
                   batch_cols=np.empty((batch_size, longest), batches.indices.dtype),
                   batch_vals=np.empty((batch_size, longest), dtype),
                   counts=np.empty(batch_size, np.int64),
                   starts=np.empty((tasks if sparse else 0, n_in + 1), np.int64),
                   cols=np.empty((tasks if sparse else 0, per_task), np.uint32),  # batch rows: unsigned, no wrap test
                   vals=np.empty((tasks if sparse else 0, per_task), dtype))


@njit(**JIT)
def _batch(batches, first_step, s):
    start = (first_step + s) * batches.batch_size
    return batches.order[start:min(start + batches.batch_size, batches.x.shape[0])]


@njit(nogil=True, **JIT)
def sparse_steps(chain, batches, first_step, adam, scratch, pieces, losses, correct):
    """The compressed-row path of train_steps: the first layer in `pieces` parallel tasks."""
    at = layout(chain.shapes)
    for s in range(adam.alphas.shape[0]):
        step = (adam.alphas[s], adam.one_minus_beta_1, adam.one_minus_beta_2, adam.epsilon)
        prefetch_ahead(batches, first_step + s)
        losses[s], correct[s] = sparse_step(chain, batches, _batch(batches, first_step, s), step,
                                            scratch, at, pieces)


@njit(nogil=True, **JIT)
def dense_steps(chain, batches, first_step, adam, scratch, losses, correct):
    """The BLAS path of train_steps."""
    at = layout(chain.shapes)
    for s in range(adam.alphas.shape[0]):
        step = (adam.alphas[s], adam.one_minus_beta_1, adam.one_minus_beta_2, adam.epsilon)
        losses[s], correct[s] = dense_step(chain, batches, _batch(batches, first_step, s), step,
                                           scratch, at)


def cached(dtype, sparse=True):
    """Whether numba's on-disk cache holds the steps a run starts on, for `dtype` on this CPU.

    False means the first chunk compiles them first (a few seconds), which
    `nn train` says in one line. Reads numba's cache index (an internal
    format): any surprise there answers False, which only prints the line.
    """
    import llvmlite.binding

    if not CACHE:
        return False
    try:
        index = (serial_steps if sparse else dense_steps)._cache._cache_file._load_index()
        cpu = llvmlite.binding.get_host_cpu_name()
        return any(np.dtype(dtype).name in str(key[0]) and cpu in str(key[1]) for key in index)
    except Exception:  # noqa: BLE001  (no cache, another numba: say it compiles)
        return False


def train_steps(chain, batches, first_step, adam, threads, losses, correct, scratch=None):
    """len(adam.alphas) Adam steps of a Dense chain from step `first_step`; see the twin.

    With x's compressed rows in batches (nonzero_rows; empty arrays for none)
    the first layer visits only nonzero inputs, in `threads` tasks
    (numba_sparse); run it inside `thread_counts(...)` so that numba has that
    many. Without them, every product goes to BLAS. scratch: from scratch_for
    with at least `threads` tasks, to reuse across chunks (default: made here).
    """
    pieces = max(1, min(threads, MAX_THREADS))
    if scratch is None:
        scratch = scratch_for(chain, batches, pieces)
    if not len(batches.indptr):
        dense_steps(chain, batches, first_step, adam, scratch, losses, correct)
        return
    if len(scratch.starts) < pieces:  # the compiled loops do not check bounds
        raise ValueError(f"scratch for {len(scratch.starts)} tasks, not {pieces}")
    if pieces == 1 and not _parallel_compiled(chain):
        serial_steps(chain, batches, first_step, adam, scratch, 1, losses, correct)
    else:
        sparse_steps(chain, batches, first_step, adam, scratch, pieces, losses, correct)


def _parallel_compiled(chain):
    """Whether sparse_steps is compiled in this process for this chain's types.

    Once it is, one thread takes it too (as one task): a step of it took
    0.87 of serial_steps' on one thread, for the same bits (paired shuffled
    epochs in one process, alternating which runs first). Calling
    the parallel first_layer_update from serial_steps alone gave 0.86: LLVM
    inlines the whole serial loop into one function, and optimizes the
    first-layer update worse there than in the parallel region's own one.
    """
    # By the dtype of chain.w (Chain's third field): numba.typeof(chain) takes
    # 0.1 ms. A miss on some other type would only compile, never misreckon.
    dtype = numba.from_dtype(chain.w.dtype)
    return any(sig[0].types[2].dtype == dtype for sig in sparse_steps.signatures)


def compile_parallel(chain, batches, adam, scratch, losses, correct):
    """Compile sparse_steps (or load it from numba's cache) for the types of these arguments.

    The trainer calls this once a run's first chunk has been reported, with
    the arguments of a chunk it has run on the serial steps, and offers more
    than one thread only afterwards. It first compiles the layer kernels
    validation calls (numba_kernels.warm_up), then sparse_steps for the
    argument types of a chunk of no steps (exactly those of the real
    chunks). Nothing runs and nothing changes. It is done in the trainer's
    thread: compiling in a background thread crashed inside LLVM (a
    segmentation fault and an abort in the test suite, where TensorFlow
    shares the process), so a cold run pauses here for a few seconds
    instead, after its first reported step.
    """
    args = (chain, batches, 0, adam._replace(alphas=adam.alphas[:0]), scratch, 2, losses[:0],
            correct[:0])
    warm_up(chain.w.dtype)
    sparse_steps.compile(tuple(numba.typeof(a) for a in args))
