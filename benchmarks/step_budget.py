"""Where a fused training step's time goes, phase by phase, at one batch size.

    python benchmarks/step_budget.py [--batch-size 32] [--threads 1,2] [--json budget.json]

Times each phase of the compressed-row step (nn.fast.numba_sparse) on the
seed network and MNIST, in a compiled loop of REPEATS calls (so no Python
between calls), median of ROUNDS such loops after a warm-up (compilation
excluded):

- first layer forward: first_layer_rows (x[idx] @ W1 over nonzero inputs,
  bias, ReLU, and grouping each tile's nonzeros by column), one parallel
  region;
- later layers and loss: Dense 2 and 3 forward, softmax cross-entropy and
  their backward on BLAS, on the calling thread;
- first-layer gradient: W1's gradient x^T g over nonzero inputs, from the
  forward's grouping (serial);
- Adam: the update of all 104,938 parameters (serial);
- parallel region: entering and leaving an empty prange of `threads` tasks
  (a step enters two);
- whole step: sparse_step as train_steps calls it, on one batch again and again;
- whole step, an epoch's batches: train_steps' compiled loops over a shuffled
  epoch, a new batch each step, as in training (its compressed rows come
  from memory, not from cache: the difference from the line above);
  serial_steps (a run's first chunks) and sparse_steps (once compiled, on
  any thread count);
- Python per chunk: an epoch through FusedTrainer.run_epoch minus the time
  inside train_steps, per chunk (packing weights, Adam's alphas, the hooks).

Work per phase (multiply-adds, bytes) is counted from the data, so the
budget in docs/benchmarks.md can set each against benchmarks/machine_limits.py.
Every phase runs with subnormals flushed to zero, as training runs them
(nn.fast.subnormals; NN_FLUSH_SUBNORMALS=0 times IEEE arithmetic instead).
"""

import argparse
import statistics
import time

import numba
import numpy as np
from _common import dense_chain, load_mnist, write_json
from numba import njit, prange

from nn.fast import config
from nn.fast.numba_fused import _backward_from, _forward, _loss_gradient, adam_flat, layout
from nn.fast.numba_kernels import set_blas_threads
from nn.fast.numba_sparse import (_gradient_rows, first_layer_rows, first_layer_update, serial_steps,
                                  sparse_step, tile_count)
from nn.fast.numba_steps import scratch_for, sparse_steps
from nn.fast.steps import AdamSteps, Batches, Chain, line_aligned, nonzero_rows
from nn.fast.subnormals import flushed

REPEATS = 200
ROUNDS = 7


@njit
def _first_forward(s, repeats):
    for _ in range(repeats):
        first_layer_rows(s.batches, s.idx, s.w1, s.b1, True, s.h, s.scratch, s.pieces)


@njit
def _rest(s, repeats):
    rows = s.idx.shape[0]
    for _ in range(repeats):
        logits = _forward(s.shapes, s.relu, s.w, s.acts, s.at, rows, s.h, 1)
        g = s.deltas[rows * s.at[2][-2]:rows * s.at[2][-1]].reshape(rows, s.shapes[-1, 1])
        _loss_gradient(logits, s.labels, rows, g)
        _backward_from(s.shapes, s.relu, s.w, s.grads, s.h, s.acts, s.deltas, s.at, rows, 1)


@njit
def _first_grad(s, repeats):
    n_in, n_out, rows = s.shapes[0, 0], s.shapes[0, 1], s.idx.shape[0]
    d_kernel = s.grads[:n_in * n_out].reshape(n_in, n_out)
    g = s.deltas[:rows * n_out].reshape(rows, n_out)
    for _ in range(repeats):  # the batch's grouping by column is the forward's (first_layer_rows)
        _gradient_rows(s.scratch, g, d_kernel, 0, n_in, tile_count(rows, s.pieces))


@njit
def _adam(s, repeats):
    for _ in range(repeats):
        adam_flat(s.w, s.grads, s.m, s.v, s.adam[0], s.adam[1], s.adam[2], s.adam[3])


