"""The Keras twin of an nn Sequential: build it, move weights and Adam state, save and load.

Both sides list weights in the same order, [kernel0 (in, out), bias0,
kernel1, ...], so weights move with get_weights/set_weights unchanged. nn is
only ever touched through its public API here.
"""

import contextlib
import os

import numpy as np

from reference import runtime  # noqa: F401  (configures TensorFlow first)

import keras

import nn
from nn.errors import InputError, ModelError
from nn.optimizers import AdamState


@contextlib.contextmanager
def keras_floatx(dtype):
    """Keras's floatx set to `dtype` inside the block, restored after.

    Keras creates the optimizer's learning-rate variable and the metrics'
    accumulators in floatx, not in the layers' dtype: a float64 model built
    under the default float32 would take lr = float32(0.001) and sum its
    losses in float32. So a float64 twin is built and compiled under float64.
    """
    old = keras.config.floatx()
    keras.config.set_floatx(np.dtype(dtype).name)
    try:
        yield
    finally:
        keras.config.set_floatx(old)


def _keras_layer(layer, dtype):
    """The Keras layer computing what one nn layer computes."""
    if isinstance(layer, nn.Flatten):
        return keras.layers.Flatten(name=layer.name, dtype=dtype)
    if isinstance(layer, nn.Dense):
        return keras.layers.Dense(layer.units, activation=layer.activation, name=layer.name,
                                  dtype=dtype)
    if isinstance(layer, nn.ReLU):
        return keras.layers.ReLU(name=layer.name, dtype=dtype)
    if isinstance(layer, nn.Softmax):
        return keras.layers.Softmax(name=layer.name, dtype=dtype)
    raise ModelError(f"no Keras twin for nn layer {type(layer).__name__}")


def to_keras(model, compile=True):
    """A keras.Sequential with the same layers, names, dtype and weights as `model`.

    compile=True (and `model` compiled) compiles it as nn is: Adam with the
    same hyper-parameters, sparse categorical cross-entropy, accuracy.
    """
    if not model.built:
        raise ModelError("the nn model is not built: give input_shape or call build first")
    dtype = model.dtype.name
    with keras_floatx(dtype):
        kmodel = keras.Sequential(
            [keras.Input(shape=model.input_shape, dtype=dtype)]
            + [_keras_layer(layer, dtype) for layer in model.layers],
            name=model.name,
        )
        kmodel.set_weights(model.get_weights())
        if compile and model.optimizer is not None:
            kmodel.compile(
                optimizer=keras.optimizers.Adam(**model.optimizer.get_config()),
                loss=keras.losses.SparseCategoricalCrossentropy(**model.loss.get_config()),
                metrics=list(model.metrics),
            )
    return kmodel


def _activation_name(fn):
    name = keras.activations.serialize(fn)
    return name if isinstance(name, str) else getattr(fn, "__name__", repr(fn))


def _nn_layer(klayer):
    """The nn layer computing what one Keras layer computes (ModelError if none does)."""
    kind = type(klayer).__name__
    if isinstance(klayer, keras.layers.Flatten):
        return nn.Flatten(name=klayer.name)
    if isinstance(klayer, keras.layers.Dense) and klayer.use_bias:
        act = _activation_name(klayer.activation)
        if act in ("linear", "relu", "softmax"):
            return nn.Dense(klayer.units, activation=act, name=klayer.name)
        kind += f"(activation={act!r})"
    elif isinstance(klayer, keras.layers.Activation):
        act = _activation_name(klayer.activation)
        if act in ("relu", "softmax"):
            return nn.ReLU(name=klayer.name) if act == "relu" else nn.Softmax(name=klayer.name)
        kind += f"({act!r})"
    elif isinstance(klayer, keras.layers.ReLU):
        if klayer.max_value is None and klayer.negative_slope == 0 and klayer.threshold == 0:
            return nn.ReLU(name=klayer.name)
        kind += " with max_value, negative_slope or threshold"
    elif isinstance(klayer, keras.layers.Softmax) and klayer.axis in (-1, [-1], (-1,)):
        return nn.Softmax(name=klayer.name)
    raise ModelError(f"nn has no layer computing Keras's {kind} (layer {klayer.name!r})")


