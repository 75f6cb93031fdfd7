"""Teaching path: callbacks, hooks into `fit` the Keras way, plus History and the progress line.

EarlyStopping, ModelCheckpoint, TerminateOnNaN, CSVLogger,
LearningRateScheduler and ReduceLROnPlateau take Keras 3's arguments and
decide at the same epochs as Keras's callbacks fed the same logs (the tests
feed both). BackupAndRestore lives in nn.backup and is re-exported here.
Where Keras only warns (an unknown `mode`, a monitored value fit never
logs), nn refuses before training starts: a callback watching nothing is a
silent wrong answer.
"""

import csv
import math
import numbers
import os
import sys
import time

import numpy as np
from tqdm import tqdm

from nn.errors import InputError


class Callback:
    """Base class: override any hook; `self.model` is set before training starts."""

    model = None
    params = {}

    def on_train_begin(self, logs=None):
        """Called once before the first epoch."""

    def on_epoch_begin(self, epoch, logs=None):
        """Called before each epoch (0-based)."""

    def on_train_batch_end(self, batch, logs=None):
        """Called after each update with the epoch's running loss and accuracy."""

    def on_epoch_end(self, epoch, logs=None):
        """Called after each epoch with its loss, accuracy and validation figures."""

    def on_train_end(self, logs=None):
        """Called once after the last epoch."""

    def on_nonfinite(self, error):
        """Called when a step went non-finite (error: NonFiniteError); True turns it into a stop.

        The model then holds the weights before that step; a callback may
        replace them (EarlyStopping restores its best). Without any callback
        returning True, fit raises the error.
        """
        return False


class History(Callback):
    """Per-epoch figures, as keras.callbacks.History: `history[key]` is a list per epoch.

    `params` holds fit's settings as Keras's does (epochs, steps, verbose),
    plus the `engine` that ran ("layers" or "fused") and the `backend`.
    """

    def __init__(self):
        self.history = {}
        self.epoch = []
        self.params = {}

    @property
    def engine(self):
        """The engine fit ran: "layers" (the teaching path) or "fused" (nn.fast)."""
        return self.params.get("engine")

    def on_epoch_end(self, epoch, logs=None):
        """Append this epoch's figures."""
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))


def format_logs(logs):
    """'accuracy: 0.9712 - loss: 0.0934 - ...' with keys sorted as Keras prints them."""
    return " - ".join(f"{k}: {logs[k]:.4f}" for k in sorted(logs))


