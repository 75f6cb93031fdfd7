"""Bad files, paths and settings: one clear error naming what was wrong, nothing left behind."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from nn import (DataError, Dense, Flatten, InputError, ModelError, Sequential, gradcheck,
                load_model, save_model)
from nn.datasets import mnist
from nn.recipe import scale_images
from nn.saving import model_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def nn_cli(*args, env=None, cwd=ROOT):
    """Run `python -m nn ARGS` as tests/test_cli.py does; returns the CompletedProcess."""
    full_env = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
    return subprocess.run([sys.executable, "-m", "nn", *args], capture_output=True, text=True,
                          cwd=cwd, env=full_env, timeout=600)


def one_line_error(result, fragment):
    """The command failed with exit 2 and one stderr line holding `fragment`."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(lines) == 1 and fragment in lines[0], result.stderr


def small_model(compiled=True):
    model = Sequential([Flatten(input_shape=(2, 2)), Dense(3, activation="relu")], seed=0,
                       backend="numpy")
    if compiled:
        model.compile()
    return model


# ---------------------------------------------------------------- load_model


def write_model_file(path, config, **replace):
    """An .npz laid out as save_model writes it, with `config` and any arrays replaced."""
    model = small_model()
    arrays = {f"weights/{i}/{layer.name}/{key}": layer.params[key]
              for i, layer in enumerate(model.layers) for key in layer.params}
    arrays.update(replace)
    np.savez(path, config=np.array(json.dumps(config)), **arrays)
    return path


def without(config, key):
    return {k: v for k, v in config.items() if k != key}


GOOD = model_config(small_model())
BAD_CONFIGS = {
    "not-an-object": ([1, 2], "config must be a JSON object"),
    "no-layers": (without(GOOD, "layers"), "config lacks 'layers'"),
    "no-input-shape": (without(GOOD, "input_shape"), "config lacks 'input_shape'"),
    "layers-5": (dict(GOOD, layers=5), "config['layers'] must be a list; got 5"),
    "layer-not-object": (dict(GOOD, layers=["dense"]), "layer 0 must be a JSON object"),
    "layer-kwarg": (dict(GOOD, layers=[GOOD["layers"][0], {"class": "Dense", "config": {
        "units": 3, "activation": "relu", "name": "dense", "kernel_size": 2}}]),
        "layer 1 (Dense) do not fit Dense (got an unexpected keyword argument 'kernel_size')"),
    "layer-value": (dict(GOOD, layers=[GOOD["layers"][0], {"class": "Dense", "config": {
        "units": -3}}]), "units must be a positive integer"),
    "adam-kwarg": (dict(GOOD, compile=dict(GOOD["compile"], optimizer={"lr": 0.1})),
                   "the optimizer do not fit Adam (got an unexpected keyword argument 'lr')"),
    "loss-kwarg": (dict(GOOD, compile=dict(GOOD["compile"], loss={"reduction": "sum"})),
                   "the loss do not fit SparseCategoricalCrossentropy"),
    "dtype": (dict(GOOD, dtype="nonsense"), "dtype must be 'float32' or 'float64'; got 'nonsense'"),
    "input-shape": (dict(GOOD, input_shape=[2, "x"]), "input_shape must be a list of positive"),
}


@pytest.mark.parametrize("case", BAD_CONFIGS, ids=list(BAD_CONFIGS))
def test_load_model_refuses_a_bad_config_naming_the_file(case, tmp_path):
    config, message = BAD_CONFIGS[case]
    path = write_model_file(tmp_path / "model.npz", config)
    with pytest.raises(ModelError) as info:
        load_model(path)
    assert str(path) in str(info.value) and message in str(info.value)


