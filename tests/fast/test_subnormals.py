"""Flushing subnormals in the fused steps (nn.fast.subnormals): what it changes, and that it is undone.

A subnormal is a float below the smallest normal one (float32: 1.2e-38). On
the fast path, train_steps flushes them to zero (MXCSR's FTZ and DAZ bits),
as XLA and TensorFlow do; with NN_FLUSH_SUBNORMALS=0 it keeps IEEE
arithmetic. The first test builds the case MNIST training makes thousands
of times: an input column that is zero in every batch, whose weights' Adam
moments decay by 0.9 a step, starting in the subnormal range. Flushed, those
moments become 0 and nothing else changes; not flushed, they are the twin's
IEEE values. The others check that every thread gets back the mode it had.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from nn.fast import steps as twin
from nn.optimizers import Adam

numba_steps = pytest.importorskip("nn.fast.numba_steps")
subnormals = pytest.importorskip("nn.fast.subnormals")
from numba import njit  # noqa: E402

pytestmark = pytest.mark.skipif(not subnormals.X86_64, reason="the flush bits are x86-64's MXCSR")


def blank_column_problem(dtype):
    """A 3-layer chain whose last input column is zero in every example, its W1 row's first
    moments subnormal: (Chain arguments, Batches, AdamSteps, slice of that row in the flats)."""
    rng = np.random.default_rng(7)
    n, sizes, batch = 24, (9, 6, 5, 3), 4
    x = rng.standard_normal((n, sizes[0])).astype(dtype)
    x[rng.random(x.shape) < 0.5] = 0
    x[:, -1] = 0  # a pixel never inked: its W1 row's gradient is exactly 0 every step (the
    # last row: on two threads a worker's, not the calling thread's, moves it)
    shapes = np.array(list(zip(sizes[:-1], sizes[1:])), np.int64)
    w = (0.3 * rng.standard_normal(sum(i * o + o for i, o in shapes.tolist()))).astype(dtype)
    m, v = np.zeros_like(w), np.zeros_like(w)
    row = slice((sizes[0] - 1) * sizes[1], sizes[0] * sizes[1])
    tiny = np.finfo(dtype).tiny  # smallest normal
    m[row] = tiny * np.linspace(0.3, 0.99, sizes[1]).astype(dtype)  # subnormal, decaying further
    v[row] = dtype(1e-6)
    steps = n // batch
    adam = twin.AdamSteps(Adam().alphas(1, steps, dtype), *Adam().coefficients(1, dtype)[1:])
    batches = twin.Batches(x, rng.integers(0, 3, n), rng.permutation(n).astype(np.int64), batch,
                           *twin.nonzero_rows(x))
    return (shapes, np.array([True, True, False]), w, m, v), batches, adam, row


def run(module, problem, threads, flush, monkeypatch):
    """module.train_steps on a copy of the problem's chain, with NN_FLUSH_SUBNORMALS=flush."""
    (shapes, relu, w, m, v), batches, adam, _ = problem
    chain = twin.Chain(shapes, relu, w.copy(), m.copy(), v.copy(), np.empty_like(w))
    steps = len(adam.alphas)
    losses, correct = np.empty(steps, w.dtype), np.empty(steps, np.int64)
    monkeypatch.setattr(numba_steps.config, "FLUSH_SUBNORMALS", flush)  # read at each call
    module.train_steps(chain, batches, 0, adam, threads, losses, correct)
    return chain, losses


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_flushing_zeroes_the_subnormal_moments_and_changes_nothing_else(dtype, threads, monkeypatch):
    problem = blank_column_problem(dtype)
    row, tiny = problem[3], np.finfo(dtype).tiny
    ieee, _ = run(numba_steps, problem, threads, False, monkeypatch)
    want, _ = run(twin, problem, threads, False, monkeypatch)  # the twin: NumPy, always IEEE
    assert ieee.m[row].tobytes() == want.m[row].tobytes()  # (m + (0 - m) * 0.1: no BLAS in it)
    assert np.all((ieee.m[row] != 0) & (np.abs(ieee.m[row]) < tiny)), "the case must be subnormal"
    flushed, _ = run(numba_steps, problem, threads, True, monkeypatch)
    assert np.all(flushed.m[row] == 0)
    rest = np.ones(len(ieee.m), bool)
    rest[row] = False
    for name in ("w", "m", "v", "grads"):  # every other bit as IEEE gave it
        a, b = getattr(flushed, name), getattr(ieee, name)
        assert (a[rest] if name == "m" else a).tobytes() == (b[rest] if name == "m" else b).tobytes(), name


