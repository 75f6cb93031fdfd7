"""Training speed of the seed recipe: nn (numba, numpy) against Keras, PyTorch and JAX.

    python benchmarks/train_speed.py --frameworks nn-numba,nn-numpy,keras,torch,jax \
        --batch-sizes 32,128,1024 --epochs 4 --json train_speed.json
    python benchmarks/train_speed.py --busy --frameworks nn-numba,nn-numba-1t,jax --batch-sizes 32
    python benchmarks/train_speed.py --time-to-accuracy 0.97 --frameworks nn-numba,jax,torch,keras

Each framework runs in its own process (no thread pools fighting), trains on
the same 48,000 examples for --epochs epochs per batch size, and reports the
median of the epochs after the first (steady state; every one of them is kept
in the JSON with the interquartile range) and the first epoch on its own
(compilation, numba's and XLA's, lands there). Ratios are taken within this
one run, so a busy machine skews them less than absolute seconds.

--busy: every framework runs twice in turn, once on the quiet machine and
once beside one competing busy process (`while True: pass`) that this script
starts and stops itself; the table gives each busy run against its own quiet
one. --time-to-accuracy A: seconds from launching the framework's process
until the test accuracy, measured after each epoch, first reaches A (as
MLPerf reports time to train; imports, data loading and compilation count).

nn-numba skips the first layer's zero inputs (about 81% of MNIST's pixels,
exact zeros, so the result is that of the dense sums) and picks each chunk's
thread count from measured step times, up to every core; nn-numba-dense
visits every input through BLAS (NN_SKIP_ZEROS=0), the speed on dense data;
nn-numba-1t is nn-numba on one thread (NN_NUM_THREADS=1). Effective GFLOP/s
always counts the dense FLOP, so nn-numba's includes the skipped ones.
"""

import argparse
import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import time

from _common import flops_per_example, load_mnist, matmul_gflops, spread, table, write_json

FRAMEWORKS = "nn-numba,nn-numba-1t,nn-numba-dense,nn-numpy,keras,torch,jax,jax-step"
BATCH_SIZES = "32,128,1024"
EPOCHS = 4
SEED = 0
BUSY = "while True: pass"
#: Peers counted as "the best peer" in the ratio column.
PEERS = ("keras", "torch", "jax", "jax-step")


def worker(framework, batch_sizes, epochs, seed, target, launched):
    """Run one framework at every batch size; print one JSON row per batch size."""
    from peers import RUNNERS, THREAD_STEPS

    data = load_mnist()
    for batch_size in batch_sizes:
        seconds, accuracy, reached = RUNNERS[framework][1](data, batch_size, epochs, seed, target)
        print(json.dumps({"framework": framework, "batch_size": batch_size, "epoch_seconds": seconds,
                          "test_accuracy": accuracy,
                          "time_to_accuracy_s": reached - launched if reached else None,
                          "epochs_to_accuracy": len(seconds) if reached else None,
                          # nn's thread choice: steps per thread count (JSON keys are strings)
                          "thread_steps": THREAD_STEPS.pop(batch_size, None),
                          # OpenMP's spinning in this worker (nn's numba backend shortens it)
                          "gomp_spincount": os.environ.get("GOMP_SPINCOUNT")}), flush=True)


def summarise(row, examples, peak):
    """Add the median and IQR of the steady epochs, the effective GFLOP/s, the matmul fraction."""
    seconds = row["epoch_seconds"]
    row["steady_epoch_seconds"] = spread(seconds[1:] or seconds)
    row["epoch_seconds_median"] = row["steady_epoch_seconds"]["median"]
    row["first_epoch_seconds"] = seconds[0]
    row["gflops"] = sum(flops_per_example()) * examples / row["epoch_seconds_median"] / 1e9
    row["fraction_of_matmul"] = row["gflops"] / peak
    row["zero_skipping"] = row["framework"] in ("nn-numba", "nn-numba-1t")
    return row


def add_ratios(rows):
    """Per batch size and load: speed-up over Keras, JAX lax.scan's time over this, and
    the best peer's time over this (above 1: faster than every peer)."""
    by = {(r["framework"], r["batch_size"], r["busy"]): r["epoch_seconds_median"] for r in rows}
    for row in rows:
        key = (row["batch_size"], row["busy"])
        keras, jax = by.get(("keras", *key)), by.get(("jax", *key))
        peers = [by[(p, *key)] for p in PEERS if (p, *key) in by]
        row["speedup_vs_keras"] = keras / row["epoch_seconds_median"] if keras else None
        row["jax_scan_over_this"] = jax / row["epoch_seconds_median"] if jax else None
        row["best_peer_over_this"] = min(peers) / row["epoch_seconds_median"] if peers else None
        quiet = by.get((row["framework"], row["batch_size"], False))
        row["busy_over_quiet"] = row["epoch_seconds_median"] / quiet if row["busy"] and quiet else None