@pytest.mark.parametrize("value", [np.nan, np.inf], ids=["nan", "inf"])
def test_load_model_refuses_non_finite_weights(value, tmp_path):
    kernel = np.ones((4, 3), np.float32)
    kernel[1, 2] = value
    path = write_model_file(tmp_path / "model.npz", GOOD, **{"weights/1/dense/kernel": kernel})
    with pytest.raises(ModelError, match="NaN or infinite.*weights/1/dense/kernel") as info:
        load_model(path)
    assert str(path) in str(info.value)


def test_load_model_reads_what_the_test_files_are_made_from(tmp_path):
    # The helper above must write a loadable file, or every refusal above proves nothing.
    model = load_model(write_model_file(tmp_path / "model.npz", GOOD))
    assert [w.shape for w in model.get_weights()] == [(4, 3), (3,)]


def test_load_model_refuses_files_that_are_not_npz_archives(tmp_path):
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    npy = tmp_path / "array.npz"
    with open(npy, "wb") as f:
        np.save(f, np.arange(3))  # an .npy under an .npz name
    with pytest.raises(ModelError, match="is not an nn model file") as info:
        load_model(empty)
    assert str(empty) in str(info.value)
    with pytest.raises(ModelError, match="holds a single .npy array") as info:
        load_model(npy)
    assert str(npy) in str(info.value)


def test_load_model_refuses_a_path_that_is_not_a_file(tmp_path):
    with pytest.raises(InputError, match="path must be a file path.*got None"):
        load_model(None)
    with pytest.raises(InputError, match=f"model file {tmp_path} is a directory"):
        load_model(tmp_path)


@pytest.mark.parametrize("make, message", [
    (lambda p: p.write_bytes(b""), "is not an nn model file"),
    (lambda p: np.save(open(p, "wb"), np.arange(3)), "holds a single .npy array"),
    (lambda p: write_model_file(p, [1, 2]), "config must be a JSON object"),
], ids=["empty", "npy", "config-list"])
def test_evaluate_reports_a_bad_model_file_in_one_line(make, message, tmp_path):
    path = tmp_path / "model.npz"
    make(path)
    one_line_error(nn_cli("evaluate", str(path)), message)


def test_evaluate_says_a_directory_is_a_directory(tmp_path):
    one_line_error(nn_cli("evaluate", str(tmp_path)), "is a directory")


def test_load_model_says_an_unreadable_file_cannot_be_read(tmp_path, monkeypatch):
    import nn.saving

    path = tmp_path / "model.npz"
    save_model(small_model(), path)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(nn.saving, "open", denied, raising=False)  # root ignores chmod
    with pytest.raises(ModelError, match=f"{path}: cannot read it \\(Permission denied\\)"):
        load_model(path)


# ---------------------------------------------------------------- save_model


def test_save_model_refuses_what_is_not_a_model(tmp_path):
    with pytest.raises(InputError, match="model must be an nn.Sequential; got dict"):
        save_model({"layers": []}, tmp_path / "model.npz")
    assert os.listdir(tmp_path) == []


def test_save_model_refuses_a_missing_folder(tmp_path):
    with pytest.raises(InputError, match=f"folder {tmp_path / 'missing'} does not exist"):
        save_model(small_model(), tmp_path / "missing" / "model.npz")
    assert os.listdir(tmp_path) == []


def test_save_model_refuses_a_directory_and_leaves_nothing(tmp_path):
    target = tmp_path / "model.npz"
    target.mkdir()
    with pytest.raises(InputError, match="is a directory; give a file name"):
        save_model(small_model(), target)
    assert sorted(os.listdir(tmp_path)) == ["model.npz"] and os.listdir(target) == []