class ProgressBar(Callback):
    """One Keras-style line per epoch, with a live bar when stdout is a terminal."""

    def __init__(self, epochs, steps, stream=None):
        self.epochs, self.steps = epochs, steps
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty()
        self._bar = None

    def on_epoch_begin(self, epoch, logs=None):
        """Print the epoch header and start the bar."""
        print(f"Epoch {epoch + 1}/{self.epochs}", file=self.stream, flush=True)
        self._start = time.perf_counter()
        if self.live:
            self._bar = tqdm(total=self.steps, file=self.stream, ncols=100, leave=False,
                             bar_format="{n_fmt}/{total_fmt} {bar} {elapsed} {postfix}")

    def on_train_batch_end(self, batch, logs=None):
        """Advance the bar; its text is refreshed at most ten times a second."""
        if self._bar is not None:
            self._bar.update(batch + 1 - self._bar.n)
            if self._bar.n == self.steps or self._bar.n % 50 == 0:
                self._bar.set_postfix_str(format_logs(logs), refresh=False)

    def on_epoch_end(self, epoch, logs=None):
        """Replace the bar by the epoch's final line."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        seconds = time.perf_counter() - self._start
        per_step = 1000 * seconds / max(self.steps, 1)
        print(f"{self.steps}/{self.steps} - {seconds:.1f}s {per_step:.2f}ms/step - {format_logs(logs)}",
              file=self.stream, flush=True)


def _number(value, name, low=-math.inf, integer=False):
    """value as a float (or int) >= low; InputError naming `name` otherwise."""
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind) or not (low <= value < math.inf):
        raise InputError(f"{name} must be {'an integer' if integer else 'a number'} >= {low}; "
                         f"got {value!r}")
    return int(value) if integer else float(value)


class MonitorCallback(Callback):
    """Watches one logged figure for improvement, as Keras's MonitorCallback.

    mode "min", "max" or "auto" (loss: min, accuracy: max, judged from the
    name without "val_"). As Keras, an improvement is
    `current + |min_delta| < best` in min mode and `current - |min_delta| > best`
    in max mode; the first value seen always improves.
    """

    def __init__(self, monitor="val_loss", mode="auto", baseline=None, min_delta=0):
        if not isinstance(monitor, str) or not monitor:
            raise InputError(f"monitor must be the name of a logged figure such as 'val_loss'; "
                             f"got {monitor!r}")
        if mode not in ("auto", "min", "max"):
            raise InputError(f"mode must be 'auto', 'min' or 'max'; got {mode!r}")
        name = monitor.removeprefix("val_")
        if mode == "auto" and name not in ("loss", "accuracy"):
            raise InputError(f"cannot tell whether {monitor!r} should go down or up; pass "
                             f"mode='min' or mode='max'")
        self.monitor, self.mode = monitor, mode
        self.baseline = None if baseline is None else _number(baseline, "baseline")
        self.best = self.baseline
        self.min_delta = abs(_number(min_delta, "min_delta"))
        maximise = mode == "max" or (mode == "auto" and name == "accuracy")
        self._sign = 1 if maximise else -1  # Keras flips min_delta's sign in min mode

    def _check_monitor(self):
        """Refuse, before training, a monitored figure this fit will never log."""
        logged = self.params.get("metrics")
        if logged is not None and self.monitor not in logged:
            raise InputError(f"{type(self).__name__} monitors {self.monitor!r}, which this fit "
                             f"does not log (it logs {', '.join(logged)}); pass validation data "
                             f"or monitor another figure")

    def _is_improvement(self, current, reference):
        if reference is None:
            return True
        shifted = current - self._sign * self.min_delta
        return shifted > reference if self._sign > 0 else shifted < reference


class EarlyStopping(MonitorCallback):
    """Stop when `monitor` stops improving, as keras.callbacks.EarlyStopping.

    After an epoch >= start_from_epoch (0-based) whose figure improves on the
    best by more than min_delta, the wait restarts; once `patience` epochs
    pass without one (and the epoch is not the first), training stops.
    restore_best_weights: at the end of training, the weights of the best
    epoch are put back (whether or not training stopped early, as Keras).
    `stopped_epoch` and `best_epoch` are 0-based, as Keras's.
    """

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, baseline, min_delta)
        self.patience = _number(patience, "patience", 0, integer=True)
        self.start_from_epoch = _number(start_from_epoch, "start_from_epoch", 0, integer=True)
        self.verbose = verbose
        self.restore_best_weights = bool(restore_best_weights)
        self.wait = self.stopped_epoch = self.best_epoch = 0
        self.best_weights = None

    def on_train_begin(self, logs=None):
        """Forget any earlier fit (an instance can be reused, as in Keras)."""
        self._check_monitor()
        self.wait = self.stopped_epoch = self.best_epoch = 0
        self.best, self.best_weights = None, None

    def on_epoch_end(self, epoch, logs=None):
        """Count the epochs since the last improvement; stop when patience runs out."""
        current = (logs or {}).get(self.monitor)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights, self.best_epoch = self.model.get_weights(), epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best, self.best_epoch = current, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        """Say where training stopped; put the best weights back if asked."""
        if self.stopped_epoch > 0 and self.verbose > 0:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)

    def on_nonfinite(self, error):
        """A non-finite step: fit raises, but with the best weights back when they are held."""
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)
            error.args = (f"{error.args[0]}; EarlyStopping restored the weights of epoch "
                          f"{self.best_epoch + 1}, its best",)
        return False


class ModelCheckpoint(MonitorCallback):
    """Save the model after epochs, as keras.callbacks.ModelCheckpoint.

    filepath: a str.format pattern taking `epoch` (1-based) and every logged
    figure, e.g. "ckpt/model-{epoch:02d}-{val_loss:.4f}.npz"; it must end in
    ".npz" (nn.save_model's file), or ".weights.npz" with
    save_weights_only=True (nn.saving.save_weights). save_best_only: save
    only when `monitor` improved. save_freq: "epoch" or every that many
    batches (only at a batch whose weights fit already holds; see fit).
    Every file is written atomically, as save_model writes.
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch",
                 initial_value_threshold=None):
        super().__init__(monitor, mode, initial_value_threshold)
        filepath = os.fspath(filepath) if isinstance(filepath, os.PathLike) else filepath
        ending = ".weights.npz" if save_weights_only else ".npz"
        if not isinstance(filepath, str) or not filepath.endswith(ending) or (
                not save_weights_only and filepath.endswith(".weights.npz")):
            raise InputError(f"filepath must be a str ending in {ending!r} "
                             f"(save_weights_only={bool(save_weights_only)}); got {filepath!r}")
        if save_freq != "epoch":
            save_freq = _number(save_freq, "save_freq ('epoch' or a number of batches)", 1,
                                integer=True)
        self.filepath, self.verbose, self.save_freq = filepath, verbose, save_freq
        self.save_best_only, self.save_weights_only = bool(save_best_only), bool(save_weights_only)
        self.saved = []  # every path written, in order
        self._epoch, self._since = 0, 0

    def on_train_begin(self, logs=None):
        """Check the monitored figure (when saving only the best) and that filepath formats."""
        if self.save_best_only:
            self._check_monitor()
        keys = {k: 0.0 for k in self.params.get("metrics") or ()}
        try:
            self.filepath.format(epoch=1, batch=1, **keys)
        except (KeyError, IndexError, ValueError) as exc:
            raise InputError(f"filepath {self.filepath!r} cannot be formatted with epoch and "
                             f"the logged figures ({', '.join(keys)}): {exc!r}") from None

    def on_epoch_begin(self, epoch, logs=None):
        """Remember the epoch, for batch-level saves."""
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        """With an integer save_freq: save once save_freq batches have passed, at the first
        batch whose weights the model holds.

        On the layers engine that is every batch. The fused engine replays a
        chunk's batches after running it, the model holding the chunk's last
        weights: a file named after a batch inside the chunk would hold later ones.
        """
        if self.save_freq == "epoch":
            return
        self._since += 1
        if self._since >= self.save_freq and self.model._progress.get("step") == batch + 1:
            self._since = 0
            self._save(self._epoch, batch, logs)

    def on_epoch_end(self, epoch, logs=None):
        """With save_freq="epoch": save (if the figure improved, with save_best_only)."""
        if self.save_freq == "epoch":
            self._save(epoch, None, logs)

    def _save(self, epoch, batch, logs):
        from nn.saving import save_model, save_weights

        logs = dict(logs or {})
        extra = {} if batch is None else {"batch": batch + 1}
        path = self.filepath.format(epoch=epoch + 1, **extra, **logs)
        if self.save_best_only:
            current = logs.get(self.monitor)
            if current is not None and not self._is_improvement(current, self.best):
                if self.verbose > 0:
                    print(f"Epoch {epoch + 1}: {self.monitor} did not improve from {self.best:.5f}")
                return
            if current is not None:
                self.best = current
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        (save_weights if self.save_weights_only else save_model)(self.model, path)
        self.saved.append(path)
        if self.verbose > 0:
            print(f"Epoch {epoch + 1}: saved the model to {path}")