@njit(parallel=True)
def _empty_region(out, pieces):
    for p in prange(pieces):
        out[p] += 1


@njit
def _region(s, repeats):
    for _ in range(repeats):
        _empty_region(s.region, s.pieces)


@njit
def _update(s, repeats):
    rows, n_out = s.idx.shape[0], s.shapes[0, 1]
    for _ in range(repeats):
        first_layer_update(s.chain, s.scratch, s.deltas[:rows * n_out].reshape(rows, n_out),
                           s.adam, s.pieces)


@njit
def _step(s, repeats):
    for _ in range(repeats):
        sparse_step(s.chain, s.batches, s.idx, s.adam, s.scratch, s.at, s.pieces)


PHASES = [("first layer forward", _first_forward), ("later layers and loss", _rest),
          ("first-layer gradient", _first_grad), ("Adam", _adam),
          ("parallel region", _region), ("first_layer_update (gradient + Adam)", _update),
          ("whole step", _step)]


def state(x, y, batch_size, pieces):
    """Everything one step touches, as train_steps sets it up, in one namedtuple."""
    from collections import namedtuple

    model = dense_chain((784, 128, 32, 10), "numba")
    shapes = np.array([(784, 128), (128, 32), (32, 10)], np.int64)
    flats = [line_aligned(104938, np.float32) for _ in range(4)]  # as the trainer's
    w = flats[0]
    np.concatenate([a.ravel() for lyr in model.layers[1:] for a in lyr.params.values()], out=w)
    for flat in flats[1:]:
        flat[:] = 0
    chain = Chain(shapes, np.array([True, True, False]), *flats)
    idx = np.arange(batch_size, dtype=np.int64)
    batches = Batches(x, y, idx, batch_size, *nonzero_rows(x))
    scratch = scratch_for(chain, batches, pieces)
    scratch.labels[:] = y[idx]
    fields = dict(chain=chain, batches=batches, scratch=scratch, idx=idx, at=layout(shapes),
                  adam=(np.float32(1e-3), np.float32(0.1), np.float32(0.001), np.float32(1e-7)),
                  pieces=pieces, w1=w[:784 * 128].reshape(784, 128), b1=w[784 * 128:784 * 128 + 128],
                  h=scratch.acts[:batch_size * 128].reshape(batch_size, 128),
                  **{k: getattr(chain, k) for k in ("shapes", "relu", "w", "m", "v", "grads")},
                  **{k: getattr(scratch, k) for k in scratch._fields if k != "labels"},
                  labels=scratch.labels, region=np.zeros(pieces, np.int64))
    return namedtuple("StepState", list(fields))(**fields)


def time_phase(func, s):
    """Median microseconds per call of func's compiled loop."""
    func(s, 2)  # warm-up: compilation
    _first_forward(s, 1)  # leave the batch's nonzeros and h in place for the later phases
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        func(s, REPEATS)
        times.append((time.perf_counter() - start) / REPEATS * 1e6)
    return statistics.median(times)


def epoch_steps(s, x, y, batch_size, loop):
    """Median microseconds a step of a compiled steps loop over whole shuffled epochs.

    loop: serial_steps or sparse_steps, called as train_steps calls them.
    """
    order = np.random.default_rng(0).permutation(len(x)).astype(np.int64)
    batches = s.batches._replace(order=order)
    steps = len(x) // batch_size
    adam = AdamSteps(np.full(steps, s.adam[0]), *s.adam[1:])
    losses, correct = np.empty(steps, x.dtype), np.empty(steps, np.int64)
    times = []
    for _ in range(4):  # the first compiles and warms up
        start = time.perf_counter()
        loop(s.chain, batches, 0, adam, s.scratch, s.pieces, losses, correct)
        times.append((time.perf_counter() - start) / steps * 1e6)
    return statistics.median(times[1:])


