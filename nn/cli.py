"""The command line: `python -m nn train | evaluate | gradcheck | data`."""

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

from nn import kernels
from nn.errors import InputError, NNError
from nn.kernels import config

EPILOG = "Every command exits 0 on success, 1 when a check fails, 2 on bad input or missing data."
OUTPUTS = ("model.npz", "history.json", "metrics.json", "curves.png")


def _check_out(out):
    """Refuse --out unless it is a writable folder or one that can be created (nothing is created)."""
    for name in OUTPUTS:
        if os.path.isdir(os.path.join(out, name)):
            raise InputError(f"--out {out} holds a directory named {name}; nn train writes a file there")
    if os.path.exists(out) and not os.path.isdir(out):
        raise InputError(f"--out {out} exists and is not a directory; give a folder for the results")
    existing = os.path.abspath(out)
    while not os.path.exists(existing):  # the nearest existing ancestor decides
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise InputError(f"--out {out} cannot be created: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"--out {out} is not writable ({existing} does not allow it)")


def _check_json(path):
    """Refuse --json unless a file can be written there (checked before the long run)."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise InputError(f"--json {path} is a directory; give a file name such as "
                         f"{os.path.join(path, 'gradcheck.json')}")
    if not os.path.isdir(folder):
        raise InputError(f"--json {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise InputError(f"--json {path} is not writable")


def _check_backend(name):
    """Resolve the backend now, so a bad $NN_BACKEND is refused before the data loads."""
    try:
        kernels.get_backend(name)
    except InputError as exc:
        if name is None and os.environ.get("NN_BACKEND"):
            raise InputError(f"NN_BACKEND: {exc}") from None
        raise


def _load_scaled_mnist(data_dir, dtype):
    from nn.datasets import mnist
    from nn.recipe import scale_images

    (x_train, y_train), (x_test, y_test) = mnist.load_data(path=data_dir)
    return (scale_images(x_train, dtype), y_train), (scale_images(x_test, dtype), y_test)


def cmd_train(args):
    """Train the seed recipe; write model, history, metrics and curves to --out."""
    from nn.plotting import plot_history
    from nn.recipe import seed_model
    from nn.saving import save_model

    _check_out(args.out)  # before the run: a bad --out must not cost a whole training
    _check_backend(args.backend)
    (x_train, y_train), (x_test, y_test) = _load_scaled_mnist(args.data_dir, args.dtype)
    model = seed_model(seed=args.seed, dtype=args.dtype, backend=args.backend)
    start = time.perf_counter()
    history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                        validation_split=args.validation_split, verbose=1)
    train_seconds = time.perf_counter() - start
    test_loss, test_accuracy = model.evaluate(x_test, y_test, batch_size=args.batch_size)
    print(f"Test accuracy: {test_accuracy:.4f} - test loss: {test_loss:.4f}")
    metrics = {
        "test_accuracy": test_accuracy, "test_loss": test_loss, "epochs": args.epochs,
        "batch_size": args.batch_size, "validation_split": args.validation_split,
        "seed": args.seed, "train_seconds": train_seconds, "backend": model.backend_name,
        "dtype": model.dtype.name, "python": platform.python_version(),
        "numpy": np.__version__, "machine": platform.machine(),
    }
    try:  # only now: a run that fails earlier leaves no empty folder behind
        os.makedirs(args.out, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {args.out} cannot be created ({exc.strerror or exc})") from None
    save_model(model, os.path.join(args.out, "model.npz"))
    with open(os.path.join(args.out, "history.json"), "w") as f:
        json.dump(history.history, f, indent=1)
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1)
    plot_history(history, os.path.join(args.out, "curves.png"),
                 title=f"seed recipe, seed {args.seed}, test accuracy {test_accuracy:.4f}")
    print(f"Wrote model.npz, history.json, metrics.json and curves.png to {args.out}")
    return 0


def cmd_evaluate(args):
    """Print the test loss and accuracy of a saved model."""
    from nn.saving import load_model

    _check_backend(args.backend)
    model = load_model(args.model, backend=args.backend)
    if model.loss is None or "accuracy" not in model.metrics:  # saved uncompiled, or metrics=[]
        model.compile(loss=model.loss or "sparse_categorical_crossentropy")
    _, (x_test, y_test) = _load_scaled_mnist(args.data_dir, model.dtype)
    loss, accuracy = model.evaluate(x_test, y_test, batch_size=args.batch_size)
    print(f"Test accuracy: {accuracy:.4f} - test loss: {loss:.4f}")
    return 0


def cmd_gradcheck(args):
    """Gradient-check the seed architecture; exit 1 if any array fails."""
    from nn import gradcheck

    if args.json:
        _check_json(args.json)  # before the run, which takes minutes
    _check_backend(args.backend)
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
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"passed": passed, "dtype": args.dtype, "examples": args.examples,
                       "seconds": seconds, "arrays": [r.as_dict() for r in reports]}, f, indent=1)
    return 0 if passed else 1


def cmd_data(args):
    """Fetch and verify MNIST; print where it is."""
    from nn.datasets import mnist

    ((x_train, _), (x_test, _)), where = mnist.locate(path=args.data_dir, verbose=True)
    print(f"MNIST verified (SHA-256 of all four IDX files): train {x_train.shape}, "
          f"test {x_test.shape}")
    print(f"Loaded from: {where}")
    return 0


def _int_from(low, words):
    """An argparse type: an int >= low, described as `words` in the error."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"expected {words}, got {text!r}")
        return value
    return parse


_positive_int = _int_from(1, "a positive integer")
_seed = _int_from(0, "a non-negative integer")


def _split(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def build_parser():
    """The argparse parser for every command."""
    parser = argparse.ArgumentParser(prog="nn", description=__doc__, epilog=EPILOG)
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", default=None,
                        help="folder with the MNIST IDX files or mnist.npz (default: $NN_DATA_DIR, "
                             "the cache, then download)")
    common.add_argument("--backend", choices=kernels.BACKENDS, default=None,
                        help="kernel backend (default: $NN_BACKEND or the fastest installed)")

    train = sub.add_parser("train", parents=[common], help="train the seed recipe (the default "
                           "settings are the Keras notebook's)")
    train.add_argument("--epochs", type=_positive_int, default=25)
    train.add_argument("--batch-size", type=_positive_int, default=32)
    train.add_argument("--validation-split", type=_split, default=0.2)
    train.add_argument("--seed", type=_seed, default=0)
    train.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    train.add_argument("--out", default="runs/train", help="output folder (default: runs/train)")
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser("evaluate", parents=[common], help="test loss and accuracy of a "
                              "saved model.npz")
    evaluate.add_argument("model", help="path to a model.npz written by `nn train`")
    evaluate.add_argument("--batch-size", type=_positive_int, default=32)
    evaluate.set_defaults(func=cmd_evaluate)

    check = sub.add_parser("gradcheck", parents=[common], help="check every gradient of the seed "
                           "architecture against finite differences")
    check.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                       help="dtype of the analytic gradients (finite differences are float64)")
    check.add_argument("--examples", type=_positive_int, default=4)
    check.add_argument("--seed", type=_seed, default=0)
    check.add_argument("--json", default=None, help="also write the report to this JSON file")
    check.set_defaults(func=cmd_gradcheck)

    data = sub.add_parser("data", parents=[common], help="fetch and verify MNIST, print where it is")
    data.set_defaults(func=cmd_data)
    return parser


def main(argv=None):
    """Entry point of `nn` and `python -m nn`; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        config.check()  # a bad NN_* setting is refused before any command starts
        return args.func(args)
    except NNError as exc:
        print(f"nn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nn {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"nn {args.command}: error: {exc}", file=sys.stderr)
        return 2