class TerminateOnNaN(Callback):
    """Stop training at the first non-finite step instead of raising, as Keras's TerminateOnNaN.

    fit always stops there (nn checks every step); with this callback it
    prints Keras's "Batch N: Invalid loss, terminating training" and returns
    the History of the finished epochs, the weights those before the bad
    step. raise_error=True: fit raises the NonFiniteError instead.
    """

    def __init__(self, raise_error=False):
        self.raise_error = bool(raise_error)

    def on_nonfinite(self, error):
        """Turn the error into a stop, unless raise_error."""
        if self.raise_error:
            return False
        print(f"Batch {error.step}: Invalid loss, terminating training")
        self.model.stop_training = True
        return True


class CSVLogger(Callback):
    """One CSV row per epoch (epoch, then the logged figures sorted), as keras.callbacks.CSVLogger."""

    def __init__(self, filename, separator=",", append=False):
        filename = os.fspath(filename) if isinstance(filename, os.PathLike) else filename
        if not isinstance(filename, str) or not filename:
            raise InputError(f"filename must be a file path; got {filename!r}")
        if not isinstance(separator, str) or len(separator) != 1:
            raise InputError(f"separator must be one character; got {separator!r}")
        self.filename, self.sep, self.append = filename, separator, bool(append)
        self._file = self._writer = self.keys = None

    def on_train_begin(self, logs=None):
        """Open the file (appending keeps an existing header)."""
        header = True
        if self.append and os.path.exists(self.filename):
            with open(self.filename) as f:
                header = not f.readline()
        try:
            self._file = open(self.filename, "a" if self.append else "w", newline="")
        except OSError as exc:
            raise InputError(f"CSVLogger cannot write {self.filename}: {exc.strerror or exc}") from None
        self._header, self._writer, self.keys = header, None, None

    def on_epoch_end(self, epoch, logs=None):
        """Write the epoch's row and flush it."""
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            if self.keys and not any(k.startswith("val_") for k in self.keys):
                self.keys += [f"val_{k}" for k in self.keys]
        if self._writer is None:
            self._writer = csv.DictWriter(self._file, fieldnames=["epoch"] + self.keys,
                                          delimiter=self.sep, lineterminator="\r\n")
            if self._header:
                self._writer.writeheader()
        self._writer.writerow({"epoch": epoch, **{k: logs.get(k, "NA") for k in self.keys}})
        self._file.flush()

    def on_train_end(self, logs=None):
        """Close the file."""
        if self._file is not None and not self._file.closed:
            self._file.close()
        self._writer = None


