"""`nn evaluate`: the test loss and accuracy of a saved model, its per-class report and confusion matrix."""

from nn.cli._common import check_backend, load_scaled_mnist, positive_int


def add_parser(sub, common):
    """Register `evaluate`."""
    evaluate = sub.add_parser("evaluate", parents=[common], help="test loss and accuracy of a "
                              "saved model.npz")
    evaluate.add_argument("model", help="path to a model.npz written by `nn train`")
    evaluate.add_argument("--batch-size", type=positive_int, default=32)
    evaluate.set_defaults(func=run)


def run(args):
    """Print the test loss and accuracy, per-class precision/recall/F1/support and the confusion matrix."""
    from nn.metrics import evaluate_classes, format_confusion, format_report
    from nn.saving import load_model

    check_backend(args.backend)
    model = load_model(args.model, backend=args.backend)
    if model.loss is None or "accuracy" not in model.metrics:  # saved uncompiled, or metrics=[]
        model.compile(loss=model.loss or "sparse_categorical_crossentropy")
    _, (x_test, y_test) = load_scaled_mnist(args.data_dir, model.dtype)
    loss, accuracy = model.evaluate(x_test, y_test, batch_size=args.batch_size)
    print(f"Test accuracy: {accuracy:.4f} - test loss: {loss:.4f}")
    report = evaluate_classes(model, x_test, y_test)
    print()
    print(format_report(report))
    print()
    print(format_confusion(report["confusion_matrix"]))
    return 0
