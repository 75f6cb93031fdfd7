"""`nn plot RUN_DIR`: redraw every picture of a finished run from its files."""

import json
import os

from nn.cli._common import DATASETS, LOADERS, check_backend, load_test_scaled
from nn.errors import InputError


def add_parser(sub, common):
    """Register `plot`."""
    p = sub.add_parser("plot", parents=[common], help="redraw the pictures of a finished run from its "
                       "model.npz, history.json and metrics.json (the test set of the run's dataset is read again)")
    p.add_argument("run_dir", help="the --out folder of `nn train`")
    p.set_defaults(func=run)


def _read_json(path, what):
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise InputError(f"{path} does not exist: is this the folder of a finished `nn train` run?") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} cannot be read as JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path} must hold a JSON object ({what}); got {type(data).__name__}")
    return data


def run(args):
    """Redraw curves.png and the pictures of nn.report into RUN_DIR."""
    from nn.plotting import plot_history
    from nn.report import write_pictures
    from nn.saving import load_model

    folder = args.run_dir
    if not os.path.isdir(folder):
        raise InputError(f"run folder {folder} does not exist or is not a directory")
    check_backend(args.backend)
    history = _read_json(os.path.join(folder, "history.json"), "lists of figures by name")
    if not isinstance(history.get("loss"), list) or not history["loss"]:
        raise InputError(f"{os.path.join(folder, 'history.json')} holds no 'loss' list: it is not a "
                         "history written by `nn train`")
    metrics_path = os.path.join(folder, "metrics.json")
    metrics = _read_json(metrics_path, "the run's metrics") if os.path.exists(metrics_path) else {}
    model = load_model(os.path.join(folder, "model.npz"), backend=args.backend)
    if model.loss is None:
        model.compile()
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"run folder {folder} is not writable")
    dataset = metrics.get("dataset", "mnist")  # runs from before --dataset were MNIST
    if dataset not in DATASETS:
        raise InputError(f"{metrics_path} names dataset {dataset!r}, expected one of {', '.join(DATASETS)}")
    x_test, y_test = load_test_scaled(dataset, args.data_dir, model.dtype)
    title = f"seed recipe on {dataset}"
    if "seed" in metrics and "test_accuracy" in metrics:
        title += f", seed {metrics['seed']}, test accuracy {metrics['test_accuracy']:.4f}"
    plot_history(history, os.path.join(folder, "curves.png"), title=title)
    pictures = write_pictures(folder, model, history, x_test, y_test,
                              class_names=LOADERS[dataset].CLASS_NAMES)
    names = ["curves.png"] + [os.path.basename(p) for p in pictures]
    print(f"Wrote {', '.join(names)} to {folder}")
    return 0