def test_save_model_removes_its_temporary_file_when_writing_fails(tmp_path, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(InputError, match="cannot write the model to .*No space left on device"):
        save_model(small_model(), tmp_path / "model.npz")
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- environment settings

PROBE = """
import numpy as np
import nn
from nn.recipe import seed_model
try:
    seed_model(seed=0, backend="numba").fit(np.zeros((4, 28, 28), np.float32), np.zeros(4, int),
                                            epochs=1, verbose=0)
    print("accepted")
except nn.InputError as exc:
    print("InputError:", exc)
"""

BAD_SETTINGS = {
    "threads-word": ({"NN_NUM_THREADS": "abc"}, "NN_NUM_THREADS must be a positive integer"),
    "threads-fraction": ({"NN_NUM_THREADS": "1.5"}, "NN_NUM_THREADS must be a positive integer"),
    "threads-negative": ({"NN_NUM_THREADS": "-4"}, "NN_NUM_THREADS must be a positive integer"),
    "blas-threads": ({"NN_BLAS_THREADS": "x"}, "NN_BLAS_THREADS must be a positive integer"),
    "cache-no": ({"NN_NUMBA_CACHE": "no"}, "NN_NUMBA_CACHE must be 0 (cache off) or 1 (cache on)"),
    "skip-zeros": ({"NN_SKIP_ZEROS": "maybe"}, "NN_SKIP_ZEROS must be 0, 1 or auto; got 'maybe'"),
    "flush-yes": ({"NN_FLUSH_SUBNORMALS": "yes"},
                  "NN_FLUSH_SUBNORMALS must be 0 (IEEE subnormals) or 1 (flush them to zero); got 'yes'"),
}


def run_python(code, env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=ROOT, **env), timeout=600)


@pytest.mark.parametrize("case", BAD_SETTINGS, ids=list(BAD_SETTINGS))
def test_a_bad_setting_is_an_input_error_on_first_use_not_at_import(case):
    env, message = BAD_SETTINGS[case]
    result = run_python(PROBE, env)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert result.stdout.startswith("InputError:") and message in result.stdout, result.stdout


def test_good_settings_are_accepted():
    env = {"NN_NUM_THREADS": "1", "NN_BLAS_THREADS": "0", "NN_NUMBA_CACHE": "1",
           "NN_SKIP_ZEROS": "auto", "NN_FLUSH_SUBNORMALS": "0"}
    result = run_python(PROBE, env)
    assert result.stdout.strip() == "accepted", result.stdout + result.stderr


def test_thread_counts_are_read_as_given():
    code = "from nn.fast import config; print(config.NUM_THREADS, config.BLAS_THREADS, config.CACHE)"
    result = run_python(code, {"NN_NUM_THREADS": "3", "NN_BLAS_THREADS": "2", "NN_NUMBA_CACHE": "0"})
    assert result.stdout.split() == ["3", "2", "False"], result.stderr


def test_openmp_spinning_is_shortened_when_numba_loads_unless_the_environment_says_otherwise():
    code = ("import os, nn; print(os.environ.get('GOMP_SPINCOUNT'), end=' '); "
            "from nn.fast import numba_kernels, config; "
            "s = config.thread_settings(); print(s['GOMP_SPINCOUNT'], s['gomp_spincount_set_by_nn'])")
    # (this process has loaded numba's backend: its environment has the setting already)
    clean = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}

    def read(**env):
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                              env=dict(clean, PYTHONPATH=ROOT, **env), timeout=600).stdout.split()

    assert read() == ["None", "30000", "True"]  # not at `import nn`; when the numba backend loads
    assert read(GOMP_SPINCOUNT="5") == ["5", "5", "False"]
    assert read(OMP_WAIT_POLICY="active") == ["None", "None", "False"]


@pytest.mark.parametrize("command", [["data"], ["evaluate", "no/such/model.npz"],
                                     ["gradcheck", "--examples", "1"]], ids=lambda c: c[0])
@pytest.mark.parametrize("case", ["threads-word", "cache-no"])
def test_every_command_reports_a_bad_setting_in_one_line(case, command):
    env, message = BAD_SETTINGS[case]
    one_line_error(nn_cli(*command, env=env), message)


# ---------------------------------------------------------------- the command line
# Each case also passes --data-dir /no/such: had the check waited until after
# the data loaded, the error would be about the data instead.

NO_DATA = ["--data-dir", "/no/such/folder"]


