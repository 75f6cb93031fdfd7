"""Fast engine: every numba and fused-engine flag in one place, read once at import.

NN_NUMBA_CACHE=0|1 turns the on-disk cache of compiled code off or on (default
on, so a new process skips compilation); NN_NUM_THREADS sets the threads of the
fused steps (unset or 0: up to every core, and on the compressed-row path
each part's count chosen from measured step times) and NN_BLAS_THREADS those of the BLAS behind numba's
np.dot outside training (each a positive integer; unset or 0: every core); NN_SKIP_ZEROS=0|1|auto
decides whether the fused trainer skips zero inputs; NN_FLUSH_SUBNORMALS=0|1
whether the fused steps flush subnormal floats to zero (default 1, as XLA and
TensorFlow do; nn.fast.subnormals).

Flags are read once, at import, and a bad value never breaks `import nn`: it is
recorded (the flag keeps its default meanwhile), and `check()` raises InputError
naming the variable and the values it accepts. Every user of the flags calls it
first: loading the numba backend (nn.fast.numba_kernels), the fused trainer
(through `skip_zeros()`) and the command line, so nothing runs with a guessed
setting.
"""

import os

import numpy as np

from nn.errors import InputError


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _threads(var):
    """(count, problem) for thread-count variable `var`: unset, empty or 0 mean every core."""
    text = os.environ.get(var, "").strip()
    try:
        count = int(text or 0)
    except ValueError:
        count = -1
    if count < 0:
        return _cores(), f"{var} must be a positive integer (or 0 for every core); got {text!r}"
    return count or _cores(), None


def _switch(var, what):
    """(on, problem) for a 0|1 variable `var` (default 1); what: (meaning of 0, meaning of 1)."""
    text = os.environ.get(var, "").strip() or "1"
    if text not in ("0", "1"):
        return True, f"{var} must be 0 ({what[0]}) or 1 ({what[1]}); got {text!r}"
    return text == "1", None


#: Only "contract" (a*b + c may become one fused multiply-add). No
#: reassociation, so every loop still sums in the order it is written and a
#: result does not depend on how LLVM vectorizes or on the thread count. Used
#: for the hand-written matmul loops; Adam and the softmax get no fastmath at
#: all so they round exactly as their NumPy twins do.
FASTMATH_MATMUL = {"contract"}

CACHE, _CACHE_PROBLEM = _switch("NN_NUMBA_CACHE", ("cache off", "cache on"))

#: Flush subnormal floats to zero in the fused steps (NN_FLUSH_SUBNORMALS=1,
#: the default), as XLA and TensorFlow do on CPU; 0 keeps IEEE gradual
#: underflow. Read at each train_steps call, not compiled in; see
#: nn.fast.subnormals for why (Intel's microcode assists) and what it changes.
FLUSH_SUBNORMALS, _FLUSH_PROBLEM = _switch("NN_FLUSH_SUBNORMALS", ("IEEE subnormals", "flush them to zero"))

#: Options every kernel is compiled with. error_model="numpy" makes x / 0
#: give inf or nan as NumPy does instead of raising; it also drops the zero
#: test before each division, without which LLVM will not vectorize Adam.
JIT = {"cache": CACHE, "error_model": "numpy"}
#: The same plus fused multiply-add, for the matmul-like loops.
JIT_MATMUL = dict(JIT, fastmath=FASTMATH_MATMUL)

#: Threads of the fused steps (default: every core this process may use).
#: On the compressed-row path the work is cut into fixed ranges and no sum
#: crosses a range, so results are bit-identical for any count, and by default
#: the trainer moves between counts (nn.fast.threads): on a machine shared with
#: other busy processes it falls back to one thread instead of waiting for one
#: that has lost its core. The BLAS path's sums depend on OpenBLAS's thread
#: count, so there a fit keeps one count.
NUM_THREADS, _NUM_PROBLEM = _threads("NN_NUM_THREADS")
#: Unset or 0: on the compressed-row path the trainer chooses each part's
#: count, up to NUM_THREADS, from measured step times (nn.fast.threads); the
#: BLAS path keeps NUM_THREADS. A count given is used as it is.
ADAPTIVE_THREADS = os.environ.get("NN_NUM_THREADS", "").strip() in ("", "0")

