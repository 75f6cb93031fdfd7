"""`nn train`: the seed recipe, trained and written to a run folder."""

import json
import os
import platform
import time

import numpy as np

from nn.cli._common import check_backend, check_out, load_scaled_mnist, positive_int, seed, split
from nn.errors import InputError
from nn.model import ENGINES


def add_parser(sub, common):
    """Register `train`."""
    train = sub.add_parser("train", parents=[common], help="train the seed recipe (the default "
                           "settings are the Keras notebook's)")
    train.add_argument("--epochs", type=positive_int, default=25)
    train.add_argument("--batch-size", type=positive_int, default=32)
    train.add_argument("--validation-split", type=split, default=0.2)
    train.add_argument("--seed", type=seed, default=0)
    train.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    train.add_argument("--engine", choices=ENGINES, default=None,
                       help="layers: the teaching path, layer by layer; fused: whole chunks of "
                            "steps in one call (default: fused on numba, layers on numpy)")
    train.add_argument("--out", default="runs/train", help="output folder (default: runs/train)")
    train.set_defaults(func=run)


def run(args):
    """Train the seed recipe; write model, history, metrics and curves to --out."""
    from nn.recipe import seed_model
    from nn.saving import save_model

    check_out(args.out)  # before the run: a bad --out must not cost a whole training
    check_backend(args.backend)
    (x_train, y_train), (x_test, y_test) = load_scaled_mnist(args.data_dir, args.dtype)
    model = seed_model(seed=args.seed, dtype=args.dtype, backend=args.backend)
    if model.backend_name == "numba" and args.engine != "layers":
        from nn.fast.numba_steps import cached
        if not cached(model.dtype):
            print("Compiling the fused steps for this CPU (once; later runs load them from "
                  "numba's cache) ...", flush=True)
    start = time.perf_counter()
    history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                        validation_split=args.validation_split, verbose=1, engine=args.engine)
    train_seconds = time.perf_counter() - start
    test_loss, test_accuracy = model.evaluate(x_test, y_test, batch_size=args.batch_size)
    print(f"Test accuracy: {test_accuracy:.4f} - test loss: {test_loss:.4f}")
    metrics = {
        "test_accuracy": test_accuracy, "test_loss": test_loss, "epochs": args.epochs,
        "batch_size": args.batch_size, "validation_split": args.validation_split,
        "seed": args.seed, "train_seconds": train_seconds, "backend": model.backend_name,
        "engine": history.engine,
        "dtype": model.dtype.name, "python": platform.python_version(),
        "numpy": np.__version__, "machine": platform.machine(),
    }
    try:  # only now: a run that fails earlier leaves no empty folder behind
        os.makedirs(args.out, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out {args.out} cannot be created ({exc.strerror or exc})") from None
    from nn.plotting import plot_history  # only now: matplotlib's import delays the first step

    save_model(model, os.path.join(args.out, "model.npz"))
    with open(os.path.join(args.out, "history.json"), "w") as f:
        json.dump(history.history, f, indent=1)
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1)
    plot_history(history, os.path.join(args.out, "curves.png"),
                 title=f"seed recipe, seed {args.seed}, test accuracy {test_accuracy:.4f}")
    print(f"Wrote model.npz, history.json, metrics.json and curves.png to {args.out}")
    return 0