def test_train_refuses_an_out_that_is_a_file_before_loading_anything(tmp_path):
    out = tmp_path / "results"
    out.write_text("keep me")
    one_line_error(nn_cli("train", "--out", str(out), *NO_DATA),
                   f"--out {out} exists and is not a directory")
    assert out.read_text() == "keep me"


def test_train_refuses_an_out_that_cannot_be_created(tmp_path):
    (tmp_path / "file").write_text("")
    one_line_error(nn_cli("train", "--out", str(tmp_path / "file" / "run"), *NO_DATA),
                   f"cannot be created: {tmp_path / 'file'} is not a directory")


def test_train_that_fails_before_writing_leaves_no_empty_out_folder(tmp_path):
    out = tmp_path / "new" / "run"
    one_line_error(nn_cli("train", "--out", str(out), *NO_DATA), "/no/such/folder")
    assert os.listdir(tmp_path) == []


def test_gradcheck_checks_its_json_path_before_running(tmp_path):
    one_line_error(nn_cli("gradcheck", "--json", str(tmp_path), *NO_DATA),
                   f"--json {tmp_path} is a directory")
    missing = tmp_path / "missing" / "report.json"
    one_line_error(nn_cli("gradcheck", "--json", str(missing), *NO_DATA),
                   f"folder {tmp_path / 'missing'} does not exist")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("command", [["train", "--out", "OUT"], ["gradcheck"], ["evaluate", "MODEL"]],
                         ids=lambda c: c[0])
