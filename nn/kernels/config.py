"""Every numba flag in one place, read once from the environment at import.

NN_NUMBA_CACHE=0 turns off the on-disk cache of compiled code (default on, so a
new process skips compilation); NN_NUM_THREADS caps the threads of the
parallel kernels (default: numba's, one per core). Changing a flag means a new
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

#: Threads for the parallel kernels (the fused training step). Work is split
#: into fixed, contiguous ranges and no sum crosses a range, so results are
#: bit-identical for any thread count.
NUM_THREADS = int(os.environ.get("NN_NUM_THREADS", "0") or 0) or None


def thread_settings():
    """What decides the threads in a run: numba's count and layer, BLAS env vars."""
    settings = {k: os.environ.get(k) for k in (
        "NN_NUM_THREADS", "NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER", "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY")}
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
