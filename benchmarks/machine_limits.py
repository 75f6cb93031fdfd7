"""This machine's limits for a training step: FMA rate and memory bandwidth, one core and all.

    python benchmarks/machine_limits.py [--json limits.json]

The per-step budget in docs/benchmarks.md divides each phase's work by these
figures. Each figure is the median of REPEATS timed calls after a warm-up call
(compilation excluded):

- fma: float32 multiply-adds per second of a compiled loop that loads,
  multiply-adds and stores a 1 KB vector in L1, the shape of the first
  layer's sums (o[j] += a * w[j]);
- stream: bytes per second of an Adam-shaped pass (read 4 arrays, write 3) over
  arrays of ADAM_PARAMS float32, the seed network's parameter count: its
  working set (2.9 MB) sits in L2 and L3, as Adam's does in training;
- dram: the same pass over arrays 64 times larger (DRAM-resident).

"all cores" runs one copy per core with prange; each figure is the total.

Every figure is also given as its repeats' median and interquartile range,
and the FMA rates are measured in alternating pairs (one core, then all),
whose per-pair ratio says how many cores the machine really gives: on a
virtual machine whose host is shared, the second core can come and go.
"""

import argparse
import statistics
import time

import numba
import numpy as np
from _common import spread, write_json
from numba import njit, prange

REPEATS = 15
ADAM_PARAMS = 104_938  # the seed network's weights and biases
FMA_ITERS = 200_000  # 51 M multiply-adds a call: a few ms


@njit(fastmath={"contract"})
def _fma_loop(a, b, iters, acc):
    """iters passes of acc = acc * a + b over an L1-resident (256,) float32 vector.

    A load, a multiply-add and a store per element, as in the first layer's
    loops (o[j] += a * w[j]); a and b are scalars, so nothing aliases and
    LLVM vectorizes it.
    """
    for _ in range(iters):
        for k in range(acc.shape[0]):
            acc[k] = acc[k] * a + b
    return acc.sum()


@njit(parallel=True, fastmath={"contract"})
def _fma_all(a, b, iters, accs):
    total = 0.0
    for p in prange(accs.shape[0]):
        total += _fma_loop(a, b, iters, accs[p])
    return total


@njit(error_model="numpy")  # numpy: no zero test before the division, so it vectorizes
def _adam_pass(w, g, m, v):
    """The Adam pass's memory traffic and arithmetic: read w, g, m, v; write w, m, v."""
    for i in range(w.shape[0]):
        mi = m[i] + (g[i] - m[i]) * np.float32(0.1)
        vi = v[i] + (g[i] * g[i] - v[i]) * np.float32(0.001)
        m[i] = mi
        v[i] = vi
        w[i] -= (mi * np.float32(1e-3)) / (np.sqrt(vi) + np.float32(1e-7))


@njit(parallel=True, error_model="numpy")
def _adam_all(w, g, m, v, pieces):
    n = w.shape[0]
    for p in prange(pieces):
        lo, hi = n * p // pieces, n * (p + 1) // pieces
        _adam_pass(w[lo:hi], g[lo:hi], m[lo:hi], v[lo:hi])


def _seconds(call):
    """The seconds of REPEATS calls after a warm-up call (compilation, page faults)."""
    call()
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def _median_seconds(call):
    return statistics.median(_seconds(call))


def fma_rates(cores):
    """Multiply-adds per second, REPEATS alternating pairs: (one core, `cores` cores) each.

    One core is the calling thread with no parallel region; `cores` cores run
    a copy each in one prange. Returns the two lists of rates.
    """
    a, b = np.float32(0.999), np.float32(1e-3)
    accs = np.ones((cores, 256), np.float32)
    one, every = (lambda: _fma_loop(a, b, FMA_ITERS, accs[0])), (lambda: _fma_all(a, b, FMA_ITERS, accs))
    one(), every()  # compile
    rates = ([], [])
    for _ in range(REPEATS):
        for count, call, out in ((1, one, rates[0]), (cores, every, rates[1])):
            start = time.perf_counter()
            call()
            out.append(count * FMA_ITERS * 256 / (time.perf_counter() - start))
    return rates


def stream_rate(n, cores):
    """Bytes per second of the Adam pass over n float32 parameters on `cores` cores."""
    w, g, m, v = (np.full(n, 0.5, np.float32) for _ in range(4))
    if cores == 1:
        seconds = _median_seconds(lambda: _adam_pass(w, g, m, v))
    else:
        seconds = _median_seconds(lambda: _adam_all(w, g, m, v, cores))
    return 7 * 4 * n / seconds, seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args()
    cores = numba.config.NUMBA_NUM_THREADS
    rows, fma = [], fma_rates(cores)
    for (label, count), rates in zip((("one core", 1), ("all cores", cores)), fma):
        adam_bytes, adam_seconds = stream_rate(ADAM_PARAMS, count)
        dram_bytes, _ = stream_rate(64 * ADAM_PARAMS, count)
        rows.append({"cores": count, "label": label, "fma_per_s": statistics.median(rates),
                     "fma_per_s_spread": spread(rates),
                     "adam_pass_bytes_per_s": adam_bytes, "adam_pass_us": adam_seconds * 1e6,
                     "dram_bytes_per_s": dram_bytes})
    for r in rows:
        q = r["fma_per_s_spread"]
        print(f"{r['label']} ({r['cores']}): {r['fma_per_s'] / 1e9:.1f} G float32 FMA/s "
              f"(IQR {q['q1'] / 1e9:.1f}-{q['q3'] / 1e9:.1f}); "
              f"Adam pass over {ADAM_PARAMS:,} params {r['adam_pass_us']:.1f} us "
              f"({r['adam_pass_bytes_per_s'] / 1e9:.1f} GB/s, cache-resident); "
              f"DRAM-sized pass {r['dram_bytes_per_s'] / 1e9:.1f} GB/s")
    ratios = spread([every / one for one, every in zip(*fma)])
    print(f"all cores / one core, per pair of FMA runs: median {ratios['median']:.2f}x "
          f"(IQR {ratios['q1']:.2f}-{ratios['q3']:.2f}x, range {min(ratios['repeats']):.2f}-"
          f"{max(ratios['repeats']):.2f}x): the cores this machine gave, at the time")
    write_json(args.json, {"repeats": REPEATS, "rows": rows, "core_scaling": ratios})


if __name__ == "__main__":
    main()