@pytest.mark.parametrize("env, message", [
    ({"NN_BACKEND": "nonsense"}, "NN_BACKEND: backend must be one of numba, numpy; got 'nonsense'"),
    ({"NN_SKIP_ZEROS": "maybe"}, "NN_SKIP_ZEROS must be 0, 1 or auto; got 'maybe'"),
], ids=["backend", "skip-zeros"])
def test_bad_settings_are_refused_before_the_data_loads(command, env, message, tmp_path):
    model = tmp_path / "model.npz"
    save_model(small_model(), model)
    args = [str(tmp_path / "out") if a == "OUT" else str(model) if a == "MODEL" else a for a in command]
    one_line_error(nn_cli(*args, *NO_DATA, env=env), message)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, message", [
    (["train", "--seed", "-1"], "argument --seed: expected a non-negative integer, got '-1'"),
    (["gradcheck", "--seed", "-1"], "argument --seed: expected a non-negative integer, got '-1'"),
    (["gradcheck", "--examples", "0"], "argument --examples: expected a positive integer, got '0'"),
    (["gradcheck", "--examples", "2.5"], "argument --examples: expected a positive integer"),
], ids=["train-seed", "gradcheck-seed", "examples-0", "examples-fraction"])
def test_bad_numbers_are_refused_by_the_parser(args, message, tmp_path):
    result = nn_cli(*args, "--data-dir", "/no/such/folder", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert message in result.stderr.splitlines()[-1]  # after argparse's usage line
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- MNIST files


def test_an_npy_named_mnist_npz_is_a_data_error(tmp_path):
    path = tmp_path / "mnist.npz"
    with open(path, "wb") as f:
        np.save(f, np.zeros((3, 28, 28), np.uint8))
    with pytest.raises(DataError, match=f"path={path} is unusable: .*holds a single .npy array"):
        mnist.load_data(path=path, verbose=False)
    with pytest.raises(DataError, match="holds a single .npy array"):  # found in a folder, too
        mnist.load_data(path=tmp_path, verbose=False)


# ---------------------------------------------------------------- scale_images

@pytest.mark.parametrize("dtype", ["int32", "uint8", "float16", "complex64", "nonsense"])
def test_scale_images_accepts_only_float32_and_float64(dtype):
    images = np.full((2, 28, 28), 200, np.uint8)
    with pytest.raises(InputError, match=f"dtype must be 'float32' or 'float64'; got '{dtype}'"):
        scale_images(images, dtype)


def test_scale_images_still_scales_into_both_float_dtypes():
    images = np.full((1, 2, 2), 51, np.uint8)
    for dtype in ("float32", np.float64):
        out = scale_images(images, dtype)
        assert out.dtype == np.dtype(dtype) and out[0, 0, 0] == np.dtype(dtype).type(51 / 255.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scale_images_gives_the_notebooks_floats_for_every_pixel_value(dtype):
    # The notebook divides in float64 and Keras casts to float32; scale_images
    # divides in dtype itself. Every one of the 256 pixel values must come out
    # as the very same float (compared bit for bit), images of any shape.
    pixels = np.arange(256, dtype=np.uint8).reshape(4, 8, 8)
    notebook = (pixels / 255.0).astype(dtype)
    out = scale_images(pixels, dtype)
    assert out.dtype == dtype and out.shape == pixels.shape and out.flags.c_contiguous
    assert np.array_equal(out.view(f"u{out.itemsize}"), notebook.view(f"u{out.itemsize}"))


# ---------------------------------------------------------------- gradcheck


@pytest.mark.parametrize("examples, message", [
    (-1, "examples must be a positive integer; got -1"),
    (0, "examples must be a positive integer; got 0"),
    (2.5, "examples must be a positive integer; got 2.5"),
    (60001, "examples must be at most 60000"),
], ids=["negative", "zero", "fraction", "too-many"])
def test_check_seed_architecture_refuses_bad_example_counts(examples, message):
    # data_dir points nowhere: the check must come before the data is looked for.
    with pytest.raises(InputError, match=message):
        gradcheck.check_seed_architecture(examples=examples, data_dir="/no/such/folder")


def test_worst_of_no_reports_is_an_input_error():
    with pytest.raises(InputError, match="reports is empty"):
        gradcheck.worst([])


def built_dense():
    layer = Dense(3, activation="relu")
    layer.build((4,), np.random.default_rng(0), "float64")
    return layer


@pytest.mark.parametrize("make, error, message", [
    (lambda: (Dense(3), np.ones((2, 4)), np.random.default_rng(0)), ModelError,
     "layer dense is not built"),
    (lambda: (built_dense(), np.ones((2, 5)), np.random.default_rng(0)), InputError,
     r"x must be shaped \(N, 4\)"),
    (lambda: (built_dense(), np.ones(4), np.random.default_rng(0)), InputError,
     "x must have a batch axis"),
    (lambda: (built_dense(), np.ones((2, 4)), None), InputError,
     "rng must be a numpy.random.Generator.*got NoneType"),
    (lambda: ("dense", np.ones((2, 4)), np.random.default_rng(0)), InputError,
     "layer must be an nn.layers.Layer; got str"),
], ids=["unbuilt", "x-shape", "x-1d", "rng-none", "not-a-layer"])
def test_check_layer_refuses_bad_arguments(make, error, message):
    with pytest.raises(error, match=message):
        gradcheck.check_layer(*make())


def test_check_layer_leaves_the_callers_x_alone():
    x = np.random.default_rng(1).standard_normal((2, 4))
    before = x.copy()
    reports = gradcheck.check_layer(built_dense(), x, np.random.default_rng(0))
    assert all(r.passed for r in reports) and np.array_equal(x, before)


@pytest.mark.data
@pytest.mark.parametrize("metrics", [[], None], ids=["no-metrics", "not-compiled"])
def test_evaluate_reports_accuracy_whatever_the_model_was_compiled_with(metrics, tmp_path):
    model = Sequential([Flatten(input_shape=(28, 28)), Dense(10, activation="softmax")], seed=0)
    if metrics is not None:
        model.compile(metrics=metrics)
    save_model(model, tmp_path / "model.npz")
    result = nn_cli("evaluate", str(tmp_path / "model.npz"))
    assert result.returncode == 0, result.stderr
    assert "Test accuracy:" in result.stdout

