"""Every numba flag in one place, read once from the environment at import.

NN_NUMBA_CACHE=0 turns off the on-disk cache of compiled code (default on, so a
new process skips compilation); NN_NUM_THREADS sets the threads of the
fused step's Adam (default 1, see below); NN_BLAS_THREADS those of the BLAS
behind numba's np.dot (default 1); NN_SKIP_ZEROS=0 makes the
fused trainer visit zero inputs too. Changing a flag means a new
process: numba bakes them into the compiled code.
"""

import os

#: Cache compiled machine code next to the source (__pycache__/*.nbi, *.nbc).
CACHE = os.environ.get("NN_NUMBA_CACHE", "1") != "0"

#: Only "contract" (a*b + c may become one fused multiply-add). No
#: reassociation, so every loop still sums in the order it is written and a
#: result does not depend on how LLVM vectorizes or on the thread count. Used
#: for the hand-written matmul loops; Adam and the softmax get no fastmath at
#: all so they round exactly as their NumPy twins do.
FASTMATH_MATMUL = {"contract"}

#: Options every kernel is compiled with. error_model="numpy" makes x / 0
#: give inf or nan as NumPy does instead of raising; it also drops the zero
#: test before each division, without which LLVM will not vectorize Adam.
JIT = {"cache": CACHE, "error_model": "numpy"}
#: The same plus fused multiply-add, for the matmul-like loops.
JIT_MATMUL = dict(JIT, fastmath=FASTMATH_MATMUL)

#: Threads for the fused step's Adam (NN_NUM_THREADS, default 1). Work is
#: split into fixed contiguous ranges and no sum crosses a range, so results
#: are bit-identical for any count. One by default: a step at batch 32 takes
#: ~0.1-0.3 ms, and a parallel region per step (1,500 an epoch) costs more
#: than it saves whenever another process holds the other core, as on a
#: shared 2-core machine (docs/benchmarks.md has the measurement). BLAS
#: still uses every core for the large matrix products (batch 1024).
NUM_THREADS = max(1, int(os.environ.get("NN_NUM_THREADS", "1") or 1))


#: Threads of the BLAS that numba's np.dot calls (SciPy's bundled OpenBLAS,
#: separate from NumPy's): NN_BLAS_THREADS, default 1. OpenBLAS goes
#: multi-threaded above ~2.6e5 multiply-adds (batch-128 layer 2, batch-32
#: layer 1 on dense inputs); on a shared 2-core machine its spinning threads
#: then cost 10-40x more than they save (docs/benchmarks.md: batch 128 took
#: 2.9-4.0 s an epoch with them, 0.29 s without). NumPy's own BLAS is untouched.
BLAS_THREADS = max(1, int(os.environ.get("NN_BLAS_THREADS", "1") or 1))

#: Let the fused trainer skip the first layer's zero inputs (NN_SKIP_ZEROS=0
#: turns it off). Skipped terms are exact zeros, so results are those of the
#: dense sums in the same order; only the time changes. Benchmarks report both.
SKIP_ZEROS = os.environ.get("NN_SKIP_ZEROS", "1") != "0"


def thread_settings():
    """What decides the threads in a run: numba's count and layer, BLAS env vars."""
    settings = {k: os.environ.get(k) for k in (
        "NN_NUM_THREADS", "NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER", "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY", "NN_BLAS_THREADS")}
    settings.update(fused_adam_threads=NUM_THREADS, numba_blas_threads=BLAS_THREADS)
    try:
        import numba
    except ImportError:
        return settings
    settings["numba_threads"] = numba.get_num_threads()
    try:
        settings["numba_threading_layer"] = numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet in this process
        settings["numba_threading_layer"] = None
    return settings