def _set_learning_rate(model, value, who):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < math.inf:
        raise InputError(f"{who} must give a learning rate, a number >= 0; got {value!r}")
    model.optimizer.learning_rate = float(value)  # both engines read it at every step or chunk


class LearningRateScheduler(Callback):
    """Set Adam's learning rate before each epoch to schedule(epoch, lr), as Keras's.

    schedule(epoch, lr) -> new lr (epoch 0-based), or schedule(epoch) -> lr.
    The epoch's logs gain "learning_rate", as in Keras.
    """

    def __init__(self, schedule, verbose=0):
        if not callable(schedule):
            raise InputError(f"schedule must be a function (epoch, lr) -> lr; got {schedule!r}")
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        """Ask the schedule for this epoch's learning rate."""
        lr = self.model.optimizer.learning_rate
        try:
            value = self.schedule(epoch, lr)
        except TypeError:  # the one-argument form, as Keras accepts
            value = self.schedule(epoch)
        _set_learning_rate(self.model, value, "the schedule")
        if self.verbose > 0:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {value}.")

    def on_epoch_end(self, epoch, logs=None):
        """Log the learning rate used."""
        if logs is not None:
            logs["learning_rate"] = self.model.optimizer.learning_rate


class ReduceLROnPlateau(MonitorCallback):
    """Multiply the learning rate by `factor` when `monitor` stalls, as Keras's ReduceLROnPlateau.

    After `patience` epochs without an improvement larger than min_delta
    (outside a cooldown), lr becomes max(lr * factor, min_lr), if lr is above
    min_lr; then `cooldown` epochs pass before counting again.
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__(monitor, mode, min_delta=min_delta)
        self.factor = _number(factor, "factor", 0)
        if not self.factor < 1:
            raise InputError(f"factor must be below 1 (it multiplies the learning rate); got {factor!r}")
        self.patience = _number(patience, "patience", 0, integer=True)
        self.cooldown = _number(cooldown, "cooldown", 0, integer=True)
        self.min_lr = _number(min_lr, "min_lr", 0)
        self.verbose = verbose
        self.wait = self.cooldown_counter = 0
        self.reduced_at = []  # 0-based epochs at whose end lr was reduced

    def on_train_begin(self, logs=None):
        """Start counting afresh."""
        self._check_monitor()
        self.best, self.wait, self.cooldown_counter = None, 0, 0

    def on_epoch_end(self, epoch, logs=None):
        """Count stalled epochs; reduce the learning rate when patience runs out."""
        logs = logs if logs is not None else {}
        logs["learning_rate"] = self.model.optimizer.learning_rate
        current = logs.get(self.monitor)
        if current is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best, self.wait = current, 0
        elif not self.cooldown_counter > 0:
            self.wait += 1
            if self.wait >= self.patience:
                old = self.model.optimizer.learning_rate
                if old > float(np.float32(self.min_lr)):
                    new = max(old * self.factor, self.min_lr)
                    _set_learning_rate(self.model, new, "ReduceLROnPlateau")
                    self.reduced_at.append(epoch)
                    if self.verbose > 0:
                        print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.")
                    self.cooldown_counter, self.wait = self.cooldown, 0


def __getattr__(name):
    if name in ("BackupAndRestore", "TrainingInterrupted"):  # nn.backup imports this module
        import nn.backup

        return getattr(nn.backup, name)
    raise AttributeError(f"module 'nn.callbacks' has no attribute {name!r}")