@njit
def scaled(x, out):
    """out = x[0] * x[1], x[2] * x[3] in x's dtype. Arrays, not scalars: a float32 scalar
    crosses into numba through a float64, whose conversion the mode would flush too."""
    out[0], out[1] = x[0] * x[1], x[2] * x[3]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_flushing_reads_subnormals_as_zero_and_makes_none(dtype):
    tiny = np.finfo(dtype).tiny
    x = np.array([tiny / 4, 2.0 ** 100, tiny * 1.5, 0.5], dtype)  # a subnormal; tiny * 1.5 / 2 too
    flushed, ieee = np.empty(2, dtype), np.empty(2, dtype)
    with subnormals.flushed(True):
        scaled(x, flushed)
    with subnormals.flushed(False):
        scaled(x, ieee)
    # (compared outside the blocks: with DAZ on, NumPy's == reads a subnormal as 0)
    assert flushed.tolist() == [0, 0]  # DAZ gave the first, FTZ the second: each needs its bit
    assert ieee.tolist() == [dtype(tiny / 4) * dtype(2.0 ** 100), dtype(tiny * 0.75)]  # exact


POOL = """
import numpy as np
from tests.fast.test_subnormals import blank_column_problem
from nn.fast import numba_steps, subnormals, steps as twin
(shapes, relu, w, m, v), batches, adam, _ = blank_column_problem(np.float32)
chain = twin.Chain(shapes, relu, w, m, v, np.empty_like(w))
losses, correct = np.empty(6, np.float32), np.empty(6, np.int64)
if {threads} == 1:  # as a run fixed on one thread, once the parallel steps are compiled
    numba_steps.compile_parallel(chain, batches, adam, numba_steps.scratch_for(chain, batches, 2),
                                 losses, correct)
# the first parallel region of this process (sparse_steps, as {threads} task(s)): the pool starts here
numba_steps.train_steps(chain, batches, 0, adam, {threads}, losses, correct)
out = np.empty(64, np.uint32)
subnormals.task_modes(out)
print(subnormals.task_mode(), sorted(set(out.tolist())))
"""


@pytest.mark.parametrize("threads", [2, 1])
def test_threads_the_pool_starts_during_training_do_not_keep_the_flushing_mode(threads):
    """In a new process, training starts numba's pool, on one task too: a thread OpenMP started
    inside the flushed block would inherit the flushing mode and keep it (each task restores
    what it found)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run([sys.executable, "-c", POOL.format(threads=threads)], capture_output=True,
                          text=True, cwd=root, env=dict(os.environ, PYTHONPATH=root, NN_FLUSH_SUBNORMALS="1"),
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["0", "[0]"], done.stdout


def test_every_thread_gets_its_mode_back_even_when_train_steps_raises(monkeypatch):
    problem = blank_column_problem(np.float32)
    before = subnormals.task_mode()
    run(numba_steps, problem, 2, True, monkeypatch)
    assert subnormals.task_mode() == before
    out = np.empty(64, np.uint32)  # 64 tasks: every thread of numba's pool takes some
    subnormals.task_modes(out)
    assert np.all(out == before), "a parallel task left a thread flushing"
    (shapes, relu, w, m, v), batches, adam, _ = problem
    small = numba_steps.scratch_for(twin.Chain(shapes, relu, w, m, v, w.copy()), batches, 1)
    small = small._replace(starts=small.starts[:0])  # too few tiles: train_steps refuses
    with pytest.raises(ValueError, match="tiles"):
        numba_steps.train_steps(twin.Chain(shapes, relu, w, m, v, w.copy()), batches, 0, adam, 2,
                                np.empty(6, np.float32), np.empty(6, np.int64), small)
    assert subnormals.task_mode() == before


def test_a_thread_already_flushing_keeps_ieee_inside_when_asked_and_flushes_again_after(monkeypatch):
    problem = blank_column_problem(np.float32)  # before: the mode flushes NumPy's results too
    old = subnormals.set_mode(subnormals.FLUSH)
    try:
        ieee, _ = run(numba_steps, problem, 1, False, monkeypatch)
        inside = subnormals.task_mode()
    finally:
        subnormals.set_mode(old)
    assert inside == subnormals.FLUSH and subnormals.task_mode() == old & subnormals.FLUSH
    assert np.all(ieee.m[problem[3]] != 0)  # IEEE inside, though the caller flushes (checked
    # after the restore: with DAZ on, NumPy's != reads a subnormal as 0)
