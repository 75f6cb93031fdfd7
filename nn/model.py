"""Teaching path: Sequential, a stack of layers with Keras's compile / fit / evaluate / predict.

`fit` has two engines. "layers", the teaching path, trains batch by batch
through the code a reader reads: each layer's forward, the loss, each
layer's backward in reverse, then Adam.apply (`_step`). "fused", the fast
engine (nn.fast.trainer), runs whole chunks of those steps of a Dense chain
in one call, with the same arithmetic; it is the numba backend's default and
an explicit choice elsewhere.
"""

import contextlib
import math
import weakref

import numpy as np

from nn import _checks, kernels
from nn.backup import BackupAndRestore
from nn.callbacks import Callback, History, ProgressBar
from nn.errors import InputError, ModelError, NonFiniteError
from nn.fast.trainer import FusedTrainer, chain_layers
from nn.layers import Dense, Layer, Softmax
from nn.losses import SparseCategoricalCrossentropy
from nn.nonfinite import BadStep, Snapshot, diagnose, finite
from nn.optimizers import Adam
from nn.scaled import ScaledImages

#: fit's engines: the teaching path, layer by layer, and the fast engine (nn.fast).
ENGINES = ("layers", "fused")

#: Steps between the layers engine's snapshots: a bad step replays at most this many.
SNAPSHOT_STEPS = 128


def _claim(layers, model):
    """Make `model` (or None) the owner of `layers`; a layer belongs to one model.

    Building a layer for a second model would replace the first model's
    trained weights, so layers cannot be shared (Keras would share the weights
    themselves; nn does not).
    """
    if model is not None:
        if len({id(layer) for layer in layers}) != len(layers):
            raise ModelError("the same layer object appears twice in layers; give each "
                             "position its own layer")
        for layer in layers:
            owner = layer._model() if getattr(layer, "_model", None) else None
            if owner is not None:
                raise ModelError(f"layer {layer.name!r} already belongs to model "
                                 f"{owner.name!r}; create new layers for a new model")
    for layer in layers:
        layer._model = None if model is None else weakref.ref(model)


def _unique_names(layers):
    """Rename repeats Keras's way: dense, dense_1, dense_2, ..."""
    seen = {}
    for layer in layers:
        base = layer.name
        if base in seen:
            seen[base] += 1
            layer.name = f"{base}_{seen[base]}"
        else:
            seen[base] = 0


def _unshared(batch, x, last):
    """The last batch of a pass over x as a copy when it is a view of x; other batches as they are.

    Each layer keeps its last input for backward, so without the copy the
    model would keep the caller's whole x alive after fit, evaluate or
    predict returns (188 MiB for MNIST in float32).
    """
    shared = isinstance(x, np.ndarray) and np.may_share_memory(batch, x)  # a ScaledImages' rows are new
    return batch.copy() if last and shared else batch


def _examples(x, key):
    """x[key] along the examples: a view of an array, a smaller ScaledImages of a ScaledImages."""
    return x.select(key) if isinstance(x, ScaledImages) else x[key]


