"""nn's callbacks decide at the same epochs as Keras's, fed the same epoch logs.

Each Keras callback is given a stand-in model (it only reads stop_training,
the optimizer's learning_rate, get_weights and save), nn's a real small
model; both see identical logs, drawn as noisy, plateauing loss curves.
"""

import itertools
import types

import numpy as np
import pytest

from nn import Dense, Sequential
from nn import callbacks as nn_callbacks

pytestmark = pytest.mark.keras
keras = pytest.importorskip("keras")

EPOCHS = 30


def curves(seed):
    """Epoch logs: a falling, then plateauing, noisy val_loss and a rising val_accuracy."""
    rng = np.random.default_rng(seed)
    t = np.arange(EPOCHS)
    val_loss = 0.3 + 0.7 * np.exp(-t / rng.uniform(2, 8)) + rng.normal(0, rng.uniform(0.001, 0.03), EPOCHS)
    val_loss += np.where(t > rng.integers(8, 25), 0.01 * (t - 10), 0)  # overfitting late
    val_accuracy = 1 - val_loss / 2 + rng.normal(0, 0.005, EPOCHS)
    return [{"loss": float(v * 0.9), "val_loss": float(v), "val_accuracy": float(a)}
            for v, a in zip(val_loss, val_accuracy)]


def nn_model():
    model = Sequential([Dense(2, "softmax")], input_shape=(3,), seed=0)
    model.compile()
    return model


class KerasStandIn:
    """What Keras's callbacks touch of a model: stop_training, optimizer.learning_rate, weights, save."""

    def __init__(self):
        self.stop_training = False
        self.optimizer = types.SimpleNamespace(learning_rate=0.001)
        self.epoch, self.saved, self.restored = 0, [], None

    def get_weights(self):
        return [self.epoch]  # a marker: which epoch's weights were taken

    def set_weights(self, weights):
        self.restored = weights[0]

    def save(self, path, overwrite=True):
        self.saved.append(path)

    save_weights = save


def drive(callback, model, logs, on_epoch):
    """Run the fit protocol over `logs` until the model says stop; returns the epochs run."""
    callback.on_train_begin()
    ran = 0
    for epoch, epoch_logs in enumerate(logs):
        on_epoch(epoch)
        callback.on_epoch_begin(epoch)
        callback.on_epoch_end(epoch, dict(epoch_logs))
        ran += 1
        if model.stop_training:
            break
    callback.on_train_end()
    return ran


class Marked:
    """nn's model with get_weights replaced by the epoch marker, to see which epoch is restored."""

    def __init__(self, model):
        self.model, self.epoch, self.restored = model, 0, None
        model.get_weights = lambda: [np.array(self.epoch)]
        model.set_weights = lambda w: setattr(self, "restored", int(w[0]))


def keras_kwargs(kwargs):
    """Keras infers a direction for accuracy only from a compiled model's metrics: say it.

    nn's side keeps mode "auto", so its own inference (accuracy: up) is checked too.
    """
    return {**kwargs, "mode": "max"} if kwargs.get("monitor") == "val_accuracy" else kwargs


def nn_params(model):
    return {"metrics": ["loss", "val_loss", "val_accuracy"], "epochs": EPOCHS}


EARLY = [dict(zip(("monitor", "patience", "min_delta", "restore_best_weights", "start_from_epoch",
                   "baseline"), combo))
         for combo in itertools.product(["val_loss", "val_accuracy"], [0, 2, 5], [0, 0.01],
                                        [False, True], [0, 4], [None, 0.6])]


@pytest.mark.parametrize("seed", range(4))
def test_early_stopping_stops_and_restores_at_keras_epochs(seed):
    logs = curves(seed)
    for kwargs in EARLY:
        kwargs = dict(kwargs)
        if kwargs["monitor"] == "val_accuracy" and kwargs["baseline"] is not None:
            kwargs["baseline"] = 0.7
        theirs_model = KerasStandIn()
        theirs = keras.callbacks.EarlyStopping(**keras_kwargs(kwargs))
        theirs.set_model(theirs_model)
        ran_theirs = drive(theirs, theirs_model, logs, lambda e, m=theirs_model: setattr(m, "epoch", e))

        model = nn_model()
        marked = Marked(model)
        ours = nn_callbacks.EarlyStopping(**kwargs)
        ours.model, ours.params = model, nn_params(model)
        ran_ours = drive(ours, model, logs, lambda e, m=marked: setattr(m, "epoch", e))

        where = f"seed {seed}, {kwargs}"
        assert ran_ours == ran_theirs, where
        assert (ours.stopped_epoch, ours.best_epoch) == (theirs.stopped_epoch, theirs.best_epoch), where
        assert marked.restored == theirs_model.restored, where


PLATEAU = [dict(zip(("monitor", "patience", "factor", "min_delta", "cooldown", "min_lr"), combo))
           for combo in itertools.product(["val_loss", "val_accuracy"], [0, 1, 3], [0.5, 0.1],
                                          [1e-4, 0.02], [0, 2], [0.0, 2e-5])]


