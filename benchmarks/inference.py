"""Inference: predict throughput on the test set and single-image latency, per backend.

    python benchmarks/inference.py --json inference.json

Throughput: images per second of model.predict over the 10,000 test images
at each --batch-sizes (median of --repeats after a warm-up). Latency: the
median and 99th percentile of --calls predict calls on one image, the way a
service answering one request at a time would call it.
"""

import argparse
import statistics
import time

import numpy as np

from _common import load_mnist, table, write_json

BACKENDS = "numba,numpy"
BATCH_SIZES = "32,1024,10000"
REPEATS = 5
CALLS = 2000


def measure(backend, x_test, batch_sizes, repeats, calls):
    """Rows of throughput per batch size and one row of single-image latency."""
    from nn.recipe import seed_model

    model, rows = seed_model(seed=0, backend=backend), []
    for batch_size in batch_sizes:
        model.predict(x_test[:batch_size], batch_size=batch_size)  # warm-up (compiles)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model.predict(x_test, batch_size=batch_size)
            times.append(time.perf_counter() - start)
        rows.append({"backend": backend, "batch_size": batch_size,
                     "images_per_second": len(x_test) / statistics.median(times)})
    one, lat = x_test[:1], []
    for _ in range(calls // 10):
        model.predict(one)
    for _ in range(calls):
        start = time.perf_counter()
        model.predict(one)
        lat.append(time.perf_counter() - start)
    rows.append({"backend": backend, "batch_size": 1, "latency_us_median": 1e6 * statistics.median(lat),
                 "latency_us_p99": 1e6 * float(np.percentile(lat, 99))})
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default=BACKENDS)
    parser.add_argument("--batch-sizes", default=BATCH_SIZES)
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--calls", type=int, default=CALLS)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    _, (x_test, _) = load_mnist()
    rows = []
    for backend in args.backends.split(","):
        rows += measure(backend, x_test, [int(b) for b in args.batch_sizes.split(",")],
                        args.repeats, args.calls)
    print(table(rows, [("backend", "backend", "{}"), ("batch_size", "batch", "{}"),
                       ("images_per_second", "images/s", "{:,.0f}"),
                       ("latency_us_median", "latency us (median)", "{:.1f}"),
                       ("latency_us_p99", "latency us (p99)", "{:.1f}")]))
    write_json(args.json, {"repeats": args.repeats, "calls": args.calls, "rows": rows})


if __name__ == "__main__":
    main()
