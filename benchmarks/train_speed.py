"""Training speed of the seed recipe: nn (numba, numpy) against Keras, PyTorch and JAX.

    python benchmarks/train_speed.py --frameworks nn-numba,nn-numpy,keras,torch,jax \
        --batch-sizes 32,128,1024 --epochs 4 --json train_speed.json

Each framework runs in its own process (no thread pools fighting), trains on
the same 48,000 examples for --epochs epochs per batch size, and reports the
median epoch after the first (steady state) and the first epoch on its own
(compilation, numba's and XLA's, lands there). Ratios are taken within this
one run, so a busy machine skews them less than absolute seconds.
nn-numba skips the first layer's zero inputs (about 81% of MNIST's pixels,
exact zeros, so the result is that of the dense sums) and uses every core;
nn-numba-dense visits every input through BLAS (NN_SKIP_ZEROS=0), the speed on
dense data; nn-numba-1t is nn-numba on one thread (NN_NUM_THREADS=1).
Effective GFLOP/s always counts the dense FLOP, so nn-numba's includes the
skipped ones.
"""

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys

from _common import flops_per_example, load_mnist, matmul_gflops, table, write_json

FRAMEWORKS = "nn-numba,nn-numba-dense,nn-numba-1t,nn-numpy,keras,torch,jax,jax-step"
BATCH_SIZES = "32,128,1024"
EPOCHS = 4
SEED = 0


def worker(framework, batch_sizes, epochs, seed):
    """Run one framework at every batch size; print one JSON row per batch size."""
    from peers import RUNNERS

    data = load_mnist()
    for batch_size in batch_sizes:
        seconds, accuracy = RUNNERS[framework][1](data, batch_size, epochs, seed)
        print(json.dumps({"framework": framework, "batch_size": batch_size, "epoch_seconds": seconds,
                          "test_accuracy": accuracy}), flush=True)


def summarise(row, examples, peak):
    """Add the medians, the effective GFLOP/s and the fraction of matmul throughput."""
    seconds = row["epoch_seconds"]
    steady = seconds[1:] or seconds
    row["epoch_seconds_median"] = statistics.median(steady)
    row["first_epoch_seconds"] = seconds[0]
    row["gflops"] = sum(flops_per_example()) * examples / row["epoch_seconds_median"] / 1e9
    row["fraction_of_matmul"] = row["gflops"] / peak
    row["zero_skipping"] = row["framework"] in ("nn-numba", "nn-numba-1t")
    return row


def add_ratios(rows):
    """Speed-up over Keras and time relative to JAX's lax.scan, per batch size."""
    by = {(r["framework"], r["batch_size"]): r["epoch_seconds_median"] for r in rows}
    for row in rows:
        keras, jax = by.get(("keras", row["batch_size"])), by.get(("jax", row["batch_size"]))
        row["speedup_vs_keras"] = keras / row["epoch_seconds_median"] if keras else None
        row["jax_scan_over_this"] = jax / row["epoch_seconds_median"] if jax else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frameworks", default=FRAMEWORKS)
    parser.add_argument("--batch-sizes", default=BATCH_SIZES)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    if args.worker:
        return worker(args.worker, batch_sizes, args.epochs, args.seed)

    from peers import RUNNERS

    peak = matmul_gflops()
    print(f"float32 matmul throughput (2048^3 np.matmul): {peak:.1f} GFLOP/s")
    rows, notes = [], []
    for framework in args.frameworks.split(","):
        if framework not in RUNNERS:
            parser.error(f"unknown framework {framework!r}; choose from {', '.join(RUNNERS)}")
        if importlib.util.find_spec(RUNNERS[framework][0]) is None:
            notes.append(f"{framework}: skipped, {RUNNERS[framework][0]} is not installed")
            print(notes[-1])
            continue
        print(f"running {framework} ...", flush=True)
        done = subprocess.run([sys.executable, __file__, "--worker", framework, "--batch-sizes",
                               args.batch_sizes, "--epochs", str(args.epochs), "--seed", str(args.seed)],
                              capture_output=True, text=True)
        if done.returncode:
            notes.append(f"{framework}: failed: {done.stderr.strip().splitlines()[-1:]}")
            print(notes[-1])
            continue
        rows += [summarise(json.loads(line), 48000, peak)
                 for line in done.stdout.splitlines() if line.startswith("{")]
    add_ratios(rows)
    rows.sort(key=lambda r: (r["batch_size"], r["epoch_seconds_median"]))
    print(table(rows, [("framework", "framework", "{}"), ("batch_size", "batch", "{}"),
                       ("epoch_seconds_median", "epoch s", "{:.3f}"),
                       ("first_epoch_seconds", "first s", "{:.2f}"),
                       ("speedup_vs_keras", "x Keras", "{:.1f}"),
                       ("jax_scan_over_this", "x JAX scan", "{:.2f}"),
                       ("gflops", "GFLOP/s", "{:.1f}"),
                       ("fraction_of_matmul", "of matmul", "{:.0%}"),
                       ("test_accuracy", "test acc", "{:.4f}")]))
    print("nn-numba skips exact-zero inputs in layer 1 (same sums, less time); "
          "nn-numba-dense visits them all. GFLOP/s counts dense FLOP for every row.")
    write_json(args.json, {"matmul_gflops": peak, "epochs": args.epochs, "seed": args.seed,
                           "train_examples": 48000, "notes": notes, "rows": rows})


if __name__ == "__main__":
    main()