#: How long an idle OpenMP thread (numba's threading layer here) spins
#: before it sleeps: GNU OpenMP's default, 300,000 turns of its wait loop,
#: burnt 10-20 ms of a core after every parallel region measured here. Under
#: load that spinning thread takes the core from the process that shares it
#: and from our own calling thread: at batch 1024 with another process busy,
#: a two-thread step took 16 ms with the default and 8-10 ms at 30,000, and
#: the one-thread steps after it 9 ms against 4.5 ms. 30,000 turns (1-2 ms)
#: still span the gaps between a step's two parallel regions and between
#: parts, so a quiet machine's threads never sleep mid-chunk. Set by
#: `shorter_spinning` when the numba backend loads (nn.fast.numba_kernels),
#: not when nn is imported.
SPIN_COUNT = "30000"
SPIN_SET = False  # whether shorter_spinning set GOMP_SPINCOUNT in this process


def shorter_spinning():
    """Set GOMP_SPINCOUNT to SPIN_COUNT for numba's OpenMP threads, once, if it can still count.

    GNU OpenMP reads it when it loads, which numba does when it first starts
    its threads: after that, or when GOMP_SPINCOUNT or OMP_WAIT_POLICY is
    already in the environment, this does nothing. True when it set it. The
    process environment is shared: libraries loading OpenMP later (and child
    processes) see it too.
    """
    global SPIN_SET
    if SPIN_SET or "GOMP_SPINCOUNT" in os.environ or "OMP_WAIT_POLICY" in os.environ:
        return False
    try:
        import numba.np.ufunc.parallel as pool
    except ImportError:
        return False
    if getattr(pool, "_is_initialized", True):  # numba's threads (and OpenMP) already started
        return False
    os.environ["GOMP_SPINCOUNT"], SPIN_SET = SPIN_COUNT, True
    return True


#: Threads of the BLAS that numba's np.dot calls (SciPy's bundled OpenBLAS,
#: separate from NumPy's) outside training, i.e. in predict and evaluate:
#: default every core, as NumPy's own BLAS. Training sets it per path
#: (nn.fast.trainer): 1 on the compressed-row path, whose BLAS products are small
#: and whose numba threads have the cores, and every core on the BLAS path,
#: whose numba threads then stay idle.
BLAS_THREADS, _BLAS_PROBLEM = _threads("NN_BLAS_THREADS")

_PROBLEMS = [p for p in (_CACHE_PROBLEM, _FLUSH_PROBLEM, _NUM_PROBLEM, _BLAS_PROBLEM) if p]

#: Skip the first layer's zero inputs: NN_SKIP_ZEROS=1 always, 0 never, auto
#: (default) when at most SKIP_ZEROS_DENSITY of the training inputs are
#: nonzero. The compiled loops over nonzeros then beat BLAS on every input at
#: every batch size measured (MNIST, 19% nonzero: 0.23 s against 0.39 s an
#: epoch at batch 32, 0.15 s against 0.19 s at batch 1024); on denser data the
#: first layer's share of the step (about 60% at 19%) grows with the density
#: and BLAS wins from about a third. Skipped terms are exact zeros, so results
#: are those of the dense sums; only the time changes.
SKIP_ZEROS = os.environ.get("NN_SKIP_ZEROS", "auto")
SKIP_ZEROS_DENSITY = 1 / 3


def check():
    """Raise InputError naming every nn environment setting whose value is refused."""
    problems = list(_PROBLEMS)
    if SKIP_ZEROS not in ("0", "1", "auto"):
        problems.append(f"NN_SKIP_ZEROS must be 0, 1 or auto; got {SKIP_ZEROS!r}")
    if problems:
        raise InputError("; ".join(problems))


def skip_zeros(x):
    """Whether the fused trainer takes the compressed-row path for training inputs x."""
    check()
    if SKIP_ZEROS != "auto":
        return SKIP_ZEROS == "1"
    return np.count_nonzero(x) <= SKIP_ZEROS_DENSITY * x.size


def thread_settings():
    """What decides the threads in a run: numba's count and layer, BLAS env vars."""
    settings = {k: os.environ.get(k) for k in (
        "NN_NUM_THREADS", "NUMBA_NUM_THREADS", "NUMBA_THREADING_LAYER", "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "NN_BLAS_THREADS", "NN_SKIP_ZEROS",
        "NN_FLUSH_SUBNORMALS")}
    settings.update(fused_threads=NUM_THREADS, adaptive_threads=ADAPTIVE_THREADS, gomp_spincount_set_by_nn=SPIN_SET,
                    numba_blas_threads=BLAS_THREADS, flush_subnormals=FLUSH_SUBNORMALS,
                    skip_zeros_density=SKIP_ZEROS_DENSITY if SKIP_ZEROS == "auto" else None)
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