class Sequential:
    """Layers applied in order, trained by backprop, as keras.Sequential.

    layers: list of nn.layers.Layer. input_shape: shape of one example, e.g.
    (28, 28); taken from the first layer's `input_shape` if given there, else
    from the first data seen. dtype: "float32" (default) or "float64", used end
    to end. seed: int or None; one seed fixes the initial weights and every
    epoch's shuffle (two independent streams spawned from it), so the same
    seed gives bit-identical training on the same machine. backend: kernel
    backend name (see nn.kernels); None picks the default.
    """

    def __init__(self, layers, *, input_shape=None, dtype="float32", seed=None, backend=None,
                 name="sequential"):
        if not (isinstance(layers, (list, tuple)) and layers
                and all(isinstance(layer, Layer) for layer in layers)):
            raise InputError(f"layers must be a non-empty list of nn.layers.Layer instances; "
                             f"got {layers!r}")
        self.layers = list(layers)
        _claim(self.layers, self)
        try:
            self._setup(input_shape, dtype, seed, backend, name)
        except BaseException:
            _claim(self.layers, None)  # a model that failed to exist owns nothing
            raise

    def _setup(self, input_shape, dtype, seed, backend, name):
        _unique_names(self.layers)
        self.name = name
        self.dtype = _checks.float_dtype(dtype)
        self.seed = _checks.seed(seed)
        self.backend = kernels.get_backend(backend)
        self.backend_name = self.backend.NAME
        init_seq, shuffle_seq = np.random.SeedSequence(seed).spawn(2)
        self._init_rng = np.random.default_rng(init_seq)
        self.shuffle_rng = np.random.default_rng(shuffle_seq)
        self.optimizer = None
        self.loss = None
        self.built = False
        self.input_shape = None
        self.stop_training = False
        self._progress = {}  # fit's position: epoch, next step, running sums (BackupAndRestore reads it)
        self._resume = None  # where fit starts, when a BackupAndRestore restored a backup
        self._fit_arrays = None  # fit's data, while it runs (BackupAndRestore fingerprints it)
        if input_shape is None:
            input_shape = self.layers[0].input_shape
        if input_shape is not None:
            self.build(input_shape)

    # ----------------------------------------------------------------- set-up
    def build(self, input_shape):
        """Create every layer's parameters for examples shaped `input_shape`.

        Once built, building again for the same shape does nothing, and for
        another shape is refused: it would throw away the trained weights.
        """
        shape = _checks.shape(input_shape, "input_shape")
        if self.built:
            if shape != self.input_shape:
                raise ModelError(f"the model is already built for examples shaped "
                                 f"{self.input_shape}, not {shape}; make a new model")
            return
        with self._unbuilt_on_failure():
            self.input_shape = shape
            needs_grad = False  # nothing before the first layer with parameters
            for layer in self.layers:
                layer.backend = self.backend
                try:
                    shape = layer.build(shape, self._init_rng, self.dtype)
                except (MemoryError, ValueError) as exc:
                    if isinstance(exc, InputError):
                        raise
                    raise ModelError(f"layer {layer.name!r} cannot allocate its parameters for "
                                     f"inputs shaped {shape} ({type(exc).__name__}: {exc}); "
                                     f"use fewer units") from None
                if hasattr(layer, "needs_input_grad"):
                    layer.needs_input_grad = needs_grad
                needs_grad = needs_grad or bool(layer.params)
        self.output_shape = shape
        self.built = True
        self._train_layers = None

    def compile(self, optimizer="adam", loss="sparse_categorical_crossentropy", metrics=("accuracy",)):
        """Choose the optimizer ("adam" or an Adam), the loss and the metrics (["accuracy"])."""
        if isinstance(optimizer, str) and optimizer.lower() == "adam":
            optimizer = Adam()
        if not isinstance(optimizer, Adam):
            raise InputError(f"optimizer must be 'adam' or an nn.optimizers.Adam; got {optimizer!r}")
        if isinstance(loss, str) and loss == SparseCategoricalCrossentropy.name:
            loss = SparseCategoricalCrossentropy()
        if not isinstance(loss, SparseCategoricalCrossentropy):
            raise InputError(
                f"loss must be 'sparse_categorical_crossentropy' or an instance of it; got {loss!r}"
            )
        metrics = [metrics] if isinstance(metrics, str) else metrics
        if not isinstance(metrics, (list, tuple, type(None))) or any(
                m != "accuracy" for m in metrics or []):
            raise InputError(f"metrics may only contain 'accuracy'; got {metrics!r}")
        self.optimizer, self.loss, self.metrics = optimizer, loss, list(metrics or [])
        self.loss.backend = self.backend
        self._train_layers = None

    def _require(self, compiled=False):
        if not self.built:
            raise ModelError("the model is not built: give input_shape or call fit/build first")
        if compiled and self.loss is None:
            raise ModelError("the model is not compiled: call model.compile(...) first")

    def _logit_layers(self):
        """The layers that map inputs to the loss's logits (output softmax removed)."""
        if self._train_layers is None:
            *body, last = self.layers
            ends_in_softmax = isinstance(last, Softmax) or (
                isinstance(last, Dense) and last.activation == "softmax")
            if self.loss.from_logits and ends_in_softmax:
                raise ModelError("the loss has from_logits=True but the model ends in a softmax; "
                                 "drop one of the two")
            if self.loss.from_logits:
                self._train_layers = list(self.layers)
            elif isinstance(last, Softmax):
                self._train_layers = body
            elif ends_in_softmax:
                self._train_layers = body + [last.without_activation()]
            else:
                raise ModelError("sparse_categorical_crossentropy expects a softmax output "
                                 "(Dense(..., activation='softmax') or Softmax()); or pass "
                                 "SparseCategoricalCrossentropy(from_logits=True)")
        return self._train_layers

    @property
    def num_classes(self):
        """Width of the output: labels must lie in [0, num_classes)."""
        self._require()
        return self.output_shape[-1]

    # ------------------------------------------------------------- one batch
    def _logits(self, x, training):
        for layer in self._logit_layers():
            x = layer.forward(x, training=training)
        return x

    def _step(self, x, y):
        """One update on a clean batch; returns (loss, correct) measured before it."""
        loss = self.loss.forward(self._logits(x, training=True), y)
        correct = int(np.count_nonzero(self.loss.probs.argmax(axis=1) == y))
        grad = self.loss.backward()
        for layer in reversed(self._logit_layers()):
            grad = layer.backward(grad)
            if grad is None:
                break
        refs = self.parameter_refs()
        self.optimizer.apply([lyr.params[k] for lyr, k in refs],
                             [lyr.grads[k] for lyr, k in refs], self.backend)
        return float(loss), correct

    def gradients(self, x, y):
        """(loss, grads) of one batch: its mean loss and every parameter's gradient.

        As `tf.GradientTape().gradient(loss, model.trainable_variables)` for the
        compiled loss: x (B, *input_shape) real numbers, y (B,) int labels;
        loss is a float, grads a list of arrays of the model's dtype in
        get_weights() order ([d kernel0, d bias0, ...]). Computed by the
        teaching path (the loss's and each layer's backward), and nothing
        changes: not the weights, not the optimizer's state, not the layers'
        `grads` or cached inputs.
        """
        self._require(compiled=True)
        x, y = self._clean(x, y)
        with self._untouched():
            loss = self.loss.forward(self._logits(x, training=True), y)
            grad = self.loss.backward()
            for layer in reversed(self._logit_layers()):
                grad = layer.backward(grad)
                if grad is None:
                    break
            grads = [layer.grads[key].copy() for layer, key in self.parameter_refs()]
        return float(loss), grads

    @contextlib.contextmanager
    def _untouched(self):
        """Run the block, then restore every layer's and the loss's attributes and gradients.

        Gradient arrays are restored in place (by value, keeping each array
        and dict), since a layer may write into its `grads` arrays and the
        softmax output's logits view shares its layer's `grads` dict.
        """
        objects = {id(obj): obj for obj in list(self.layers) + list(self._logit_layers()) + [self.loss]}
        saved = [(obj, dict(vars(obj)),
                  [(k, g, g.copy()) for k, g in getattr(obj, "grads", {}).items()])
                 for obj in objects.values()]
        try:
            yield
        finally:
            for obj, attrs, grads in saved:
                vars(obj).clear()
                vars(obj).update(attrs)
                if grads or hasattr(obj, "grads"):
                    obj.grads.clear()
                for key, array, copy in grads:
                    array[...] = copy
                    obj.grads[key] = array

    def train_on_batch(self, x, y):
        """One Adam step on (x, y); returns [loss, accuracy] of the batch before the step.

        Without metrics, the loss alone, as Keras.
        """
        if self.loss is None:
            raise ModelError("the model is not compiled: call model.compile(...) first")
        with self._unbuilt_on_failure():
            x, y = self._clean(x, y, build=True)
        loss, correct = self._step(x, y)
        return [loss, correct / len(y)] if self.metrics else loss

    def _clean(self, x, y=None, build=False, labels=True, lazy=False):
        """Checked copies of x (model dtype) and, if `labels`, y (int64 labels).

        An nn.ScaledImages x is checked and kept as it is when `lazy` (fit,
        which reads it a batch at a time), else made into its float array.
        """
        if labels and y is None:
            raise InputError("y is required: the labels, a vector of class indices shaped (N,)")
        if isinstance(x, ScaledImages):
            x = x.checked("x", self.dtype)
            x = x if lazy else np.asarray(x)
        if build and not self.built:
            arr = x if isinstance(x, ScaledImages) else _checks.as_features(x, "x", self.dtype)
            self.build(arr.shape[1:])
        self._require()
        if isinstance(x, ScaledImages):
            x = x.checked("x", self.dtype, self.input_shape)
        else:
            x = _checks.as_features(x, "x", self.dtype, self.input_shape)
        if not labels:
            return x
        return x, _checks.as_labels(y, "y", self.num_classes, n=len(x))

    # ------------------------------------------------------------------ fit
    def fit(self, x, y, *, batch_size=32, epochs=1, verbose=1, validation_split=0.0,
            validation_data=None, shuffle=True, callbacks=None, engine=None):
        """Train; returns a History with loss, accuracy, val_loss, val_accuracy per epoch.

        As keras.Model.fit: validation data is the last `validation_split` of
        the arrays, taken before any shuffling; each epoch shuffles the rest
        with a fresh permutation; the last partial batch is kept; the epoch's
        loss and accuracy are running means, weighted by batch size, of the
        values measured before each update; validation runs after each epoch.
        x: (N, *input_shape) real numbers, or an nn.ScaledImages of uint8
        images, read a batch at a time (the same results as its float array,
        without that array's memory); y: (N,) int labels.

        engine: "layers" trains batch by batch through each layer's forward
        and backward and Adam.apply (the teaching path; a breakpoint in
        Dense.backward fires); "fused" runs chunks of steps of a Dense chain
        in one call (nn.fast.trainer: same batches, same arithmetic, many
        times faster). None: "fused" on the numba backend when the model is
        a Dense chain, else "layers". `history.params["engine"]` says which ran;
        with the fused engine on numba, `history.params["thread_steps"]` says how
        many steps ran on each thread count (nn.fast.threads chooses them on the
        compressed-row path; the BLAS path keeps one).

        A non-finite loss, gradient or weight stops training with a
        NonFiniteError naming the epoch, the step and the first layer that
        went non-finite; the weights and Adam's state are those before that
        step (with TerminateOnNaN among the callbacks, fit returns instead).
        A fit that fails before training starts changes nothing, and leaves
        an unbuilt model unbuilt.
        """
        if self.loss is None:
            raise ModelError("the model is not compiled: call model.compile(...) first")
        with self._unbuilt_on_failure():
            engine = self._engine(engine)
            batch_size = _checks.positive_int(batch_size, "batch_size")
            epochs = _checks.positive_int(epochs, "epochs")
            validation_split = _checks.fraction(validation_split, "validation_split")
            if not isinstance(callbacks, (list, tuple, type(None))) or not all(
                    isinstance(c, Callback) for c in callbacks or []):
                raise InputError(f"callbacks must be a list of nn.callbacks.Callback instances; "
                                 f"got {callbacks!r}")
            x, y = self._clean(x, y, build=True, lazy=True)
            (x, y), val = self._split(x, y, validation_split, validation_data)
            steps = math.ceil(len(x) / batch_size)
            history = self.history = History()  # as Keras: callbacks reach it through the model
            history.params = {"epochs": epochs, "steps": steps, "verbose": verbose,
                              "engine": engine, "backend": self.backend_name,
                              "batch_size": batch_size, "shuffle": bool(shuffle), "samples": len(x),
                              "metrics": self._logged(val is not None, callbacks or [])}
            # As Keras's CallbackList: the progress line first, History last, so that it
            # records what callbacks add to the logs (the learning rate).
            # BackupAndRestore last of all: its backup then holds the History and the
            # other callbacks' state after the epoch.
            backups = [c for c in callbacks or [] if isinstance(c, BackupAndRestore)]
            others = [c for c in callbacks or [] if not isinstance(c, BackupAndRestore)]
            hooks = ([ProgressBar(epochs, steps)] if verbose else []) + others + [history] + backups
            for backup in backups:
                backup.peers = others
            self.stop_training, self._resume = False, None
            self._fit_arrays = (x, y, val)
            for hook in hooks:  # a callback refusing its settings here stops fit before any work
                hook.model = self
                hook.params = history.params
                hook.on_train_begin()
            if self._resume:  # a BackupAndRestore found a backup of this run
                history.history, history.epoch = self._resume["history"], self._resume["history_epoch"]
        try:
            self._fit_epochs(x, y, val, batch_size, epochs, shuffle, hooks, engine)
        except NonFiniteError as exc:
            if not self._nonfinite_handled(exc, hooks):
                self._abort(hooks)
                raise
        except BaseException:
            self._abort(hooks)
            raise
        finally:
            self._fit_arrays = None
        for hook in hooks:
            hook.on_train_end()
        return history

    def _fit_epochs(self, x, y, val, batch_size, epochs, shuffle, hooks, engine):
        """The epoch loop of fit, from the position a BackupAndRestore restored (if any)."""
        resume, self._resume = self._resume, None
        if resume and resume["stopped"]:
            self.stop_training = True
            return  # the backed-up run had already stopped (EarlyStopping): nothing left to do
        first_epoch = resume["epoch"] if resume else 0
        trainer = FusedTrainer(self, chain_layers(self), x) if engine == "fused" else None
        for epoch in range(first_epoch, epochs):
            start, sums = 0, (0.0, 0, 0)
            if resume and epoch == first_epoch:
                self.shuffle_rng.bit_generator.state = resume["shuffle_state"]
                start, sums = resume["step"], resume["sums"]
            self._progress = {"epoch": epoch, "step": start, "sums": sums,
                              "shuffle_state": self.shuffle_rng.bit_generator.state}
            for hook in hooks:
                hook.on_epoch_begin(epoch)
            order = self.shuffle_rng.permutation(len(x)) if shuffle else np.arange(len(x))
            try:
                if trainer is not None:  # same batches and arithmetic, fewer Python round trips
                    logs = trainer.run_epoch(x, y, order, batch_size, hooks, start, sums)
                else:
                    logs = self._fit_epoch(x, y, order, batch_size, hooks, start, sums)
            except BadStep as bad:  # the state is back to before the bad step: say where it broke
                idx = order[bad.step * batch_size:(bad.step + 1) * batch_size]
                raise diagnose(self, x[idx], y[idx], epoch, bad.step) from None
            if val is not None:
                val_loss, val_acc = self._evaluate(*val, batch_size)
                logs["val_loss"] = val_loss
                if self.metrics:
                    logs["val_accuracy"] = val_acc
            self._progress = {"epoch": epoch + 1, "step": 0, "sums": (0.0, 0, 0),
                              "shuffle_state": self.shuffle_rng.bit_generator.state}
            for hook in hooks:
                hook.on_epoch_end(epoch, logs)
            if trainer is not None and trainer.thread_steps is not None:
                self.history.params["thread_steps"] = trainer.thread_steps
            if self.stop_training:
                break

    def _logged(self, validation, callbacks):
        """The figures fit will log each epoch, in Keras's names."""
        from nn.callbacks import LearningRateScheduler, ReduceLROnPlateau

        keys = ["loss"] + (["accuracy"] if self.metrics else [])
        keys += [f"val_{k}" for k in keys] if validation else []
        if any(isinstance(c, (LearningRateScheduler, ReduceLROnPlateau)) for c in callbacks):
            keys.append("learning_rate")
        return keys

    @staticmethod
    def _abort(hooks):
        """fit failed: let callbacks holding resources (signal handlers) let go."""
        for hook in hooks:
            if hasattr(hook, "_abort"):
                hook._abort()

    def running_logs(self, sums):
        """fit's running figures from (loss sum, correct, examples seen): {"loss", "accuracy"}."""
        loss_sum, correct, seen = sums
        if not seen:
            return {}
        logs = {"loss": loss_sum / seen}
        if self.metrics:
            logs["accuracy"] = correct / seen
        return logs

    def _nonfinite_handled(self, exc, hooks):
        """Let the callbacks react to a non-finite step; True when one turns it into a stop."""
        handled = False
        for hook in hooks:
            handled = bool(hook.on_nonfinite(exc)) or handled
        return handled

    @contextlib.contextmanager
    def _unbuilt_on_failure(self):
        """Run the block; if it fails on a model it built, undo the build (and the rng draws)."""
        if self.built:
            yield
            return
        rng_state = self._init_rng.bit_generator.state
        saved = [(layer, dict(vars(layer))) for layer in self.layers]
        try:
            yield
        except BaseException:
            for layer, attrs in saved:
                vars(layer).clear()
                vars(layer).update(attrs)
            self._init_rng.bit_generator.state = rng_state
            self.built, self.input_shape, self._train_layers = False, None, None
            self.__dict__.pop("output_shape", None)
            raise

    def _engine(self, engine):
        """The engine fit runs: `engine` checked, or the default for this model and backend."""
        if engine is not None and engine not in ENGINES:
            raise InputError(f"engine must be one of {', '.join(map(repr, ENGINES))} or None; "
                             f"got {engine!r}")
        chain = chain_layers(self)  # needs only the layers' kinds, not their weights
        if engine == "fused" and isinstance(chain, str):
            raise ModelError(f"the fused engine cannot train this model: {chain}; use "
                             f"engine='layers'")
        if engine is None:
            engine = "fused" if self.backend_name == "numba" and not isinstance(chain, str) else "layers"
        return engine

    def _split(self, x, y, validation_split, validation_data):
        if validation_data is not None:
            if validation_split:
                raise InputError("give validation_split or validation_data, not both")
            if not (isinstance(validation_data, (tuple, list)) and len(validation_data) == 2):
                raise InputError("validation_data must be a tuple (x_val, y_val)")
            return (x, y), self._clean(*validation_data, lazy=True)
        if not validation_split:
            return (x, y), None
        split_at = int(math.floor(len(x) * (1.0 - validation_split)))  # as Keras
        if split_at in (0, len(x)):
            raise InputError(
                f"validation_split={validation_split} of {len(x)} examples leaves "
                f"{split_at} for training and {len(x) - split_at} for validation; both need some"
            )
        return ((_examples(x, slice(None, split_at)), y[:split_at]),
                (_examples(x, slice(split_at, None)), y[split_at:]))

    def _fit_epoch(self, x, y, order, batch_size, hooks, start=0, sums=(0.0, 0, 0)):
        """One epoch through the teaching path from step `start`; returns the epoch's logs.

        After every step the loss, weights and moments must be finite. A
        snapshot taken every SNAPSHOT_STEPS steps lets a bad step be undone:
        back to the snapshot, replay the good steps since, raise BadStep.
        """
        loss_sum, correct, seen = sums
        logs = self.running_logs(sums)
        for batch, offset in enumerate(range(0, len(order), batch_size)):
            if batch < start:
                continue
            if (batch - start) % SNAPSHOT_STEPS == 0:
                snapshot, snapshot_step = Snapshot(self), batch
            idx = order[offset:offset + batch_size]
            with np.errstate(all="ignore"):  # non-finite values are caught just below
                loss, ok = self._step(x[idx], y[idx])
            if not finite(self, [loss]):
                snapshot.restore()
                for redo in range(snapshot_step, batch):
                    self._step(x[order[redo * batch_size:(redo + 1) * batch_size]],
                               y[order[redo * batch_size:(redo + 1) * batch_size]])
                raise BadStep(batch)
            loss_sum += loss * len(idx)
            correct += ok
            seen += len(idx)
            self._progress.update(step=batch + 1, sums=(loss_sum, correct, seen))
            logs = self.running_logs((loss_sum, correct, seen))
            for hook in hooks:
                hook.on_train_batch_end(batch, logs)
        return logs

    # ------------------------------------------------------- evaluate/predict
    def evaluate(self, x, y, batch_size=32, verbose=0):
        """[loss, accuracy] over (x, y): means of per-batch values weighted by batch size.

        Without metrics, the loss alone, as Keras. x is checked and converted
        batch by batch (see predict), so memory stays near x's own size.
        """
        self._require(compiled=True)
        batch_size = _checks.positive_int(batch_size, "batch_size")
        x = self._features(x)
        y = _checks.as_labels(y, "y", self.num_classes, n=len(x))
        loss, accuracy = self._evaluate(x, y, batch_size, clean=True)
        if verbose:
            print(f"loss: {loss:.4f} - accuracy: {accuracy:.4f}" if self.metrics else
                  f"loss: {loss:.4f}")
        return [loss, accuracy] if self.metrics else loss

    def _evaluate(self, x, y, batch_size, clean=False):
        """(loss, accuracy) over (x, y); clean: x still needs each batch checked and converted."""
        loss_sum, correct = 0.0, 0
        for start in range(0, len(x), batch_size):
            xb = self._batch(x, start, batch_size) if clean else x[start:start + batch_size]
            yb = y[start:start + batch_size]
            xb = _unshared(xb, x, start + batch_size >= len(x))
            loss_sum += float(self.loss.forward(self._logits(xb, training=False), yb)) * len(xb)
            correct += int(np.count_nonzero(self.loss.probs.argmax(axis=1) == yb))
        return loss_sum / len(x), correct / len(x)

    def predict(self, x, batch_size=32):
        """Model outputs (probabilities for a softmax model), (N, *output_shape).

        x is checked and converted to the model's dtype one batch at a time,
        so predicting a million uint8 images needs their own memory, the
        outputs and a few batches, not a float copy of them all. Bad values
        anywhere are still refused, with nothing returned.
        """
        self._require()
        batch_size = _checks.positive_int(batch_size, "batch_size")
        x = self._features(x)
        out = np.empty((len(x),) + self.output_shape, self.dtype)
        for start in range(0, len(x), batch_size):
            h = _unshared(self._batch(x, start, batch_size), x, start + batch_size >= len(x))
            for layer in self.layers:
                h = layer.forward(h)
            out[start:start + batch_size] = h
        return out

    def _features(self, x):
        """x as an array whose kind, batch axis and example shape are checked, not yet converted.

        An nn.ScaledImages stays one: each batch is divided as it is read.
        """
        if isinstance(x, ScaledImages):
            return x.checked("x", self.dtype, self.input_shape)
        arr = _checks._as_array(x, "x")
        if arr.ndim < 2 or len(arr) == 0:
            _checks.as_features(arr, "x", self.dtype, self.input_shape)  # raises, with its message
        _checks.as_features(arr[:1], "x", self.dtype, self.input_shape)  # kind and shape
        return arr

    def _batch(self, x, start, batch_size):
        """x[start:start + batch_size] checked and converted; a bad value names x's whole count."""
        if isinstance(x, ScaledImages):  # checked by _features; quotients of uint8 are finite
            return x[start:start + batch_size]
        try:
            return _checks.as_features(x[start:start + batch_size], "x", self.dtype, self.input_shape)
        except InputError:
            bad = 0
            with np.errstate(over="ignore"):
                for at in range(0, len(x), 4096):  # count over all of x, a block at a time
                    block = np.asarray(x[at:at + 4096], dtype=self.dtype)
                    bad += int(block.size - np.count_nonzero(np.isfinite(block)))
            raise InputError(f"x contains {bad} NaN or infinite value(s) (after conversion to "
                             f"{self.dtype.name}); clean or rescale the data first") from None

    # ---------------------------------------------------------------- weights
    def parameter_refs(self):
        """(layer, key) for every parameter, in Keras's order (kernel, bias per layer)."""
        return [(layer, key) for layer in self.layers for key in layer.params]

    def get_weights(self):
        """Copies of every parameter in Keras's order: [kernel0, bias0, kernel1, ...]."""
        self._require()
        return [layer.params[key].copy() for layer, key in self.parameter_refs()]

    def set_weights(self, weights):
        """Copy arrays in Keras's order into the parameters (shapes must match)."""
        self._require()
        refs = self.parameter_refs()
        if not isinstance(weights, (list, tuple)):
            raise InputError(f"weights must be a list of arrays (as get_weights returns); "
                             f"got {type(weights).__name__}")
        if len(weights) != len(refs):
            raise InputError(f"weights has {len(weights)} arrays; this model has {len(refs)}")
        clean = []
        for (layer, key), w in zip(refs, weights):
            name = f"weights for {layer.name}.{key}"
            w = _checks._as_array(w, name)
            if w.shape != layer.params[key].shape or w.dtype.kind != "f":
                raise InputError(f"{name} must be a float array shaped "
                                 f"{layer.params[key].shape}; got {w.dtype} {w.shape}")
            with np.errstate(over="ignore"):  # overflow to inf is reported just below
                w = w.astype(self.dtype)
            if not np.isfinite(w).all():
                raise InputError(f"{name} contain NaN or infinite values (after conversion to "
                                 f"{self.dtype.name}); a model with them predicts only NaN")
            clean.append(w)
        for (layer, key), w in zip(refs, clean):
            layer.params[key][...] = w

    def count_params(self):
        """Number of scalar parameters."""
        return sum(layer.count_params() for layer in self.layers)

    def summary(self, print_fn=print):
        """Print a table of layers, output shapes and parameter counts, as Keras does."""
        self._require()
        rows, shape = [], self.input_shape
        for layer in self.layers:
            shape = layer.compute_output_shape(shape)
            kind = type(layer).__name__
            if getattr(layer, "activation", None):
                kind += f" ({layer.activation})"
            rows.append((f"{layer.name} ({kind})", str((None,) + shape), f"{layer.count_params():,}"))
        width = max(len(r[0]) for r in rows) + 2
        line = "-" * (width + 32)
        print_fn(f'Model: "{self.name}"  dtype={self.dtype.name}  backend={self.backend_name}')
        print_fn(line)
        print_fn(f"{'Layer (type)':<{width}}{'Output Shape':<20}{'Param #':>12}")
        print_fn(line)
        for name, out, count in rows:
            print_fn(f"{name:<{width}}{out:<20}{count:>12}")
        print_fn(line)
        print_fn(f"Total params: {self.count_params():,}")
