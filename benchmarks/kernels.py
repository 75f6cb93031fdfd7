"""Every kernel of nn.fast.registry against its NumPy twin, at the seed network's batch-32 sizes.

    python benchmarks/kernels.py [--kernels adam_update,train_steps] [--json kernels.json]

The registry that drives the twin tests drives this table: each kernel is
called once to compile (that time is reported on its own), then REPEATS
times on fresh copies of its inputs; the figure is the median with the IQR.
"""

import argparse
import time

import numpy as np
from _common import spread, table, write_json

from nn.fast.registry import KERNELS, copied, load

REPEATS = 21


def seconds(func, args):
    """(first call's seconds, spread of the next REPEATS calls), each on a fresh copy of args."""
    start = time.perf_counter()
    func(*copied(args))
    first, times = time.perf_counter() - start, []
    for _ in range(REPEATS):
        mine = copied(args)  # not timed: in-place kernels must not see their own output
        start = time.perf_counter()
        func(*mine)
        times.append(time.perf_counter() - start)
    return first, spread(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kernels", default=",".join(k.name for k in KERNELS))
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    wanted = args.kernels.split(",")
    rows = []
    for kernel in [k for k in KERNELS if k.name in wanted]:
        inputs = kernel.sample(np.random.default_rng(0), np.float32, "seed")
        first, fast = seconds(load(kernel.fast), inputs)
        _, twin = seconds(load(kernel.twin), inputs)
        rows.append({"kernel": kernel.name, "fast_us": fast["median"] * 1e6,
                     "fast_iqr_us": fast["iqr"] * 1e6, "twin_us": twin["median"] * 1e6,
                     "speedup": twin["median"] / fast["median"], "first_call_s": first,
                     "fast": fast, "twin": twin})
        print(f"{kernel.name}: {rows[-1]['fast_us']:.1f} us (twin {rows[-1]['twin_us']:.1f} us)",
              flush=True)
    print(table(rows, [("kernel", "kernel", "{}"), ("fast_us", "numba us", "{:.1f}"),
                       ("fast_iqr_us", "IQR us", "{:.1f}"), ("twin_us", "NumPy twin us", "{:.1f}"),
                       ("speedup", "x twin", "{:.1f}"),
                       ("first_call_s", "first call s (compile)", "{:.2f}")]))
    write_json(args.json, {"dtype": "float32", "sizes": "seed, batch 32", "repeats": REPEATS,
                           "rows": rows})


if __name__ == "__main__":
    main()
