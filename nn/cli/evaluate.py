"""`nn evaluate`: the test loss and accuracy of a saved model, its per-class report and confusion matrix."""

import json
import os

from nn.cli._common import DATASETS, LOADERS, add_dataset_argument, check_backend, load_test_scaled, positive_int
from nn.errors import InputError


def add_parser(sub, common):
    """Register `evaluate`."""
    evaluate = sub.add_parser("evaluate", parents=[common], help="test loss and accuracy of a "
                              "saved model.npz")
    evaluate.add_argument("model", help="path to a model.npz written by `nn train`")
    evaluate.add_argument("--batch-size", type=positive_int, default=32)
    add_dataset_argument(evaluate, default=None,
                         help_default='the "dataset" of the metrics.json beside the model, else mnist')
    evaluate.set_defaults(func=run)


def run_dataset(model_path):
    """The data set a run was trained on: metrics.json's "dataset" beside the model, else mnist."""
    metrics = os.path.join(os.path.dirname(os.path.abspath(model_path)), "metrics.json")
    if not os.path.isfile(metrics):
        return "mnist"
    try:
        with open(metrics) as f:
            dataset = json.load(f).get("dataset", "mnist")  # runs from before --dataset were MNIST
    except (OSError, ValueError, AttributeError) as exc:
        raise InputError(f"{metrics} beside the model is not a readable metrics file ({exc}); "
                         "pass --dataset") from None
    if dataset not in DATASETS:
        raise InputError(f"{metrics} names dataset {dataset!r}, expected one of {', '.join(DATASETS)}")
    return dataset


def run(args):
    """Print the test loss and accuracy, per-class precision/recall/F1/support and the confusion matrix."""
    from nn.metrics import evaluate_classes, format_confusion, format_report
    from nn.saving import load_model

    check_backend(args.backend)
    model = load_model(args.model, backend=args.backend)
    dataset = args.dataset or run_dataset(args.model)
    if model.loss is None or "accuracy" not in model.metrics:  # saved uncompiled, or metrics=[]
        model.compile(loss=model.loss or "sparse_categorical_crossentropy")
    x_test, y_test = load_test_scaled(dataset, args.data_dir, model.dtype)
    loss, accuracy = model.evaluate(x_test, y_test, batch_size=args.batch_size)
    print(f"Test accuracy: {accuracy:.4f} - test loss: {loss:.4f} ({dataset} test set)")
    report = evaluate_classes(model, x_test, y_test, class_names=LOADERS[dataset].CLASS_NAMES)
    print()
    print(format_report(report))
    print()
    print(format_confusion(report["confusion_matrix"]))
    return 0
