"""The mutant catalogue: every planted bug caught, the library restored, and no false alarm."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nn import Dense, Flatten, ReLU, Sequential, Softmax, gradcheck
from nn.gradcheck import mutants
from nn.kernels import numpy_kernels
from nn.optimizers import Adam

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ADAM_BUGS = {m.name for m in mutants.MUTANTS if m.name.startswith("adam-")}


def test_every_mutant_is_caught_by_the_checks_meant_for_it():
    result = mutants.run_catalogue(keras=False)
    assert result["control"] == {"finite differences": [], "complex step": [], "adam formula": []}
    assert len(result["mutants"]) >= 12
    for m in result["mutants"]:
        expected = ["adam formula"] if m["name"] in ADAM_BUGS else ["finite differences", "complex step"]
        assert m["caught"] and m["caught_by"] == expected, m


def test_a_mutant_is_undone_after_its_block_even_on_error():
    before = (dict(vars(numpy_kernels)), Dense.backward, Adam.coefficients)
    for mutant in mutants.MUTANTS:
        with pytest.raises(RuntimeError):
            with mutant.applied():
                raise RuntimeError("a check crashed")
    assert (dict(vars(numpy_kernels)), Dense.backward, Adam.coefficients) == before


def test_the_adam_check_holds_nn_to_the_hand_written_keras_rule():
    assert mutants.adam_check() == []
    # and keras_adam is Keras's rule, not nn's code: one step from zero moments
    w, g = np.array([1.0, -2.0]), np.array([0.5, -0.25])
    b1, b2 = float(np.float32(0.9)), float(np.float32(0.999))
    m, v = 0.1 * g, 0.001 * g * g
    alpha = 0.001 * np.sqrt(1 - b2) / (1 - b1)
    np.testing.assert_allclose(mutants.keras_adam(w, [g]), w - m * alpha / (np.sqrt(v) + 1e-7), rtol=1e-15)


@st.composite
def tiny_networks(draw):
    """A random tiny network (1-3 hidden layers, widths 1-6, both ReLU and softmax styles) and a batch."""
    seed = draw(st.integers(0, 2**31 - 1))
    n_in = draw(st.integers(1, 5))
    layers = [Flatten(input_shape=(n_in,))]
    for width in draw(st.lists(st.integers(1, 6), min_size=1, max_size=3)):
        layers += [Dense(width, "relu")] if draw(st.booleans()) else [Dense(width), ReLU()]
    classes = draw(st.integers(2, 4))
    layers += [Dense(classes, "softmax")] if draw(st.booleans()) else [Dense(classes), Softmax()]
    model = Sequential(layers, dtype="float64", seed=seed, backend="numpy")
    model.compile()
    rng = np.random.default_rng(seed)
    batch = draw(st.integers(1, 4))
    return model, rng.standard_normal((batch, n_in)), rng.integers(0, classes, batch), seed


@settings(max_examples=120, deadline=None, derandomize=True)
@given(tiny_networks())
def test_no_false_alarm_on_the_correct_code(network):
    model, x, y, seed = network
    for method in ("fd", "complex"):
        reports = gradcheck.check_network(model, x, y, method, seed)
        assert mutants.failing(reports) == [], [r.line() for r in mutants.failing(reports)]
    assert mutants.adam_check(seed) == []


def test_cli_writes_the_mutant_table_as_json(tmp_path):
    out = tmp_path / "mutants.json"
    result = subprocess.run([sys.executable, "-m", "nn", "gradcheck", "--mutants", "--no-keras", "--json",
                             str(out)], capture_output=True, text=True, cwd=ROOT, timeout=600,
                            env=dict(os.environ, PYTHONPATH=ROOT))
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["passed"] and len(report["mutants"]) == len(mutants.MUTANTS)
    assert all(set(m) == {"name", "description", "caught", "caught_by"} and m["caught"] for m in report["mutants"])
    assert "15 of 15 mutants caught" in result.stdout and "no check fired" in result.stdout


@pytest.mark.keras
@pytest.mark.slow
def test_the_keras_lockstep_catches_training_bugs_but_not_the_unused_softmax_jacobian():
    from reference.mutant_lockstep import lockstep_check

    by_name = {m.name: m for m in mutants.MUTANTS}
    assert lockstep_check() == []
    for name, caught in (("missing-1/B", True), ("adam-betas-swapped", True), ("softmax-jacobian-no-dot", False)):
        with by_name[name].applied():
            assert bool(lockstep_check()) == caught, name


@pytest.mark.parametrize("args, message", [
    (["--layers", "784"], "--layers must be at least two positive widths"),
    (["--layers", "784,0,10"], "--layers must be at least two positive widths"),
    (["--layers", "10,1"], "number of classes and must be at least 2"),
    (["--method", "complex", "--dtype", "float32"], "the complex step checks float64 gradients only"),
], ids=["one-width", "zero-width", "one-class", "complex-float32"])
def test_bad_gradcheck_arguments_get_one_line_and_exit_2(args, message):
    result = subprocess.run([sys.executable, "-m", "nn", "gradcheck", *args, "--data-dir", "/no/such/folder"],
                            capture_output=True, text=True, cwd=ROOT, timeout=600,
                            env=dict(os.environ, PYTHONPATH=ROOT))
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and message in lines[0], result.stderr
    # --examples 0 is refused by argparse (tests/test_bad_input_io.py), as every command's counts are


@pytest.mark.data
@pytest.mark.parametrize("method, bound", [("complex", 1e-13), ("directional", 1e-7)])
def test_the_seed_network_passes_each_method_from_the_command_line(method, bound, tmp_path, capsys):
    from nn.cli import main

    out = tmp_path / "gradcheck.json"
    assert main(["gradcheck", "--method", method, "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["passed"] and report["method"] == method and report["layers"] == [784, 128, 32, 10]
    assert len(report["arrays"]) == 16 and max(a["worst_error"] for a in report["arrays"]) <= bound
    assert f"method {method}" in capsys.readouterr().out


def test_the_command_line_offers_every_method():
    from nn.cli import gradcheck as cli

    assert cli.METHODS == gradcheck.METHODS
