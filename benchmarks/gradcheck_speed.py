"""Gradient check: seconds to check the whole seed network, and its worst error, per method.

    python benchmarks/gradcheck_speed.py --json gradcheck_speed.json

Each method checks every layer's input and parameter gradients and all
104,938 parameters at model level on --examples MNIST images (as
`python -m nn gradcheck --method M`). One warm-up run, then the median of
--repeats timed runs (data loading excluded). --reference adds the per-entry
reference method ("entry", one forward per stencil point; ~35 s a run).
"""

import argparse
import statistics

from _common import table, write_json

METHODS = "fd,complex,directional"
EXAMPLES = 4
REPEATS = 3


def measure(method, examples, repeats):
    """One row: median seconds, worst error and where, entries compared and kinks."""
    from nn import gradcheck

    gradcheck.check_seed_architecture(examples=examples, method=method)  # warm-up: data cache, BLAS threads
    times, reports = [], None
    for _ in range(repeats):
        reports, seconds = gradcheck.check_seed_architecture(examples=examples, method=method)
        times.append(seconds)
    worst = gradcheck.worst(reports)
    return {"method": method, "seconds_median": statistics.median(times), "seconds_all": times,
            "passed": all(r.passed for r in reports), "worst_error": worst.worst_error,
            "tolerance": worst.tolerance, "worst_array": worst.name, "worst_index": list(worst.worst_index),
            "entries": sum(r.checked for r in reports), "kinks": sum(len(r.kinks) for r in reports)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--methods", default=METHODS)
    parser.add_argument("--examples", type=int, default=EXAMPLES)
    parser.add_argument("--repeats", type=int, default=REPEATS)
    parser.add_argument("--reference", action="store_true", help="also time the per-entry reference")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    methods = args.methods.split(",") + (["entry"] if args.reference else [])
    rows = [measure(method, args.examples, args.repeats if method != "entry" else 1) for method in methods]
    print(table(rows, [("method", "method", "{}"), ("seconds_median", "seconds (median)", "{:.2f}"),
                       ("worst_error", "worst error", "{:.2e}"), ("tolerance", "tolerance", "{:.0e}"),
                       ("worst_array", "in", "{}"), ("entries", "entries compared", "{:,}"),
                       ("kinks", "kinks excluded", "{}"), ("passed", "passed", "{}")]))
    write_json(args.json, {"examples": args.examples, "repeats": args.repeats, "rows": rows})


if __name__ == "__main__":
    main()
