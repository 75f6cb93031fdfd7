"""`nn gradcheck`: every gradient of the seed architecture against finite differences."""

import json

from nn.cli._common import check_backend, check_json, positive_int, seed


def add_parser(sub, common):
    """Register `gradcheck`."""
    check = sub.add_parser("gradcheck", parents=[common], help="check every gradient of the seed "
                           "architecture against finite differences")
    check.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                       help="dtype of the analytic gradients (finite differences are float64)")
    check.add_argument("--examples", type=positive_int, default=4)
    check.add_argument("--seed", type=seed, default=0)
    check.add_argument("--json", default=None, help="also write the report to this JSON file")
    check.set_defaults(func=run)


def run(args):
    """Gradient-check the seed architecture; exit 1 if any array fails."""
    from nn import gradcheck

    if args.json is not None:
        check_json(args.json)  # before the run, which takes minutes
    check_backend(args.backend)
    reports, seconds = gradcheck.check_seed_architecture(
        examples=args.examples, seed=args.seed, dtype=args.dtype, backend=args.backend,
        data_dir=args.data_dir)
    for report in reports:
        print(report.line())
    worst = gradcheck.worst(reports)
    passed = all(r.passed for r in reports)
    print(f"{'PASSED' if passed else 'FAILED'}: worst relative error {worst.worst_error:.2e} "
          f"(tolerance {worst.tolerance:.0e}) in {worst.name} at {worst.worst_index}; "
          f"{seconds:.1f}s")
    if args.json is not None:
        with open(args.json, "w") as f:
            json.dump({"passed": passed, "dtype": args.dtype, "examples": args.examples,
                       "seconds": seconds, "arrays": [r.as_dict() for r in reports]}, f, indent=1)
    return 0 if passed else 1
