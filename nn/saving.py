"""Save and load models as .npz files that load with allow_pickle=False.

The file holds every parameter as `weights/<index>/<layer name>/<key>` and the
architecture as JSON text in `config` (a 0-d unicode array, not a pickle).
"""

import json
import os
import zipfile

import numpy as np

from nn.errors import InputError, ModelError

FORMAT = "nn.Sequential/1"


def model_config(model):
    """The JSON-serialisable description that `load_model` rebuilds from."""
    layers = [{"class": type(layer).__name__, "config": layer.get_config()} for layer in model.layers]
    config = {"format": FORMAT, "dtype": model.dtype.name, "input_shape": list(model.input_shape),
              "name": model.name, "layers": layers}
    if model.optimizer is not None:
        config["compile"] = {"optimizer": model.optimizer.get_config(),
                             "loss": model.loss.get_config(), "metrics": model.metrics}
    return config


def save_model(model, path):
    """Write `model` to `path` (.npz), atomically: a crash leaves no half file."""
    model._require()
    arrays = {f"weights/{i}/{layer.name}/{key}": layer.params[key]
              for i, layer in enumerate(model.layers) for key in layer.params}
    arrays["config"] = np.array(json.dumps(model_config(model)))
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


def load_model(path, backend=None):
    """Rebuild a model saved by `save_model` (compiled again if it was compiled)."""
    from nn.layers import LAYER_CLASSES
    from nn.losses import SparseCategoricalCrossentropy
    from nn.model import Sequential
    from nn.optimizers import Adam

    if not os.path.isfile(path):
        raise InputError(f"model file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            config = json.loads(str(data["config"]))
            arrays = {k: data[k] for k in data.files if k != "config"}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError):
        raise ModelError(f"{path} is not an nn model file (an .npz written by `nn train` or "
                         "nn.save_model)") from None
    if config.get("format") != FORMAT:
        raise ModelError(f"{path} has format {config.get('format')!r}; expected {FORMAT!r}")
    layers = []
    for spec in config["layers"]:
        if spec["class"] not in LAYER_CLASSES:
            raise ModelError(f"{path} uses unknown layer class {spec['class']!r}")
        layers.append(LAYER_CLASSES[spec["class"]](**spec["config"]))
    model = Sequential(layers, input_shape=config["input_shape"], dtype=config["dtype"],
                       backend=backend, name=config["name"])
    weights = [arrays.get(f"weights/{i}/{layer.name}/{key}")
               for i, layer in enumerate(model.layers) for key in layer.params]
    if any(w is None for w in weights) or len(weights) != len(arrays):
        raise ModelError(f"{path}: the stored weights do not match its architecture")
    model.set_weights(weights)
    if "compile" in config:
        c = config["compile"]
        model.compile(Adam(**c["optimizer"]), SparseCategoricalCrossentropy(**c["loss"]), c["metrics"])
    return model