@contextlib.contextmanager
def busy_process(on):
    """One competing process spinning on a core for the duration of the block (if on)."""
    if not on:
        yield None
        return
    spinner = subprocess.Popen([sys.executable, "-c", BUSY])
    try:
        time.sleep(0.5)  # let the scheduler see it running
        yield spinner.pid
    finally:
        spinner.kill()
        spinner.wait()


def run_framework(framework, args, busy):
    """One worker process for `framework`; its rows, or the sentence saying why none."""
    command = [sys.executable, __file__, "--worker", framework, "--batch-sizes", args.batch_sizes,
               "--epochs", str(args.epochs), "--seed", str(args.seed)]
    if args.time_to_accuracy:
        command += ["--time-to-accuracy", str(args.time_to_accuracy)]
    with busy_process(busy):
        command += ["--launched", repr(time.time())]
        done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        return f"{framework}: failed: {done.stderr.strip().splitlines()[-1:]}"
    return [dict(json.loads(line), busy=busy) for line in done.stdout.splitlines()
            if line.startswith("{")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frameworks", default=FRAMEWORKS)
    parser.add_argument("--batch-sizes", default=BATCH_SIZES)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--busy", action="store_true",
                        help="also run every framework beside one busy process")
    parser.add_argument("--time-to-accuracy", type=float, default=None, metavar="A",
                        help="stop each run once the test accuracy reaches A; report the "
                             "seconds from launch (--epochs is then the most epochs)")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--launched", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    if args.worker:
        return worker(args.worker, batch_sizes, args.epochs, args.seed, args.time_to_accuracy,
                      args.launched)

    from peers import RUNNERS

    peak = matmul_gflops()
    print(f"float32 matmul throughput (2048^3 np.matmul): {peak:.1f} GFLOP/s")
    # Read the data files once here, so that every worker finds them in the OS's
    # page cache: otherwise the first framework alone read them from disk, about
    # 3 s more of its time to accuracy (measured after dropping the page cache).
    from nn.datasets import mnist

    mnist.load_data(verbose=False)
    rows, notes = [], []
    for framework in args.frameworks.split(","):
        if framework not in RUNNERS:
            parser.error(f"unknown framework {framework!r}; choose from {', '.join(RUNNERS)}")
        if importlib.util.find_spec(RUNNERS[framework][0]) is None:
            notes.append(f"{framework}: skipped, {RUNNERS[framework][0]} is not installed")
            print(notes[-1])
            continue
        for busy in (False, True) if args.busy else (False,):
            print(f"running {framework}{' beside a busy process' if busy else ''} ...", flush=True)
            got = run_framework(framework, args, busy)
            if isinstance(got, str):
                notes.append(got)
                print(got)
            else:
                rows += [summarise(r, 48000, peak) for r in got]
    add_ratios(rows)
    rows.sort(key=lambda r: (r["batch_size"], r["busy"], r["epoch_seconds_median"]))
    columns = [("framework", "framework", "{}"), ("batch_size", "batch", "{}"),
               ("epoch_seconds_median", "epoch s", "{:.3f}"),
               ("iqr", "IQR s", "{:.3f}"), ("first_epoch_seconds", "first s", "{:.2f}"),
               ("speedup_vs_keras", "x Keras", "{:.1f}"),
               ("jax_scan_over_this", "x JAX scan", "{:.2f}"),
               ("best_peer_over_this", "x best peer", "{:.2f}"),
               ("gflops", "GFLOP/s", "{:.1f}"), ("test_accuracy", "test acc", "{:.4f}")]
    if args.busy:
        columns.insert(1, ("load", "load", "{}"))
        columns.insert(5, ("busy_over_quiet", "busy/quiet", "{:.2f}"))
    if args.time_to_accuracy:
        columns += [("time_to_accuracy_s", f"s to {args.time_to_accuracy:.0%}", "{:.1f}"),
                    ("epochs_to_accuracy", "epochs", "{}")]
    shown = [dict(r, iqr=r["steady_epoch_seconds"]["iqr"], load="busy" if r["busy"] else "quiet")
             for r in rows]
    print(table(shown, columns))
    print("nn-numba skips exact-zero inputs in layer 1 (same sums, less time); "
          "nn-numba-dense visits them all. GFLOP/s counts dense FLOP for every row.")
    chosen = [r for r in shown if r.get("thread_steps") and len(r["thread_steps"]) > 1]
    if chosen:  # the default's thread choice, per row: where its time went
        print("nn's thread choice, steps on each thread count: " + "; ".join(
            f"{r['framework']} {r['load']} batch {r['batch_size']}: "
            + ", ".join(f"{n} on {k}" for k, n in sorted(r["thread_steps"].items(), key=lambda kn: int(kn[0])))
            for r in chosen))
    write_json(args.json, {"matmul_gflops": peak, "epochs": args.epochs, "seed": args.seed,
                           "train_examples": 48000, "busy_command": BUSY if args.busy else None,
                           "time_to_accuracy_target": args.time_to_accuracy,
                           "notes": notes, "rows": rows})


if __name__ == "__main__":
    main()
