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
    bad = [layer.name for layer in model.layers if "\0" in layer.name]
    if bad:  # a zip member name stops at a NUL byte: two layers' weights would collide
        raise InputError(f"cannot save to {path}: the file would not load back (layer name "
                         f"{bad[0]!r} holds a NUL byte)")
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


def _write_checked(path, arrays, check=None, what="the model"):
    """np.savez `arrays` to a temporary file beside `path`, read it back with `check`, rename it.

    Reading the file back proves it loads: what the loader would refuse (a
    name it cannot rebuild, a key the zip format mangles) is refused here,
    as an InputError, and nothing is written. The file is flushed to disk
    before the rename, so a crash leaves the old file or the new one.
    check: None to skip the read-back; what: names the file in a write error.
    """
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        try:
            if check is not None:
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
            raise InputError(f"cannot write {what} to {path}: {exc.strerror or exc}") from exc
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
    config, headers = _read(path)
    try:
        return _rebuild(config, headers, backend, path)
    except NNError as exc:  # the file's values, refused by a constructor, compile or set_weights
        if isinstance(exc, ModelError) and str(exc).startswith(path):
            raise  # already says which file
        raise ModelError(f"{path}: cannot rebuild the model: {exc}") from exc


#: Bounds on what a model file may ask for before anything is decompressed.
MAX_CONFIG_BYTES = 1 << 20  # the seed network's config is ~600 bytes
MAX_CONFIG_DEPTH = 10  # {"layers": [{"config": {...}}]} nests 4 deep


def _depth(value, limit):
    """Nesting depth of a parsed JSON value, counting no further than limit + 1."""
    stack, deepest = [(value, 1)], 0
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return deepest


def _npy_header(f):
    """(shape, dtype) from the start of a .npy stream, reading only its header."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise ValueError(f"unsupported .npy version {version}")
    return tuple(shape), dtype


def _read(path):
    """(config dict, {name: (shape, dtype)}) of the .npz at path, decompressing only headers.

    ModelError if it is no nn model file. The config's size and nesting are
    bounded before it is parsed; the arrays are read later (`_arrays`), once
    their headers are known to match what the config describes.
    """
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise ModelError(f"{path}: cannot read it ({exc.strerror or exc})") from exc
    try:
        with f:
            if f.read(6) == b"\x93NUMPY":
                raise ModelError(f"{path} holds a single .npy array; it {NOT_A_MODEL}")
            f.seek(0)
            with zipfile.ZipFile(f) as zf:
                members = {info.filename: info for info in zf.infolist()}
                if "config.npy" not in members:
                    raise ModelError(f"{path} {NOT_A_MODEL}")
                info = members.pop("config.npy")
                if info.file_size > MAX_CONFIG_BYTES:
                    raise ModelError(f"{path}: its config is {info.file_size:,} bytes; an nn model's "
                                     f"is a few kB (at most {MAX_CONFIG_BYTES:,} are read)")
                with zf.open(info) as member:
                    config_array = np.lib.format.read_array(member, allow_pickle=False)
                headers = {}
                for name, info in members.items():
                    if not name.endswith(".npy"):
                        raise ModelError(f"{path}: unexpected member {name!r} in the archive")
                    with zf.open(info) as member:
                        headers[name[:-4]] = _npy_header(member)
    except ModelError:
        raise
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise ModelError(f"{path} {NOT_A_MODEL}") from exc
    try:
        config = json.loads(str(config_array))
    except RecursionError:
        raise ModelError(f"{path}: its config nests deeper than {MAX_CONFIG_DEPTH} levels") from None
    except ValueError as exc:
        raise ModelError(f"{path} {NOT_A_MODEL}") from exc
    if _depth(config, MAX_CONFIG_DEPTH) > MAX_CONFIG_DEPTH:
        raise ModelError(f"{path}: its config nests deeper than {MAX_CONFIG_DEPTH} levels")
    if not isinstance(config, dict):
        raise ModelError(f"{path}: its config must be a JSON object; got {type(config).__name__}")
    if config.get("format") != FORMAT:
        raise ModelError(f"{path} has format {config.get('format')!r}; expected {FORMAT!r}")
    return config, headers


def _arrays(path, names):
    """The named arrays of the .npz at path (their headers already checked)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return [data[name] for name in names]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise ModelError(f"{path} {NOT_A_MODEL}") from exc


def _expected_params(layers, input_shape, path):
    """{name in the file: shape} of every parameter, worked out without allocating any.

    Dense is the only layer with parameters: kernel (inputs, units), bias (units,).
    """
    expected, shape = {}, tuple(input_shape)
    for i, layer in enumerate(layers):
        if isinstance(layer, _dense_class()):
            if len(shape) != 1:
                break  # build will refuse it with its own message
            expected[f"weights/{i}/{layer.name}/kernel"] = (shape[0], layer.units)
            expected[f"weights/{i}/{layer.name}/bias"] = (layer.units,)
        elif type(layer).build is not _layer_class().build:
            return None  # a layer with its own parameters: no shortcut, build decides
        try:
            shape = layer.compute_output_shape(shape)
        except NNError:
            break
    return expected


def _dense_class():
    from nn.layers import Dense

    return Dense


def _layer_class():
    from nn.layers import Layer

    return Layer


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


def _rebuild(config, headers, backend, path):
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
    name = _field(config, "name", str, path)
    expected = _expected_params(layers, shape, path)
    stored = {k: s for k, (s, _) in headers.items()}
    if expected is not None and expected != stored:  # checked before anything is decompressed
        raise ModelError(f"{path}: the stored weights do not match its architecture")
    if any(dt.kind != "f" or dt.itemsize > 8 for _, dt in headers.values()):
        raise ModelError(f"{path}: its weights must be float arrays")
    # An unallocatable size is a ModelError from build ("cannot allocate its parameters").
    model = Sequential(layers, input_shape=shape, dtype=dtype, backend=backend, name=name)
    names = [f"weights/{i}/{layer.name}/{key}" for i, layer in enumerate(model.layers)
             for key in layer.params]
    if sorted(names) != sorted(headers):
        raise ModelError(f"{path}: the stored weights do not match its architecture")
    weights = _arrays(path, names)
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
