"""How nn's training cost grows with the hidden width and with the batch, against the FLOP count.

    python benchmarks/scaling.py --json scaling.json --plot scaling.png

Network 784 -> W -> W/4 -> 10 (the seed is W = 128). Widths are timed at
batch 32, batch sizes at W = 128, each on --examples training examples, the
median of --repeats epochs after a warm-up epoch (which holds numba's
compilation). Points that follow the FLOP count lie on a line through the
origin in the plot; sparse inputs bend nn-numba below it (zero-skipping).
"""

import argparse
import statistics

from _common import dense_chain, epoch_seconds, flops_per_example, load_mnist, table, write_json

WIDTHS = "128,256,512,1024,2048"
BATCH_SIZES = "8,32,128,512,1024"
BACKENDS = "numba,numba-dense,numpy"
EXAMPLES = 8192
REPEATS = 3


def measure(backend, width, batch_size, data, repeats):
    """One point: seconds per example and GFLOP/s (dense FLOP) for a backend and shape."""
    from nn.fast import config

    config.SKIP_ZEROS = "0" if backend == "numba-dense" else "auto"
    widths = (784, width, max(width // 4, 1), 10)
    model = dense_chain(widths, backend.split("-")[0])
    x, y = data
    seconds = statistics.median(epoch_seconds(model, x, y, batch_size, repeats + 1)[1:])
    flop = sum(flops_per_example(widths)) * len(x)
    return {"backend": backend, "width": width, "batch_size": batch_size,
            "flop_per_example": flop / len(x), "us_per_example": 1e6 * seconds / len(x),
            "gflops": flop / seconds / 1e9}


def plot(rows, path):
    """Time per example against FLOP per example (widths) and against batch size."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2))
    ax_w, ax_b = fig.subplots(1, 2)
    for backend in sorted({r["backend"] for r in rows}):
        widths = [r for r in rows if r["backend"] == backend and r["kind"] == "width"]
        batches = [r for r in rows if r["backend"] == backend and r["kind"] == "batch"]
        ax_w.plot([r["flop_per_example"] / 1e6 for r in widths], [r["us_per_example"] for r in widths],
                  "o-", label=f"nn-{backend}")
        for r in widths:
            ax_w.annotate(str(r["width"]), (r["flop_per_example"] / 1e6, r["us_per_example"]),
                          fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax_b.plot([r["batch_size"] for r in batches], [r["gflops"] for r in batches], "o-",
                  label=f"nn-{backend}")
    ax_w.set(xlabel="MFLOP per example (labels: hidden width W)", ylabel="us per example",
             title="cost against FLOP count, batch 32")
    ax_b.set(xscale="log", xlabel="batch size", ylabel="GFLOP/s (dense FLOP)", title="throughput, W = 128")
    for ax in (ax_w, ax_b):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default=BACKENDS)
    parser.add_argument("--widths", default=WIDTHS)
    parser.add_argument("--batch-sizes", default=BATCH_SIZES)
    parser.add_argument("--examples", type=int, default=EXAMPLES)
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--json", default=None)
    parser.add_argument("--plot", default=None, help="write the PNG plot here")
    args = parser.parse_args()
    (x, y), _ = load_mnist(args.examples)
    rows = []
    for backend in args.backends.split(","):
        for width in [int(w) for w in args.widths.split(",")]:
            rows.append(dict(measure(backend, width, 32, (x, y), args.repeats), kind="width"))
        for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
            rows.append(dict(measure(backend, 128, batch_size, (x, y), args.repeats), kind="batch"))
    print(table(rows, [("backend", "backend", "{}"), ("kind", "varies", "{}"), ("width", "W", "{}"),
                       ("batch_size", "batch", "{}"), ("flop_per_example", "kFLOP/ex", "{:.0f}"),
                       ("us_per_example", "us/ex", "{:.2f}"), ("gflops", "GFLOP/s", "{:.1f}")]))
    for row in rows:
        row["flop_per_example"] = int(row["flop_per_example"])
    if args.plot:
        plot(rows, args.plot)
    write_json(args.json, {"examples": args.examples, "repeats": args.repeats, "rows": rows})


if __name__ == "__main__":
    main()