@pytest.mark.parametrize("seed", range(4))
def test_reduce_lr_on_plateau_changes_the_rate_at_keras_epochs(seed):
    logs = curves(seed)
    for kwargs in PLATEAU:
        theirs_model = KerasStandIn()
        theirs = keras.callbacks.ReduceLROnPlateau(**keras_kwargs(kwargs))
        theirs.set_model(theirs_model)
        model = nn_model()
        ours = nn_callbacks.ReduceLROnPlateau(**kwargs)
        ours.model, ours.params = model, nn_params(model)
        theirs.on_train_begin()
        ours.on_train_begin()
        for epoch, epoch_logs in enumerate(logs):
            mine, other = dict(epoch_logs), dict(epoch_logs)
            ours.on_epoch_end(epoch, mine)
            theirs.on_epoch_end(epoch, other)
            where = f"seed {seed}, epoch {epoch}, {kwargs}"
            # Keras holds the rate as a float32 variable in a real optimizer; the stand-in
            # keeps the Python float, as nn does, so the two must agree exactly.
            assert model.optimizer.learning_rate == theirs_model.optimizer.learning_rate, where
            assert mine["learning_rate"] == other["learning_rate"], where


CHECKPOINT = list(itertools.product(["val_loss", "val_accuracy"], [False, True]))


@pytest.mark.parametrize("seed", range(3))
def test_model_checkpoint_saves_at_keras_epochs(seed, tmp_path):
    logs = curves(seed)[:12]
    for monitor, best_only in CHECKPOINT:
        theirs_model = KerasStandIn()
        theirs = keras.callbacks.ModelCheckpoint("ck-{epoch:02d}-{val_loss:.3f}.keras",
                                                 save_best_only=best_only,
                                                 **keras_kwargs({"monitor": monitor}))
        theirs.set_model(theirs_model)
        drive(theirs, theirs_model, logs, lambda e: None)
        model = nn_model()
        folder = tmp_path / f"{seed}-{monitor}-{best_only}"
        ours = nn_callbacks.ModelCheckpoint(str(folder / "ck-{epoch:02d}-{val_loss:.3f}.npz"),
                                            monitor=monitor, save_best_only=best_only)
        ours.model, ours.params = model, nn_params(model)
        drive(ours, model, logs, lambda e: None)
        assert [p.rsplit("/", 1)[-1][:-4] for p in ours.saved] == [
            p[:-6] for p in theirs_model.saved], (seed, monitor, best_only)
        assert sorted(p.name for p in folder.iterdir()) == sorted(p.rsplit("/", 1)[-1] for p in ours.saved)


def test_learning_rate_scheduler_sets_the_rate_keras_sets():
    def schedule(epoch, lr):
        return lr if epoch < 3 else lr * 0.5

    theirs_model, model = KerasStandIn(), nn_model()
    theirs = keras.callbacks.LearningRateScheduler(schedule)
    theirs.set_model(theirs_model)
    ours = nn_callbacks.LearningRateScheduler(schedule)
    ours.model = model
    for epoch in range(8):
        theirs.on_epoch_begin(epoch)
        ours.on_epoch_begin(epoch)
        a, b = {"loss": 1.0}, {"loss": 1.0}  # Keras drops an empty dict (logs or {})
        theirs.on_epoch_end(epoch, a)
        ours.on_epoch_end(epoch, b)
        assert model.optimizer.learning_rate == theirs_model.optimizer.learning_rate
        assert a == b


def test_csv_logger_writes_the_file_keras_writes(tmp_path):
    logs = curves(0)[:5]
    for cls, name in ((keras.callbacks.CSVLogger, "keras.csv"), (nn_callbacks.CSVLogger, "nn.csv")):
        logger = cls(str(tmp_path / name))
        logger.on_train_begin()
        for epoch, epoch_logs in enumerate(logs):
            logger.on_epoch_end(epoch, dict(epoch_logs))
        logger.on_train_end()
    assert (tmp_path / "nn.csv").read_bytes() == (tmp_path / "keras.csv").read_bytes()


def test_terminate_on_nan_stops_at_the_batch_keras_stops(capsys):
    theirs_model = KerasStandIn()
    theirs = keras.callbacks.TerminateOnNaN()
    theirs.set_model(theirs_model)
    for batch, loss in enumerate([0.5, 0.4, float("nan"), 0.3]):
        theirs.on_batch_end(batch, {"loss": loss})
        if theirs_model.stop_training:
            break
    keras_line = capsys.readouterr().out.strip()
    from nn.errors import NonFiniteError

    model = nn_model()
    ours = nn_callbacks.TerminateOnNaN()
    ours.model = model
    assert ours.on_nonfinite(NonFiniteError("x", epoch=0, step=batch)) is True
    assert model.stop_training and capsys.readouterr().out.strip() == keras_line
