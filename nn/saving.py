"""Save and load models as .npz files that load with allow_pickle=False.

The file holds every parameter as `weights/<index>/<layer name>/<key>` and the
architecture as JSON text in `config` (a 0-d unicode array, not a pickle).
Whatever is wrong with a file, `load_model` raises ModelError naming it; a
failed `save_model` leaves nothing behind.
"""

import inspect
import json
import os
import zipfile
import zlib

import numpy as np

from nn import kernels
from nn.errors import InputError, ModelError, NNError

FORMAT = "nn.Sequential/1"
NOT_A_MODEL = "is not an nn model file (an .npz written by `nn train` or nn.save_model)"


def model_config(model):
    """The JSON-serialisable description that `load_model` rebuilds from."""
    layers = [{"class": type(layer).__name__, "config": layer.get_config()} for layer in model.layers]
    config = {"format": FORMAT, "dtype": model.dtype.name, "input_shape": list(model.input_shape),
              "name": model.name, "layers": layers}
    if model.optimizer is not None:
        config["compile"] = {"optimizer": model.optimizer.get_config(),
                             "loss": model.loss.get_config(), "metrics": model.metrics}
    return config


def _as_file_path(path, argument):
    """path (str or os.PathLike) as a str; InputError naming `argument` otherwise."""
    if not isinstance(path, (str, os.PathLike)) or os.fspath(path) in ("", b""):
        raise InputError(f"{argument} must be a file path (str or os.PathLike); got {path!r}")
    return os.fspath(path)


def save_model(model, path):
    """Write a built `model` (nn.Sequential) to `path` (.npz), atomically: a failure leaves no file."""
    from nn.model import Sequential

    if not isinstance(model, Sequential):
        raise InputError(f"model must be an nn.Sequential; got {type(model).__name__}")
    path = _as_file_path(path, "path")
    if os.path.isdir(path):
        raise InputError(f"path {path} is a directory; give a file name such as "
                         f"{os.path.join(path, 'model.npz')}")
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise InputError(f"path {path}: folder {folder} does not exist; create it first")
    model._require()
    arrays = {f"weights/{i}/{layer.name}/{key}": layer.params[key]
              for i, layer in enumerate(model.layers) for key in layer.params}
    _refuse_nonfinite(arrays)
    arrays["config"] = np.array(json.dumps(model_config(model)))
    _write_checked(path, arrays, lambda tmp: load_model(tmp, backend="numpy"))


def _refuse_nonfinite(arrays):
    bad = [name for name, w in arrays.items() if not np.isfinite(w).all()]
    if bad:
        raise InputError(f"the model's weights hold NaN or infinite values ({', '.join(bad)}); "
                         f"a file with them would predict only NaN, so it is not written")


def _write_checked(path, arrays, check):
    """np.savez `arrays` to a temporary file beside `path`, read it back with `check`, rename it.

    Reading the file back proves it loads: what the loader would refuse (a
    name it cannot rebuild, a key the zip format mangles) is refused here,
    as an InputError, and nothing is written. The file is flushed to disk
    before the rename, so a crash leaves the old file or the new one.
    """
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        try:
            check(tmp)
        except NNError as exc:
            raise InputError(f"cannot save to {path}: the file would not load back "
                             f"({str(exc).replace(tmp, 'it')})") from None
        os.replace(tmp, path)
    except BaseException as exc:  # KeyboardInterrupt too: never leave the temporary file
        try:
            os.unlink(tmp)
        except OSError:
            pass  # never created, or already gone; the original error matters more
        if isinstance(exc, OSError):
            raise InputError(f"cannot write the model to {path}: {exc.strerror or exc}") from exc
        raise


def load_model(path, backend=None):
    """Rebuild a model saved by `save_model` (compiled again if it was compiled).

    Raises InputError if `path` is not an existing file (or `backend` is bad),
    ModelError naming the file if it is not a model nn can rebuild.
    """
    path = _as_file_path(path, "path")
    if os.path.isdir(path):
        raise InputError(f"model file {path} is a directory; give the model.npz inside it")
    if not os.path.isfile(path):
        raise InputError(f"model file {path} does not exist")
    kernels.get_backend(backend)  # a bad backend is the caller's argument, not the file's fault
    config, arrays = _read(path)
    try:
        return _rebuild(config, arrays, backend, path)
    except NNError as exc:  # the file's values, refused by a constructor, compile or set_weights
        if isinstance(exc, ModelError) and str(exc).startswith(path):
            raise  # already says which file
        raise ModelError(f"{path}: cannot rebuild the model: {exc}") from exc


