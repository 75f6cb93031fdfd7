"""Teaching path: the seed notebook's evaluation, in NumPy: confusion matrix and per-class report.

The notebook prints scikit-learn's `confusion_matrix` and
`classification_report`; these compute the same figures (the tests compare
them with sklearn.metrics) without the dependency.
"""

import numpy as np

from nn import _checks
from nn.errors import InputError


def _labels(y_true, y_pred, num_classes):
    num_classes = _checks.positive_int(num_classes, "num_classes")
    y_true = _checks.as_labels(y_true, "y_true", num_classes)
    y_pred = _checks.as_labels(y_pred, "y_pred", num_classes, n=len(y_true), other="y_true")
    return y_true, y_pred, num_classes


def confusion_matrix(y_true, y_pred, num_classes):
    """(C, C) int64 counts: row = true class, column = predicted class, as sklearn's.

    y_true, y_pred: (N,) int labels in [0, num_classes).
    """
    y_true, y_pred, c = _labels(y_true, y_pred, num_classes)
    return np.bincount(y_true * c + y_pred, minlength=c * c).reshape(c, c)


def _ratio(num, den):
    """num / den elementwise, 0 where den is 0 (sklearn's zero_division=0)."""
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def classification_report(y_true, y_pred, num_classes, class_names=None):
    """Per-class precision, recall, F1 and support, plus accuracy and the macro and weighted means.

    Returns {"classes": [{"class", "name", "precision", "recall", "f1", "support"}, ...],
    "accuracy", "macro avg": {...}, "weighted avg": {...}, "confusion_matrix": C x C list},
    the figures of sklearn's classification_report(output_dict=True) with zero_division=0.
    """
    y_true, y_pred, c = _labels(y_true, y_pred, num_classes)
    names = [str(i) for i in range(c)] if class_names is None else [str(n) for n in class_names]
    if len(names) != c:
        raise InputError(f"class_names has {len(names)} names; the model has {c} classes")
    cm = confusion_matrix(y_true, y_pred, c)
    hits, predicted, support = np.diag(cm), cm.sum(axis=0), cm.sum(axis=1)
    precision, recall = _ratio(hits, predicted), _ratio(hits, support)
    f1 = _ratio(2 * precision * recall, precision + recall)
    weights = support / support.sum()
    classes = [{"class": i, "name": names[i], "precision": float(precision[i]),
                "recall": float(recall[i]), "f1": float(f1[i]), "support": int(support[i])}
               for i in range(c)]
    means = {}
    for label, w in (("macro avg", np.full(c, 1 / c)), ("weighted avg", weights)):
        means[label] = {"precision": float(w @ precision), "recall": float(w @ recall),
                        "f1": float(w @ f1), "support": int(support.sum())}
    return {"classes": classes, "accuracy": float(hits.sum() / len(y_true)), **means,
            "confusion_matrix": cm.tolist()}


def format_report(report):
    """The report as sklearn prints it: one row per class, then accuracy and the two means."""
    width = max(12, *(len(row["name"]) for row in report["classes"]))
    lines = [f"{'':>{width}} {'precision':>9} {'recall':>9} {'f1-score':>9} {'support':>9}", ""]
    for row in report["classes"]:
        lines.append(f"{row['name']:>{width}} {row['precision']:>9.4f} {row['recall']:>9.4f} "
                     f"{row['f1']:>9.4f} {row['support']:>9d}")
    total = report["macro avg"]["support"]
    lines += ["", f"{'accuracy':>{width}} {'':>9} {'':>9} {report['accuracy']:>9.4f} {total:>9d}"]
    for label in ("macro avg", "weighted avg"):
        row = report[label]
        lines.append(f"{label:>{width}} {row['precision']:>9.4f} {row['recall']:>9.4f} "
                     f"{row['f1']:>9.4f} {row['support']:>9d}")
    return "\n".join(lines)


def format_confusion(matrix, class_names=None):
    """The confusion matrix as a text table: rows are true classes, columns predicted ones."""
    cm = np.asarray(matrix)
    names = [str(i) for i in range(len(cm))] if class_names is None else [str(n) for n in class_names]
    width = max(6, max(len(n) for n in names) + 1, len(str(int(cm.max(initial=0)))) + 1)
    lines = ["rows: true class, columns: predicted class",
             f"{'':>{width}}" + "".join(f"{n:>{width}}" for n in names)]
    for name, row in zip(names, cm):
        lines.append(f"{name:>{width}}" + "".join(f"{int(v):>{width}}" for v in row))
    return "\n".join(lines)


def evaluate_classes(model, x, y, class_names=None, batch_size=256, probs=None):
    """classification_report of a model's predictions (argmax of predict) on (x, y).

    probs: model.predict(x) when the caller already has it (it is not computed again).
    """
    probs = model.predict(x, batch_size=batch_size) if probs is None else probs
    y_pred = probs.argmax(axis=1)
    return classification_report(y, y_pred, model.num_classes, class_names)
