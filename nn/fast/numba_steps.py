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

On a cold start two cores can share the compiling: `start_helper` (which
`nn train` calls at launch) starts a second process (nn.fast.compile_helper)
that compiles the first layer's tasks and the loss into numba's on-disk
cache while this process compiles the later layers. This one then runs its first
chunks as `stepwise_steps`, serial_steps' loop in Python over those same
compiled parts (the helper's loaded from the cache), while the helper
compiles serial_steps itself and then the parallel steps, which this process
loads from the cache as each is ready. A helper that fails, hangs or is not
there only costs time: whatever it has not cached is compiled here, as
without it.
"""

import time

import numba
import numpy as np
from numba import njit

from nn.fast import config, subnormals
from nn.fast.config import CACHE, JIT
from nn.fast.numba_fused import Scratch, _backward_from, _forward, _loss_gradient, dense_step, layout
from nn.fast.numba_kernels import MAX_THREADS, warm_up
from nn.fast.numba_kernels import threads as thread_counts  # noqa: F401  (the trainer's knob)
from nn.fast.numba_sparse import (LARGE_BATCH, TILE, _batch_rows, _rows_task, _update_task, prefetch_ahead,
                                  serial_steps, sparse_step, tile_count)
from nn.fast.steps import AdamSteps, Batches, Chain
from nn.fast.steps import line_aligned, nonzero_rows  # noqa: F401  (NumPy: a compiled loop took longer than it saves)

NAME = "numba"

_helper = None  # the compile helper of this run (start_helper), until the parallel steps load
_parts_ready = False  # whether stepwise_steps' parts are compiled here or cached (_serial_ready)


def most_tiles(batch_size, tasks):
    """The most tiles (numba_sparse.tile_count) any step of batch_size rows or fewer cuts its
    batch into on up to `tasks` tasks: a short last batch below LARGE_BATCH rows takes smaller
    tiles, so it may have more than a whole batch of LARGE_BATCH rows or more."""
    return max(tile_count(batch_size, tasks), tile_count(min(batch_size, LARGE_BATCH - 1), tasks))


def scratch_for(chain, batches, tasks):
    """Scratch for train_steps on these batches with up to `tasks` tasks (a few KB to MB)."""
    dtype, batch_size, n_in = batches.x.dtype, batches.batch_size, int(chain.shapes[:, 0].max())
    width = int(chain.shapes[:, 1].sum())
    sparse = len(batches.indptr) > 0
    longest = int(np.diff(batches.indptr).max(initial=0)) if sparse else 0  # MNIST: ~300 of 784
    tiles = most_tiles(batch_size, tasks) if sparse else 0
    per_tile = min(TILE, batch_size) * longest
    return Scratch(acts=line_aligned(batch_size * width, dtype),  # rows start cache lines
                   deltas=line_aligned(batch_size * width, dtype),
                   labels=np.empty(batch_size, np.int64),
                   xb=np.empty(0 if sparse else batch_size * batches.x.shape[1], dtype),
                   starts=np.empty((tiles, n_in + 1), np.int64),
                   cols=np.empty((tiles, per_tile), np.uint32),  # rows of a tile: unsigned, no wrap test
                   vals=np.empty((tiles, per_tile), dtype))


@njit(nogil=True, **JIT)
def sparse_steps(chain, batches, first_step, adam, scratch, pieces, losses, correct):
    """The compressed-row path of train_steps: the first layer in `pieces` parallel tasks."""
    at = layout(chain.shapes)
    for s in range(adam.alphas.shape[0]):
        step = (adam.alphas[s], adam.one_minus_beta_1, adam.one_minus_beta_2, adam.epsilon)
        prefetch_ahead(batches, first_step + s)
        losses[s], correct[s] = sparse_step(chain, batches, _batch_rows(batches, first_step + s), step,
                                            scratch, at, pieces)


@njit(nogil=True, **JIT)
def dense_steps(chain, batches, first_step, adam, scratch, losses, correct):
    """The BLAS path of train_steps."""
    at = layout(chain.shapes)
    for s in range(adam.alphas.shape[0]):
        step = (adam.alphas[s], adam.one_minus_beta_1, adam.one_minus_beta_2, adam.epsilon)
        losses[s], correct[s] = dense_step(chain, batches, _batch_rows(batches, first_step + s), step,
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
    Subnormal results are flushed to zero unless NN_FLUSH_SUBNORMALS=0
    (nn.fast.subnormals: Intel's assists for them cost more than the steps).
    """
    pieces = max(1, min(threads, MAX_THREADS))
    if scratch is None:
        scratch = scratch_for(chain, batches, pieces)
    steps, args = _chosen_steps(chain, batches, first_step, adam, pieces, losses, correct, scratch)
    if steps is sparse_steps:  # the parallel loop, even as one task: OpenMP may start threads there
        subnormals.start_threads()  # not inside flushed(): a thread started there would keep its mode
    with subnormals.flushed():  # its parallel tasks take this thread's mode
        steps(*args)


def _chosen_steps(chain, batches, first_step, adam, pieces, losses, correct, scratch):
    """train_steps' choice of compiled loop: (the loop, its arguments)."""
    if not len(batches.indptr):
        return dense_steps, (chain, batches, first_step, adam, scratch, losses, correct)
    tiles = most_tiles(batches.batch_size, pieces)
    if len(scratch.starts) < tiles:  # the compiled loops do not check bounds
        raise ValueError(f"scratch for {len(scratch.starts)} tiles, not {tiles}")
    if pieces == 1 and not _parallel_compiled(chain):
        args = (chain, batches, first_step, adam, scratch, 1, losses, correct)
        if _helper is not None and not serial_steps.signatures and not _serial_ready(args):
            return stepwise_steps, args  # until the helper has cached serial_steps
        return serial_steps, args
    return sparse_steps, (chain, batches, first_step, adam, scratch, pieces, losses, correct)


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
    than one thread only once it returns True. It first compiles the layer
    kernels validation calls (numba_kernels.warm_up), then sparse_steps for
    the argument types of a chunk of no steps (exactly those of the real
    chunks). Nothing runs and nothing changes. While the compile helper is
    still compiling them it returns False at once, and the trainer asks
    again after its next part. Otherwise it compiles in the trainer's thread:
    compiling in a background thread crashed inside LLVM (a segmentation
    fault and an abort in the test suite, where TensorFlow shares the
    process), so without the helper a cold run pauses here for several
    seconds, after its first reported step.
    """
    global _helper
    from nn.fast.compile_helper import PARALLEL_S

    args = (chain, batches, 0, adam._replace(alphas=adam.alphas[:0]), scratch, 2, losses[:0],
            correct[:0])
    if _helper is not None and not _helper.wait_for("parallel", 0, stop=False):
        if _helper.running and time.monotonic() - _helper.started < PARALLEL_S:
            return False  # not yet: go on with one thread
    if _helper is not None:
        _helper.stop()  # done, ended or too slow: what it cached loads, the rest compiles here
        _helper = None
    warm_up(chain.w.dtype)
    # Launches numba's threading layer if nothing has yet: compiling parallel code does, loading it
    # from the cache does not (numba 0.68), and a process that had launched nothing aborted once
    # here in LLVM ('Symbol not found: allocate_sched'; not reproduced since). The trainer has
    # always launched it by now; a direct caller may not have.
    numba.get_num_threads()
    sparse_steps.compile(tuple(numba.typeof(a) for a in args))
    subnormals.task_modes.compile((numba.types.uint32[::1],))  # start_threads' region, cached too
    return True


def start_helper(dtype):
    """On a cold start, start the compile helper for `dtype` inputs (nn.fast.compile_helper).

    Does nothing when the cache is off (NN_NUMBA_CACHE=0: nothing to share
    through) or already holds the steps (`cached`), or when the run cannot
    start on serial_steps, the steps it shares (a fixed count of more than
    one thread, or NN_SKIP_ZEROS=0). Returns whether a helper runs.
    """
    global _helper
    from nn.fast import compile_helper

    starts_serial = (config.ADAPTIVE_THREADS or config.NUM_THREADS == 1) and config.SKIP_ZEROS != "0"
    if _helper is None and CACHE and starts_serial and not cached(dtype):
        _helper = compile_helper.start(dtype)
    return _helper is not None


def example_args(dtype):
    """Tiny arguments of serial_steps with the types the trainer's have for `dtype` inputs.

    What the compile helper compiles for, knowing only the dtype; the tests
    hold their types to those of a real fit's calls.
    """
    dtype = np.dtype(dtype)
    f, shapes = dtype.type, np.array([[2, 2], [2, 2]], np.int64)
    params = np.zeros(12, dtype)
    chain = Chain(shapes, np.array([True, False]), params, params.copy(), params.copy(), params.copy())
    x = np.ones((2, 2), dtype)
    # The compressed rows as the trainer makes them (their column dtype included).
    batches = Batches(x, np.zeros(2, np.int64), np.arange(2, dtype=np.int64), 2, *nonzero_rows(x))
    adam = AdamSteps(np.ones(1, dtype), f(0.1), f(0.001), f(1e-7))
    return (chain, batches, 0, adam, scratch_for(chain, batches, 2), 1, np.empty(1, dtype),
            np.empty(1, np.int64))


def serial_calls(args):
    """(helper's, ours): the compiled calls stepwise_steps makes on `args`, as (dispatcher, types).

    The first layer's tasks and the loss go to the compile helper (about
    3.3 s of CPU), the later layers' forward and backward stay here (about
    1.8 s, after about 1 s of data): each process's share then ends at about
    the same time (measured cold timelines of both). The types are those of
    stepwise_steps' calls from Python (serial_steps passes `first` as a
    literal, so compiles its own);
    one that drifts from them compiles another specialization at the first
    call (the tests check that none drifts).
    """
    chain, batches, _, adam, scratch, pieces, _, _ = args
    typeof, one = numba.typeof, numba.typeof(1)  # as stepwise_steps passes it, not serial_steps' literal
    n_in, n_out = chain.shapes[0]
    rows = batches.batch_size
    kernel, bias = chain.w[:n_in * n_out].reshape(n_in, n_out), chain.w[n_in * n_out:n_in * n_out + n_out]
    idx, h = batches.order[:rows], scratch.acts[:rows * n_out].reshape(rows, n_out)
    step = (adam.alphas[0], adam.one_minus_beta_1, adam.one_minus_beta_2, adam.epsilon)
    at = typeof(tuple(np.empty(1, np.int64) for _ in range(3)))
    common = tuple(typeof(a) for a in (chain.shapes, chain.relu, chain.w))
    theirs = [(_rows_task, tuple(typeof(a) for a in (batches, idx, kernel, bias, chain.relu[0], h, scratch,
                                                       0, pieces))),
              (_update_task, tuple(typeof(a) for a in (chain, scratch, h, step, 0, pieces))),
              (_loss_gradient, (typeof(h), typeof(scratch.labels), typeof(rows), typeof(h)))]
    ours = [(_forward, common + (typeof(scratch.acts), at, typeof(rows), typeof(h), one)),
            (_backward_from, common + tuple(typeof(a) for a in (chain.grads, h, scratch.acts, scratch.deltas))
             + (at, typeof(rows), one))]
    return theirs, ours


def stepwise_steps(chain, batches, first_step, adam, scratch, pieces, losses, correct):
    """serial_steps with its loop over steps in Python: each step calls the compiled parts it is made of.

    The same calls in the same order on the same arrays, so the same bits
    (the tests hold it to serial_steps); what it saves is serial_steps' own
    compile, the longest single one of a cold start (LLVM optimizes the whole
    step again once the parts are inlined into it), so a cold run's first
    chunks take it while the compile helper compiles serial_steps. The cost is
    Python's per call: on MNIST at batch 32, about 205 us a step against
    serial_steps' 165 (one thread, 1,024 steps, 4 runs each, alternating).
    prefetch_ahead, a hint that changes nothing, is left out.
    """
    shapes, relu, w, acts, deltas = chain.shapes, chain.relu, chain.w, scratch.acts, scratch.deltas
    n_in, n_out, n_last = int(shapes[0, 0]), int(shapes[0, 1]), int(shapes[-1, 1])
    kernel, bias = w[:n_in * n_out].reshape(n_in, n_out), w[n_in * n_out:n_in * n_out + n_out]
    at = layout.py_func(shapes)  # layout's Python body, as NumPy runs it: compiling it here costs what is saved
    last_at, first_relu, total = int(at[2][-2]), relu[0], batches.order.shape[0]
    for s in range(adam.alphas.shape[0]):
        start = min((first_step + s) * batches.batch_size, total)
        idx = batches.order[start:min(start + batches.batch_size, total)]
        rows = idx.shape[0]
        scratch.labels[:rows] = batches.y[idx]
        h = acts[:rows * n_out].reshape(rows, n_out)
        for p in range(pieces):
            _rows_task(batches, idx, kernel, bias, first_relu, h, scratch, p, pieces)
        logits = _forward(shapes, relu, w, acts, at, rows, h, 1)
        g = deltas[rows * last_at:rows * (last_at + n_last)].reshape(rows, n_last)
        losses[s], correct[s] = _loss_gradient(logits, scratch.labels, rows, g)
        _backward_from(shapes, relu, w, chain.grads, h, acts, deltas, at, rows, 1)
        step = (adam.alphas[s], adam.one_minus_beta_1, adam.one_minus_beta_2, adam.epsilon)
        for p in range(pieces):
            _update_task(chain, scratch, deltas[:rows * n_out].reshape(rows, n_out), step, p, pieces)


def _serial_ready(args):
    """Whether serial_steps may run now (loaded from the helper's cache, or compiled here).

    The first time, compiles our parts of it for stepwise_steps, waits for the
    helper's (its "serial") and tells it to go on to serial_steps itself. Then
    a poll: False (take stepwise_steps) until the helper says "steps"; True
    once it has, or once it has ended or been stopped without it (serial_steps
    then compiles here: a helper that fails only costs time).
    """
    global _parts_ready
    if not _parts_ready:
        _, ours = serial_calls(args)
        for dispatcher, types in ours:
            dispatcher.compile(types)
        _helper.wait_for("serial")  # its parts are then in the cache, which their first calls load
        _helper.go_on()
        _parts_ready = True
    return _helper.wait_for("steps", 0, stop=False) or not _helper.running