def _read(path):
    """(config dict, {name: array}) from the .npz at path; ModelError if it is no nn model."""
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise ModelError(f"{path}: cannot read it ({exc.strerror or exc})") from exc
    try:
        with f:
            data = np.load(f, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ModelError(f"{path} holds a single .npy array; it {NOT_A_MODEL}")
            with data:
                config = json.loads(str(data["config"]))
                arrays = {k: data[k] for k in data.files if k != "config"}
    except ModelError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise ModelError(f"{path} {NOT_A_MODEL}") from exc
    if not isinstance(config, dict):
        raise ModelError(f"{path}: its config must be a JSON object; got {type(config).__name__}")
    if config.get("format") != FORMAT:
        raise ModelError(f"{path} has format {config.get('format')!r}; expected {FORMAT!r}")
    return config, arrays


def _field(config, key, kind, path, where="config"):
    """config[key], which must be a `kind` (a type or tuple of types)."""
    if key not in config:
        raise ModelError(f"{path}: {where} lacks {key!r}")
    value = config[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        names = " or ".join(t.__name__ for t in (kind if isinstance(kind, tuple) else (kind,)))
        raise ModelError(f"{path}: {where}[{key!r}] must be a {names}; got {value!r}")
    return value


def _construct(cls, kwargs, path, what):
    """cls(**kwargs), with arguments cls does not take reported as a ModelError naming the file."""
    try:
        inspect.signature(cls).bind(**kwargs)
    except TypeError as exc:
        raise ModelError(f"{path}: the arguments of {what} do not fit {cls.__name__} ({exc})") from None
    return cls(**kwargs)


def _rebuild(config, arrays, backend, path):
    from nn.layers import LAYER_CLASSES
    from nn.losses import SparseCategoricalCrossentropy
    from nn.model import Sequential
    from nn.optimizers import Adam

    layers = []
    for i, spec in enumerate(_field(config, "layers", list, path)):
        where = f"layer {i}"
        if not isinstance(spec, dict):
            raise ModelError(f"{path}: {where} must be a JSON object; got {spec!r}")
        cls = _field(spec, "class", str, path, where)
        if cls not in LAYER_CLASSES:
            raise ModelError(f"{path} uses unknown layer class {cls!r}")
        layers.append(_construct(LAYER_CLASSES[cls], _field(spec, "config", dict, path, where),
                                 path, f"{where} ({cls})"))
    shape = _field(config, "input_shape", list, path)
    if not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
        raise ModelError(f"{path}: input_shape must be a list of positive integers; got {shape!r}")
    dtype = _field(config, "dtype", str, path)
    if dtype not in ("float32", "float64"):  # np.dtype would take "int32" or "f4" too
        raise ModelError(f"{path}: dtype must be 'float32' or 'float64'; got {dtype!r}")
    model = Sequential(layers, input_shape=shape, dtype=dtype, backend=backend,
                       name=_field(config, "name", str, path))
    names = [f"weights/{i}/{layer.name}/{key}" for i, layer in enumerate(model.layers)
             for key in layer.params]
    weights = [arrays.get(name) for name in names]
    if any(w is None for w in weights) or len(weights) != len(arrays):
        raise ModelError(f"{path}: the stored weights do not match its architecture")
    bad = [n for n, w in zip(names, weights) if w.dtype.kind == "f" and not np.isfinite(w).all()]
    if bad:
        raise ModelError(f"{path}: weights hold NaN or infinite values ({', '.join(bad)})")
    model.set_weights(weights)
    if "compile" in config:
        c = _field(config, "compile", dict, path)
        optimizer = _construct(Adam, _field(c, "optimizer", dict, path, "compile"), path, "the optimizer")
        loss = _construct(SparseCategoricalCrossentropy, _field(c, "loss", dict, path, "compile"),
                          path, "the loss")
        model.compile(optimizer, loss, _field(c, "metrics", list, path, "compile"))
    return model


WEIGHTS_FORMAT = "nn.weights/1"


def save_weights(model, path):
    """Write only the weights of a built `model` to `path` (.weights.npz), atomically.

    As Keras's save_weights: no architecture, no optimizer; load_weights puts
    them back into a model of the same architecture.
    """
    from nn.model import Sequential

    if not isinstance(model, Sequential):
        raise InputError(f"model must be an nn.Sequential; got {type(model).__name__}")
    path = _as_file_path(path, "path")
    model._require()
    arrays = {f"weights/{i}/{layer.name}/{key}": layer.params[key]
              for i, layer in enumerate(model.layers) for key in layer.params}
    _refuse_nonfinite(arrays)
    names = list(arrays)
    arrays["config"] = np.array(json.dumps({"format": WEIGHTS_FORMAT, "names": names}))
    _write_checked(path, arrays, lambda tmp: _read_weights(tmp, names))


def _read_weights(path, names):
    """The weight arrays of a .weights.npz in `names` order; ModelError if they are not there."""
    try:
        with np.load(path, allow_pickle=False) as data:
            config = json.loads(str(data["config"]))
            if not isinstance(config, dict) or config.get("format") != WEIGHTS_FORMAT:
                raise ModelError(f"{path} is not an nn weights file ({WEIGHTS_FORMAT})")
            if config.get("names") != names or sorted(data.files) != sorted(names + ["config"]):
                raise ModelError(f"{path}: its weights do not match this model's layers")
            return [data[name] for name in names]
    except (OSError, ValueError, KeyError, EOFError, AttributeError, zipfile.BadZipFile,
            zlib.error) as exc:
        raise ModelError(f"{path} is not an nn weights file ({WEIGHTS_FORMAT})") from exc


def load_weights(model, path):
    """Copy the weights saved by `save_weights` into `model` (same architecture); nothing else changes."""
    from nn.model import Sequential

    if not isinstance(model, Sequential):
        raise InputError(f"model must be an nn.Sequential; got {type(model).__name__}")
    path = _as_file_path(path, "path")
    if not os.path.isfile(path):
        raise InputError(f"weights file {path} does not exist")
    model._require()
    names = [f"weights/{i}/{layer.name}/{key}" for i, layer in enumerate(model.layers)
             for key in layer.params]
    weights = _read_weights(path, names)
    try:
        model.set_weights(weights)
    except InputError as exc:
        raise ModelError(f"{path}: {exc}") from None
