"""`nn gradcheck`: every gradient of a Dense network against finite differences or the complex step."""

import json

from nn.cli._common import check_backend, check_json, positive_int, seed
from nn.errors import InputError

METHODS = ("fd", "complex", "directional", "entry")  # as nn.gradcheck.METHODS, without importing it here


def add_parser(sub, common):
    """Register `gradcheck`."""
    check = sub.add_parser("gradcheck", parents=[common], help="check every gradient of the seed "
                           "architecture (or --layers) against finite differences or the complex step")
    check.add_argument("--layers", default="784,128,32,10",
                       help="layer widths, input first, classes last (ReLU hidden layers, softmax "
                            "output); 784 inputs are MNIST images, others random data")
    check.add_argument("--method", choices=METHODS, default="fd",
                       help="fd: batched fourth-order differences; complex: the complex step (exact); "
                            "directional: random directions; entry: the per-entry reference (slow)")
    check.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                       help="dtype of the analytic gradients (the numerical side is float64)")
    check.add_argument("--examples", type=positive_int, default=4, help="how many examples (default 4)")
    check.add_argument("--seed", type=seed, default=0)
    check.add_argument("--json", default=None, help="also write the report to this JSON file")
    check.add_argument("--mutants", action="store_true",
                       help="run the catalogue of planted backprop bugs and say which check caught each")
    check.add_argument("--no-keras", action="store_true",
                       help="with --mutants: skip the Keras lockstep even if TensorFlow is installed")
    check.set_defaults(func=run)


def parse_widths(text):
    """'784,128,32,10' -> [784, 128, 32, 10]; fewer than two widths or a zero is an InputError."""
    try:
        widths = [int(part) for part in text.split(",")]
    except ValueError:
        widths = None
    if not widths or len(widths) < 2 or min(widths) < 1:
        raise InputError(f"--layers must be at least two positive widths separated by commas, input first "
                         f"and classes last (such as 784,128,32,10); got {text!r}")
    return widths


def run(args):
    """Gradient-check the network (or run the mutant catalogue); exit 1 if any check fails."""
    from nn import gradcheck

    widths, examples = parse_widths(args.layers), args.examples
    gradcheck.check_widths(widths)
    if args.json is not None:
        check_json(args.json)  # before the run
    check_backend(args.backend)
    if args.mutants:
        return run_mutants(args)
    reports, seconds = gradcheck.check_seed_architecture(
        examples=examples, seed=args.seed, dtype=args.dtype, backend=args.backend,
        data_dir=args.data_dir, method=args.method, widths=widths)
    for report in reports:
        print(report.line())
    worst = gradcheck.worst(reports)
    passed = all(r.passed for r in reports)
    checked = sum(r.checked for r in reports)
    kinks = sum(len(r.kinks) for r in reports)
    print(f"{'PASSED' if passed else 'FAILED'}: worst error {worst.worst_error:.2e} (tolerance "
          f"{worst.tolerance:.0e}) in {worst.name} at {worst.worst_index}; method {args.method}, "
          f"layers {','.join(map(str, widths))}, {examples} examples: {len(reports)} arrays, {checked:,} "
          f"entries compared, {kinks} excluded at ReLU kinks; {seconds:.2f} s")
    if args.json is not None:
        with open(args.json, "w") as f:
            json.dump({"passed": passed, "method": args.method, "layers": widths, "dtype": args.dtype,
                       "examples": examples, "seconds": seconds,
                       "arrays": [r.as_dict() for r in reports]}, f, indent=1)
    return 0 if passed else 1


def run_mutants(args):
    """Every check on the correct code and on each planted bug; exit 1 unless all are caught, none falsely."""
    import time

    from nn.gradcheck import mutants

    start = time.perf_counter()
    result = mutants.run_catalogue(keras=False if args.no_keras else None, seed=args.seed)
    seconds = time.perf_counter() - start
    false_alarms = {name: found for name, found in result["control"].items() if found}
    print(f"checks: {', '.join(result['checks'])}"
          + ("" if "keras lockstep" in result["checks"] or args.no_keras
             else " (keras lockstep not run: TensorFlow is not installed)"))
    print(f"correct code: {'no check fired' if not false_alarms else f'FALSE ALARM {false_alarms}'}")
    width = max(len(m["name"]) for m in result["mutants"]) + 2
    print(f"{'mutant':<{width}}{'caught':<8}caught by")
    for m in result["mutants"]:
        print(f"{m['name']:<{width}}{'yes' if m['caught'] else 'NO':<8}{', '.join(m['caught_by']) or '-'}")
    missed = [m["name"] for m in result["mutants"] if not m["caught"]]
    passed = not missed and not false_alarms
    print(f"{'PASSED' if passed else 'FAILED'}: {len(result['mutants']) - len(missed)} of "
          f"{len(result['mutants'])} mutants caught{', missed: ' + ', '.join(missed) if missed else ''}; "
          f"{seconds:.1f} s")
    if args.json is not None:
        with open(args.json, "w") as f:
            json.dump({"passed": passed, "checks": result["checks"], "control": result["control"],
                       "seconds": seconds,
                       "mutants": [{k: m[k] for k in ("name", "description", "caught", "caught_by")}
                                   for m in result["mutants"]]}, f, indent=1)
    return 0 if passed else 1
