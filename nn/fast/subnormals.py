"""Fast engine: subnormal floats flushed to zero while the fused steps run, as XLA and TensorFlow do.

A subnormal (denormal) float is one below the smallest normal number, 1.2e-38
in float32 and 2.2e-308 in float64. Intel cores take a microcode assist, on
the order of a hundred cycles, for many instructions that read or make one
(the AMD Zen 5 this engine was first tuned on showed no such cost in its
step budgets). In MNIST training they come from Adam: the first moment m of
a weight whose pixel is absent from the batch shrinks by 0.9 a step
(m + (0 - m) * 0.1), and in IEEE arithmetic it never reaches zero: after
about 135 steps below 1.2e-38 it stalls at 4 x 2^-149 (6e-45, where the
product rounds back up), and stays subnormal until its pixel comes back.
About 5,000 of W1's 100,352 moments are subnormal at any time, and on the
2-core Xeon (Emerald Rapids) the assists took 60% of a batch-32 epoch on one
thread (0.90 s against 0.37 s; docs/benchmarks.md).

x86's MXCSR register has two bits for this: FTZ (results that would be
subnormal are 0) and DAZ (subnormal inputs are read as 0). XLA (so JAX) and
TensorFlow (so Keras) set both in their CPU threads; PyTorch leaves them off
unless `torch.set_flush_denormal(True)`. nn's fused steps set them for the
length of each `train_steps` call (`flushed`), on the calling thread and,
copied from it, in every parallel task (`task_mode`, `set_mode`), and
restore what each thread had after: the user's own NumPy and numba code is
not affected. A new thread starts with the mode of the thread that starts
it, so numba's pool must not grow inside the block: `start_threads` has it
start all its threads first, outside it. (OpenBLAS's own threads, which the
BLAS path's large products may use, keep their own mode: there only the
products on the calling thread, and Adam, flush.) `NN_FLUSH_SUBNORMALS=0`
keeps IEEE gradual underflow (slower on Intel).

What it changes: only values that would be subnormal. A flushed m of about
1e-39 moves its weight by m * alpha / (sqrt(v) + eps), about 1e-35, which
rounds away against any weight above about 1e-27 in float32, so the
weights stay bit for bit those of IEEE arithmetic unless a weight is itself
that small (measured in docs/benchmarks.md: 0 of 104,938 weights differ
after 4 epochs). The NumPy engine and the kernels' twins keep IEEE
arithmetic; the twin tests run on data without subnormals, where the two
agree to the bit, and tests/fast/test_subnormals.py pins what flushing does
where they differ.

On CPUs other than x86-64 the mode is left alone: the steps compute with
the IEEE rules there, possibly slower.
"""

import contextlib
import platform

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from nn.fast import config
from nn.fast.config import JIT

X86_64 = platform.machine().lower() in ("x86_64", "amd64")
FTZ, DAZ = 1 << 15, 1 << 6  # MXCSR's flush-to-zero and denormals-are-zero bits
FLUSH = FTZ | DAZ


def _mxcsr_call(builder, name, slot):
    """Call llvm.x86.sse.{stmxcsr,ldmxcsr} on the 4-byte slot (both take an i8*)."""
    i8p = ir.IntType(8).as_pointer()
    fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p]), name)
    builder.call(fn, [builder.bitcast(slot, i8p)])


@intrinsic
def _read_mxcsr(typingctx):
    """This thread's MXCSR (0 on other CPUs)."""
    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        if not X86_64:
            return i32(0)
        slot = cgutils.alloca_once(builder, i32)
        _mxcsr_call(builder, "llvm.x86.sse.stmxcsr", slot)
        return builder.load(slot)

    return types.uint32(), codegen


@intrinsic
def _swap_flush_bits(typingctx, bits):
    """Set MXCSR's FTZ and DAZ bits to those of `bits` on this thread, the rest unchanged;
    return the old MXCSR (on other CPUs a no-op returning 0)."""
    def codegen(context, builder, signature, args):
        (new,) = args
        i32 = ir.IntType(32)
        if not X86_64:
            return i32(0)
        slot = cgutils.alloca_once(builder, i32)
        _mxcsr_call(builder, "llvm.x86.sse.stmxcsr", slot)
        old = builder.load(slot)
        mixed = builder.or_(builder.and_(old, i32(~FLUSH & 0xFFFFFFFF)), builder.and_(new, i32(FLUSH)))
        builder.store(mixed, slot)
        _mxcsr_call(builder, "llvm.x86.sse.ldmxcsr", slot)
        return old

    return types.uint32(types.uint32), codegen


@njit(**JIT)
def set_mode(bits):
    """Give this thread the FTZ and DAZ bits of `bits`; return the MXCSR it had (for a restore)."""
    return _swap_flush_bits(np.uint32(bits))


@njit(**JIT)
def task_mode():
    """This thread's FTZ and DAZ bits: read on the calling thread, then set in each parallel task."""
    return _read_mxcsr() & FLUSH


@contextlib.contextmanager
def flushed(on=None):
    """Inside the block this thread flushes subnormals to zero (on) or keeps IEEE gradual
    underflow (not on); after it, the thread's mode is what it was. on: default
    NN_FLUSH_SUBNORMALS (config.FLUSH_SUBNORMALS)."""
    old = None
    try:
        old = set_mode(FLUSH if (config.FLUSH_SUBNORMALS if on is None else on) else 0)
        yield
    finally:
        if old is not None:
            set_mode(old)


@njit(parallel=True, **JIT)
def task_modes(modes):
    """modes[p] = the mode task p of a parallel loop over modes' length runs with (task_mode)."""
    for p in prange(modes.shape[0]):
        modes[p] = task_mode()


_started = False  # whether start_threads has had numba's whole pool run at once


def start_threads():
    """Have every thread of numba's pool run a task, once per process, so that they all exist.

    Call it outside `flushed`: a thread that OpenMP (numba's threading layer
    here) starts inside would take the flushing mode from the calling thread
    and keep it, since each task restores the mode it found.
    """
    global _started
    if not _started:
        count, most = numba.get_num_threads(), numba.config.NUMBA_NUM_THREADS
        numba.set_num_threads(most)
        try:
            task_modes(np.zeros(most, np.uint32))
        finally:
            numba.set_num_threads(count)
        _started = True
