"""`nn inspect`: one training step of the seed network (or a saved model), layer by layer."""

from nn.cli._common import check_backend, check_json, positive_int, seed
from nn.errors import InputError


def add_parser(sub, common):
    """Register `inspect`."""
    p = sub.add_parser("inspect", parents=[common], help="one step, layer by layer: activations, "
                       "gradient norms, a sampled gradient check and Adam's effective step")
    p.add_argument("model", nargs="?", default=None,
                   help="a model.npz written by `nn train` (default: the seed network, freshly "
                        "initialised with --seed)")
    p.add_argument("--examples", type=positive_int, default=32,
                   help="how many of the first test images form the batch (default: 32)")
    p.add_argument("--seed", type=seed, default=0, help="seed of the fresh weights (without MODEL)")
    p.add_argument("--samples", type=positive_int, default=50,
                   help="entries per parameter checked against finite differences (default: 50)")
    p.add_argument("--json", default=None, help="also write the figures to this JSON file")
    p.add_argument("--compare-keras", action="store_true",
                   help="compute the same step with Keras (tf.GradientTape) and compare; needs TensorFlow")
    p.set_defaults(func=run)


def _keras_module():
    """reference.inspect_keras, or InputError when TensorFlow is not installed."""
    import importlib.util

    if importlib.util.find_spec("tensorflow") is None:  # looked up, not imported: reference sets it up
        raise InputError("--compare-keras needs TensorFlow, which is not installed "
                         "(pip install 'nn[reference]')")
    from reference import inspect_keras

    return inspect_keras


def _fmt(value, spec=".3e"):
    return "-" if value is None else format(value, spec)


def print_report(report, describe, print_fn=print):
    """The human tables: forward (shapes, activation statistics) then backward (gradients, steps)."""
    layers = report["layers"]
    print_fn(f"{describe}: loss {report['loss']:.6f} on a batch of {report['batch_size']}")
    print_fn("")
    print_fn("Forward")
    print_fn(f"{'layer':<12}{'class':<9}{'input':>12}{'output':>10}{'mean':>11}{'std':>11}"
             f"{'min':>11}{'max':>11}{'dead':>8}")
    for e in layers:
        a = e["activation"]
        dead = "-" if a["dead_fraction"] is None else f"{a['dead_fraction']:.1%}"
        print_fn(f"{e['name']:<12}{e['class']:<9}{'x'.join(map(str, e['input_shape'])):>12}"
                 f"{'x'.join(map(str, e['output_shape'])):>10}{a['mean']:>11.4f}{a['std']:>11.4f}"
                 f"{a['min']:>11.4f}{a['max']:>11.4f}{dead:>8}")
    print_fn("")
    state = ("from zero moments: the size of a first step, about the learning rate per entry"
             if not report["adam_iterations"] else f"after {report['adam_iterations']} steps")
    print_fn("Backward (|.| is the L2 norm; gradcheck: worst relative error on the sampled entries; "
             f"update ratio: |dw| / |w| of one Adam step, {state})")
    print_fn(f"{'layer':<12}{'|grad in|':>11}  {'param':<8}{'|grad|':>11}{'gradcheck':>11}"
             f"{'tolerance':>11}{'|w|':>11}{'|dw|':>11}{'update ratio':>14}")
    for e in reversed(layers):
        params = list(e["params"].items()) or [(None, None)]
        for i, (key, p) in enumerate(params):
            head = f"{e['name']:<12}{e['grad_in_norm']:>11.3e}  " if i == 0 else " " * 25
            if p is None:
                print_fn(head + "(no parameters)")
                continue
            flag = "" if p["gradcheck_passed"] else " FAIL"
            print_fn(f"{head}{key:<8}{p['grad_norm']:>11.3e}{_fmt(p['gradcheck_rel_error']):>11}"
                     f"{p['gradcheck_tolerance']:>11.0e}{p['weight_norm']:>11.3e}{p['update_norm']:>11.3e}"
                     f"{_fmt(p['update_ratio']):>14}{flag}")


def print_comparison(rows, print_fn=print):
    """Karpathy's cmp() table: exact, close (within the derived tolerance), max difference."""
    print_fn("")
    print_fn("Compared with Keras on the same weights and batch (tf.GradientTape); close: within "
             "2 sqrt(N) u of the value's scale (for Adam steps a bound per entry, the largest shown; "
             "derived in reference/inspect_keras.py)")
    width = max(len(r["quantity"]) for r in rows) + 2
    print_fn(f"{'quantity':<{width}}{'nn |.|':>14}{'keras |.|':>14}{'exact':>7}{'close':>7}"
             f"{'max diff':>11}{'tolerance':>11}")
    for r in rows:
        print_fn(f"{r['quantity']:<{width}}{r['nn_norm']:>14.7e}{r['keras_norm']:>14.7e}"
                 f"{str(r['exact']):>7}{str(r['close']):>7}{r['max_diff']:>11.2e}{r['tolerance']:>11.2e}")


def run(args):
    """Inspect one step; exit 1 if a sampled gradient check (or, with Keras, a comparison) fails."""
    import json

    from nn.inspect import inspect
    from nn.recipe import scale_images, seed_model
    from nn.saving import load_model

    if args.json:
        check_json(args.json)
    check_backend(args.backend)
    keras_side = _keras_module() if args.compare_keras else None  # refused before any work
    if args.model is None:
        model = seed_model(seed=args.seed, backend=args.backend)
        describe = f"{model.name}, fresh weights of seed {args.seed}"
    else:
        model = load_model(args.model, backend=args.backend)
        if model.loss is None:
            model.compile()
        describe = f"{args.model} (model files hold no Adam state)"
    from nn.datasets import mnist

    _, (x_test, y_test) = mnist.load_data(path=args.data_dir, verbose=False)
    if args.examples > len(x_test):
        raise InputError(f"--examples must be at most {len(x_test)}, the test images; got {args.examples}")
    if tuple(model.input_shape) != x_test.shape[1:] and model.input_shape != (784,):
        raise InputError(f"the model takes examples shaped {model.input_shape}; MNIST images are 28x28")
    x = scale_images(x_test[:args.examples], model.dtype).reshape((args.examples,) + model.input_shape)
    y = y_test[:args.examples]
    report = inspect(model, x, y, samples=args.samples, seed=args.seed)
    print_report(report, f"{describe}, first {args.examples} test images")
    passed = all(p["gradcheck_passed"] for e in report["layers"] for p in e["params"].values())
    if keras_side is not None:
        rows = keras_side.compare(model, x, y)
        print_comparison(rows)
        report["keras"] = rows
        passed = passed and all(r["close"] for r in rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0 if passed else 1
