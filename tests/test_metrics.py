"""nn.metrics against scikit-learn (a test-only dependency), on random and degenerate labels."""

import numpy as np
import pytest

from nn import InputError
from nn.metrics import classification_report, confusion_matrix, evaluate_classes, format_confusion, format_report

sklearn_metrics = pytest.importorskip("sklearn.metrics")


@pytest.mark.parametrize("case", ["random", "a-class-never-predicted", "a-class-absent", "perfect"])
def test_report_equals_sklearn(case, rng):
    c, n = 10, 500
    y_true = rng.integers(0, c, n)
    y_pred = np.where(rng.random(n) < 0.7, y_true, rng.integers(0, c, n))
    if case == "a-class-never-predicted":
        y_pred[y_pred == 3] = 4
    elif case == "a-class-absent":
        y_true[y_true == 7] = 2
    elif case == "perfect":
        y_pred = y_true.copy()
    labels = list(range(c))
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred, c),
                                  sklearn_metrics.confusion_matrix(y_true, y_pred, labels=labels))
    ours = classification_report(y_true, y_pred, c)
    theirs = sklearn_metrics.classification_report(y_true, y_pred, labels=labels, output_dict=True,
                                                   zero_division=0)
    for row in ours["classes"]:  # float64 ratios of the same integer counts: equal to rounding
        want = theirs[str(row["class"])]
        assert row["precision"] == pytest.approx(want["precision"], abs=1e-15)
        assert row["recall"] == pytest.approx(want["recall"], abs=1e-15)
        assert row["f1"] == pytest.approx(want["f1-score"], abs=1e-15)
        assert row["support"] == want["support"]
    assert ours["accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(y_true, y_pred), abs=1e-15)
    for label in ("macro avg", "weighted avg"):
        for key, skey in (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score")):
            assert ours[label][key] == pytest.approx(theirs[label][skey], abs=1e-15)
    text = format_report(ours)
    assert "precision" in text and "weighted avg" in text and len(text.splitlines()) == c + 6


def test_bad_labels_are_refused():
    with pytest.raises(InputError, match=r"y_pred must hold class indices in \[0, 2\]"):
        confusion_matrix([0, 1], [0, 3], 3)
    with pytest.raises(InputError, match="y_pred has 1 labels but y_true has 2"):
        confusion_matrix([0, 1], [0], 3)
    with pytest.raises(InputError, match="class_names has 2 names"):
        classification_report([0, 1], [0, 1], 3, class_names=["a", "b"])


def test_confusion_table_lays_out_rows_as_true_classes():
    text = format_confusion([[5, 1], [0, 12]], class_names=["cat", "dog"])
    lines = text.splitlines()
    assert "rows: true class" in lines[0]
    assert lines[1].split() == ["cat", "dog"]
    assert lines[2].split() == ["cat", "5", "1"] and lines[3].split() == ["dog", "0", "12"]


def test_evaluate_classes_agrees_with_the_models_own_accuracy(rng):
    from nn.recipe import seed_model

    model = seed_model(seed=1, backend="numpy")
    x, y = rng.random((64, 28, 28)).astype(np.float32), rng.integers(0, 10, 64)
    model.fit(x, y, epochs=2, verbose=0)
    report = evaluate_classes(model, x, y)
    _, accuracy = model.evaluate(x, y)  # argmax of the loss's probabilities: a separate path
    assert report["accuracy"] == accuracy
    assert sum(row["support"] for row in report["classes"]) == 64
    np.testing.assert_array_equal(report["confusion_matrix"],
                                  sklearn_metrics.confusion_matrix(y, model.predict(x).argmax(1),
                                                                   labels=list(range(10))))