def python_per_chunk(x, y, batch_size, threads):
    """Microseconds per chunk that run_epoch spends outside train_steps, over one epoch."""
    from nn.fast import trainer
    from nn.fast.threads import ThreadChoice

    model = dense_chain((784, 128, 32, 10), "numba")
    fused = trainer.FusedTrainer(model, trainer.chain_layers(model), x)
    fused.threads, fused.choice = threads, ThreadChoice(threads, adaptive=False)
    inner, real = [], fused.steps

    class Timed:
        def __getattr__(self, name):
            return getattr(real, name)

        def train_steps(self, *args):
            start = time.perf_counter()
            real.train_steps(*args)
            inner.append(time.perf_counter() - start)

    fused.steps = Timed()
    order = np.random.default_rng(0).permutation(len(x)).astype(np.int64)  # as fit shuffles
    fused.run_epoch(x, y, order, batch_size, [])  # warm-up
    inner.clear()
    start = time.perf_counter()
    fused.run_epoch(x, y, order, batch_size, [])
    total = time.perf_counter() - start
    return (total - sum(inner)) / len(inner) * 1e6, len(inner), total


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", default=f"1,{numba.config.NUMBA_NUM_THREADS}")
    parser.add_argument("--json", default=None)
    parser.add_argument("--only", default="", help="time only the phases whose names contain this")
    args = parser.parse_args()
    (x, y), _ = load_mnist()
    x = np.ascontiguousarray(x.reshape(len(x), -1))
    nonzeros = np.count_nonzero(x[:args.batch_size])
    work = {"first layer forward": f"{nonzeros * 128 / 1e3:.0f} k multiply-adds",
            "first-layer gradient": f"{nonzeros * 128 / 1e3:.0f} k multiply-adds",
            "later layers and loss": f"{args.batch_size * (128 * 32 + 32 * 10) * 3 / 1e3:.0f} k "
                                     "multiply-adds",
            "Adam": f"{104938 * 28 / 1e6:.2f} MB streamed"}
    rows = []
    with flushed():  # subnormals flushed to zero, as train_steps runs the steps (NN_FLUSH_SUBNORMALS)
        budget(args, x, y, work, rows)
    write_json(args.json, {"batch_size": args.batch_size, "repeats": REPEATS, "rounds": ROUNDS,
                           "flush_subnormals": config.FLUSH_SUBNORMALS, "rows": rows})


def budget(args, x, y, work, rows):
    """Time every phase on each thread count of args.threads into rows, printing as it goes."""
    for threads in [int(t) for t in args.threads.split(",")]:
        numba.set_num_threads(threads)
        set_blas_threads(1)  # as the trainer on this path: BLAS's small products on one thread
        s = state(x, y, args.batch_size, threads)
        for name, func in PHASES:
            if threads > 1 and name in ("later layers and loss", "first-layer gradient", "Adam"):
                continue  # serial phases: the same code on any thread count
            if args.only not in name:
                continue
            rows.append({"threads": threads, "phase": name, "us": time_phase(func, s),
                         "work": work.get(name, "")})
            print(f"threads {threads}  {name:40s} {rows[-1]['us']:8.1f} us  {rows[-1]['work']}",
                  flush=True)
        for name, loop in (("serial_steps", serial_steps), ("sparse_steps", sparse_steps)):
            if threads > 1 and loop is serial_steps:
                continue  # one thread only
            if args.only not in f"whole step, an epoch's batches ({name})":
                continue
            rows.append({"threads": threads, "phase": f"whole step, an epoch's batches ({name})",
                         "us": epoch_steps(s, x, y, args.batch_size, loop),
                         "work": "compiled loop, shuffled order"})
            print(f"threads {threads}  {rows[-1]['phase']:40s} {rows[-1]['us']:8.1f} us  "
                  f"{rows[-1]['work']}", flush=True)
        if args.only not in "Python per chunk":
            continue
        per_chunk, chunks, epoch = python_per_chunk(x, y, args.batch_size, threads)
        rows.append({"threads": threads, "phase": "Python per chunk", "us": per_chunk,
                     "work": f"{chunks} chunks, epoch {epoch:.3f} s"})
        print(f"threads {threads}  {'Python per chunk':40s} {per_chunk:8.1f} us  "
              f"{rows[-1]['work']}", flush=True)


if __name__ == "__main__":
    main()
