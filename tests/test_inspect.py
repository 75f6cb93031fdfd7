"""nn.inspect.inspect and `nn inspect`: figures that match nn.gradcheck, Adam and the arrays, changing nothing."""

import json
import sys

import numpy as np
import pytest

from nn import Dense, Flatten, InputError, ModelError, Sequential, gradcheck
from nn.cli import main
from nn.inspect import inspect, sampled_gradcheck, trace

from test_gradients import assert_same, chain, data, snapshot


def test_gradcheck_column_agrees_with_nn_gradcheck(rng):
    # With every entry sampled, inspect runs gradcheck.compare on exactly the
    # entries check_model runs it on, with the same loss and floor: the worst
    # errors must be the same numbers, not merely both small.
    model = chain()
    x, y = data(rng)
    full = gradcheck.check_model(model, x, y)
    report = inspect(model, x, y, samples=10_000)
    column = [p for e in report["layers"] for p in e["params"].values()]
    assert len(column) == len(full)
    for p, r in zip(column, full):
        assert p["gradcheck_rel_error"] == r.worst_error
        assert p["gradcheck_passed"] == r.passed and p["gradcheck_tolerance"] == r.tolerance


def test_sampled_check_looks_at_that_many_entries_and_catches_a_wrong_gradient(rng):
    model = chain()
    x, y = data(rng)
    _, grads = model.gradients(x, y)
    reports = sampled_gradcheck(model, x, y, grads, samples=6)
    assert [r.checked + len(r.kinks) for r in reports] == [min(6, g.size) for g in grads]
    assert all(r.passed for r in reports)
    wrong = [g * 1.001 for g in grads]  # a 0.1% error: far above the 1e-7 tolerance
    assert not any(r.passed for r in sampled_gradcheck(model, x, y, wrong, samples=6))


def test_update_ratio_is_the_step_train_on_batch_takes_and_the_model_is_unchanged(rng):
    model, other = chain(), chain()
    x, y = data(rng)
    model.train_on_batch(x, y)  # moments, a step count and caches for inspect to leave alone
    other.train_on_batch(x, y)
    before = snapshot(model)
    report = inspect(model, x, y)
    assert_same(snapshot(model), before)
    w0 = other.get_weights()
    other.train_on_batch(x, y)  # what the inspected step would have done
    ratios = [p["update_ratio"] for e in report["layers"] for p in e["params"].values()]
    for ratio, a, b in zip(ratios, w0, other.get_weights()):
        # float64: |dw| and |w| are sums of <= 20 terms each, so 1e-12 relative is generous
        assert ratio == pytest.approx(np.linalg.norm(b - a) / np.linalg.norm(a), rel=1e-12)


def test_activation_statistics_and_norms_are_those_of_the_traced_arrays(rng):
    model = chain()
    x, y = data(rng, n=9)
    model.layers[1].params["bias"][:2] = -50.0  # two ReLU units dead for every example
    report, t = inspect(model, x, y), trace(model, x, y)
    assert report["loss"] == t["loss"] and report["batch_size"] == 9
    for e, te in zip(report["layers"], t["layers"]):
        out = te["output"].reshape(9, -1)
        assert e["output_shape"] == list(te["output"].shape[1:])
        assert e["input_shape"] == list(te["input"].shape[1:])
        assert e["activation"]["mean"] == pytest.approx(out.mean(), rel=1e-14)
        assert e["activation"]["std"] == pytest.approx(out.std(), rel=1e-14)
        assert (e["activation"]["min"], e["activation"]["max"]) == (out.min(), out.max())
        assert e["grad_in_norm"] == pytest.approx(np.linalg.norm(te["grad_output"]), rel=1e-14)
        for key, p in e["params"].items():
            assert p["grad_norm"] == pytest.approx(np.linalg.norm(te["grads"][key]), rel=1e-14)
    dead = [e["activation"]["dead_fraction"] for e in report["layers"]]
    assert dead[0] is None and dead[3] is None  # Flatten and the softmax have no ReLU
    assert dead[1] == np.mean(np.all(t["layers"][1]["output"] == 0, axis=0)) >= 2 / 5
    json.dumps(report)  # plain data throughout


def test_bad_input_is_refused_and_changes_nothing(rng):
    model = chain()
    x, y = data(rng)
    before = snapshot(model)
    with pytest.raises(InputError, match="y must hold class indices"):
        inspect(model, x, np.full(len(y), 3))
    with pytest.raises(InputError, match=r"x must be shaped \(N, 2, 3\)"):
        inspect(model, x[:, :1], y)
    with pytest.raises(InputError, match="samples must be a positive integer"):
        inspect(model, x, y, samples=0)
    assert_same(snapshot(model), before)
    uncompiled = Sequential([Flatten(input_shape=(2, 3)), Dense(3, "softmax")], dtype="float64")
    with pytest.raises(ModelError, match="not compiled"):
        inspect(uncompiled, x, y)
    with pytest.raises(ModelError, match="not built"):
        inspect(Sequential([Dense(3, "softmax")]), x, y)


def _one_line_error(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_cli_refuses_a_file_that_is_not_a_model(tmp_path, capsys):
    bad = tmp_path / "model.npz"
    bad.write_bytes(b"not a zip")
    _one_line_error(capsys, ["inspect", str(bad)], "is not an nn model file")


def test_cli_says_so_when_tensorflow_is_missing(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # find_spec then reports it absent
    _one_line_error(capsys, ["inspect", "--compare-keras"], "--compare-keras needs TensorFlow")


@pytest.mark.data
@pytest.mark.slow
def test_cli_inspects_the_seed_network_and_writes_the_issues_schema(tmp_path, capsys):
    out = tmp_path / "inspect.json"
    assert main(["inspect", "--samples", "10", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Forward" in text and "Backward" in text and "update ratio" in text
    report = json.loads(out.read_text())
    assert [e["name"] for e in report["layers"]] == ["flatten", "dense", "dense_1", "dense_2"]
    assert [e["output_shape"] for e in report["layers"]] == [[784], [128], [32], [10]]
    for e in report["layers"]:
        assert set(e["activation"]) == {"mean", "std", "min", "max", "dead_fraction"}
        assert isinstance(e["grad_in_norm"], float)
        for p in e["params"].values():
            assert {"grad_norm", "gradcheck_rel_error", "update_ratio"} <= set(p)
    assert set(report["layers"][1]["params"]) == {"kernel", "bias"}


@pytest.mark.data
def test_cli_inspects_a_saved_model(tmp_path, capsys):
    from nn import save_model

    model = Sequential([Flatten(input_shape=(28, 28)), Dense(16, "relu"), Dense(10, "softmax")], seed=2)
    model.compile()
    save_model(model, tmp_path / "model.npz")
    assert main(["inspect", str(tmp_path / "model.npz"), "--examples", "8", "--samples", "5",
                 "--json", str(tmp_path / "i.json")]) == 0
    assert "model files hold no Adam state" in capsys.readouterr().out
    report = json.loads((tmp_path / "i.json").read_text())
    assert report["batch_size"] == 8 and report["adam_iterations"] == 0
    assert [e["output_shape"] for e in report["layers"]] == [[784], [16], [10]]