def _nn_compile_args(kmodel):
    """(Adam, loss) matching a compiled Keras model's, or None if it is not compiled."""
    opt = getattr(kmodel, "optimizer", None)
    if opt is None or not getattr(kmodel, "compiled", False):
        return None
    config = opt.get_config()
    extras = {k: config.get(k) for k in ("amsgrad", "weight_decay", "clipnorm", "clipvalue",
                                         "global_clipnorm", "use_ema")}
    if not isinstance(opt, keras.optimizers.Adam) or any(extras.values()):
        raise ModelError(f"nn can only train with plain Adam; the Keras model has "
                         f"{type(opt).__name__} {extras}; pass compile=False to take the weights")
    # Keras stores lr in a floatx variable: read float32(0.001) back as 0.001,
    # the shortest decimal that rounds to it, which is what the user wrote.
    lr = np.dtype(opt.learning_rate.dtype).type(config["learning_rate"])
    adam = nn.Adam(learning_rate=float(str(lr)),
                   **{k: float(config[k]) for k in ("beta_1", "beta_2", "epsilon")})
    loss = kmodel.loss
    name = loss if isinstance(loss, str) else getattr(loss, "name", type(loss).__name__)
    if name != nn.SparseCategoricalCrossentropy.name:
        raise ModelError(f"nn can only train with sparse_categorical_crossentropy; the Keras "
                         f"model uses {name!r}; pass compile=False to take the weights")
    config = loss.get_config() if hasattr(loss, "get_config") else {}  # a name: from_logits=False
    from_logits = bool(config.get("from_logits", False))
    return adam, nn.SparseCategoricalCrossentropy(from_logits=from_logits)


def from_keras(kmodel, compile=True, backend=None):
    """An nn.Sequential with the Keras model's layers, names, dtype and weights."""
    with_weights = [layer for layer in kmodel.layers if layer.weights]
    dtype = with_weights[0].weights[0].dtype if with_weights else keras.config.floatx()
    layers = [_nn_layer(klayer) for klayer in kmodel.layers]
    model = nn.Sequential(layers, input_shape=tuple(kmodel.input_shape[1:]), dtype=dtype,
                          backend=backend, name=kmodel.name)
    model.set_weights(kmodel.get_weights())
    args = _nn_compile_args(kmodel) if compile else None
    if args is not None:
        model.compile(*args, metrics=["accuracy"])
    return model


def save_keras(model, path):
    """Write an nn model and its Adam state as a `.keras` file for keras.models.load_model."""
    if not str(path).endswith(".keras"):
        raise InputError(f"Keras model files must end in .keras; got {path!r}")
    kmodel = to_keras(model)
    if kmodel.optimizer is not None:
        # Save Adam's state too (zeros before any step), so the file resumes training
        # where nn left it and Keras finds the optimizer variables it expects.
        state = model.optimizer.state
        if state is None:
            kmodel.optimizer.build(kmodel.trainable_variables)
        else:
            set_keras_adam_state(kmodel, state)
    kmodel.save(path)


def load_keras(path, compile=True, backend=None):
    """An nn model with the architecture and weights of a `.keras` file."""
    if not os.path.isfile(path):
        raise InputError(f"Keras model file {path} does not exist")
    return from_keras(keras.models.load_model(path, compile=compile), compile, backend)


def _keras_slots(kmodel):
    opt = kmodel.optimizer
    if not opt.built:
        opt.build(kmodel.trainable_variables)
    index = [opt._get_variable_index(v) for v in kmodel.trainable_variables]
    return opt, [opt._momentums[i] for i in index], [opt._velocities[i] for i in index]


def keras_adam_state(kmodel):
    """Keras's Adam state as nn's AdamState (count, m, v), in get_weights order."""
    opt, m, v = _keras_slots(kmodel)
    return AdamState(int(opt.iterations.numpy()), [a.numpy() for a in m], [a.numpy() for a in v])


def set_keras_adam_state(kmodel, state):
    """Load an AdamState (count, m, v) into the Keras model's optimizer."""
    opt, m, v = _keras_slots(kmodel)
    if len(state.m) != len(m) or len(state.v) != len(v):
        raise InputError(f"the state has {len(state.m)} moments; the model has {len(m)} variables")
    opt.iterations.assign(state.count)
    for var, value in zip(m + v, list(state.m) + list(state.v)):
        var.assign(np.asarray(value, dtype=var.dtype))


def set_nn_adam_state(model, state):
    """Load an AdamState into nn's optimizer, as copies in the model's dtype."""
    cast = [np.array(a, dtype=model.dtype) for a in list(state.m) + list(state.v)]
    half = len(state.m)
    model.optimizer.state = AdamState(int(state.count), cast[:half], cast[half:])
