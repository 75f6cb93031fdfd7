"""BackupAndRestore: an interrupted fit resumed from its backup ends bit-identical to an uninterrupted one."""

import os
import signal

import numpy as np
import pytest

from nn import Callback, Dense, Flatten, Sequential
from nn.backup import BackupAndRestore, TrainingInterrupted
from nn.callbacks import EarlyStopping, LearningRateScheduler
from nn.errors import InputError, ModelError

ENGINES = [("numpy", "layers"), ("numba", "layers"), ("numpy", "fused"), ("numba", "fused")]
IDS = [f"{b}-{e}" for b, e in ENGINES]


def make_model(backend, seed=3):
    model = Sequential([Flatten(input_shape=(4, 5)), Dense(16, "relu"), Dense(4, "softmax")],
                       seed=seed, backend=backend)
    model.compile()
    return model


def data(n=500):
    rng = np.random.default_rng(1)
    x = rng.random((n, 4, 5)).astype(np.float32)
    x[x < 0.4] = 0  # zeros, so the fused engine's compressed-row path runs too
    return x, rng.integers(0, 4, n)


def run_state(model, history):
    opt = model.optimizer.state
    return (model.get_weights() + list(opt.m) + list(opt.v), opt.count, history.history,
            model.shuffle_rng.bit_generator.state, model.optimizer.learning_rate)


def assert_identical(got, want):
    arrays, count, history, rng, lr = got
    assert (count, history, rng, lr) == want[1:]
    for a, b in zip(arrays, want[0]):
        np.testing.assert_array_equal(a, b)


class StopAt(Callback):
    """A crash at (epoch, batch): raises as kill -9 would end the process there."""

    def __init__(self, epoch, batch, how="crash"):
        self.at, self.how = (epoch, batch), how

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            if self.how == "sigterm":
                os.kill(os.getpid(), signal.SIGTERM)
            else:
                raise RuntimeError("killed")


FIT = {"batch_size": 8, "epochs": 3, "validation_split": 0.2, "verbose": 0}


def extras():
    return [EarlyStopping(patience=5, restore_best_weights=True),
            LearningRateScheduler(lambda e, lr: 0.002 / (1 + e))]


@pytest.mark.parametrize(("backend", "engine"), ENGINES, ids=IDS)
@pytest.mark.parametrize("save_freq", ["epoch", 7], ids=["per-epoch", "every-7-steps"])
def test_a_crashed_fit_resumes_bit_identical(backend, engine, save_freq, tmp_path):
    x, y = data()
    whole = make_model(backend)
    history = whole.fit(x, y, engine=engine, callbacks=extras(), **FIT)
    want = run_state(whole, history)
    for epoch, batch in [(0, 3), (1, 0), (1, 33), (2, 49)]:
        folder = tmp_path / f"{epoch}-{batch}"
        first = make_model(backend)
        with pytest.raises(RuntimeError, match="killed"):
            first.fit(x, y, engine=engine, callbacks=extras() + [
                StopAt(epoch, batch), BackupAndRestore(folder, save_freq=save_freq)], **FIT)
        again = make_model(backend)
        backup = BackupAndRestore(folder, save_freq=save_freq)
        history = again.fit(x, y, engine=engine, callbacks=extras() + [backup], **FIT)
        assert_identical(run_state(again, history), want)
        assert not os.path.exists(backup.path)  # deleted at the end, as Keras's


@pytest.mark.parametrize(("backend", "engine"), [("numpy", "layers"), ("numba", "fused")])
def test_sigterm_writes_a_backup_at_the_next_step_and_says_how_to_resume(backend, engine, tmp_path):
    x, y = data()
    whole = make_model(backend)
    want = run_state(whole, whole.fit(x, y, engine=engine, **FIT))
    model = make_model(backend)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingInterrupted, match=r"SIGTERM: stopped at epoch 2, step \d+, after "
                                                  r"writing a backup to .*run the same command"):
        model.fit(x, y, engine=engine, callbacks=[StopAt(1, 10, "sigterm"), BackupAndRestore(tmp_path)], **FIT)
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is handed back
    again = make_model(backend)
    backup = BackupAndRestore(tmp_path)
    history = again.fit(x, y, engine=engine, callbacks=[backup], **FIT)
    assert backup.restored[0] == 1 and backup.restored[1] > 10
    assert_identical(run_state(again, history), want)


def test_a_backup_of_another_run_or_a_damaged_one_is_refused(tmp_path):
    x, y = data()
    model = make_model("numpy")
    with pytest.raises(RuntimeError):
        model.fit(x, y, engine="layers", callbacks=[StopAt(1, 2), BackupAndRestore(tmp_path)], **FIT)
    other = make_model("numpy", seed=4)
    with pytest.raises(ModelError, match="belongs to another run .*seed"):
        other.fit(x, y, engine="layers", callbacks=[BackupAndRestore(tmp_path)], **FIT)
    with pytest.raises(ModelError, match="belongs to another run .*data"):
        make_model("numpy").fit(x[::-1], y, engine="layers", callbacks=[BackupAndRestore(tmp_path)], **FIT)
    path = tmp_path / "backup.npz"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # one flipped byte somewhere in the arrays
    path.write_bytes(bytes(raw))
    fresh = make_model("numpy")
    weights = fresh.get_weights()
    with pytest.raises(ModelError, match="is damaged; delete it"):
        fresh.fit(x, y, engine="layers", callbacks=[BackupAndRestore(tmp_path)], **FIT)
    assert fresh.optimizer.iterations == 0
    for a, b in zip(weights, fresh.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kwargs, message", [
    ({"backup_dir": ""}, "backup_dir must be a folder path"),
    ({"backup_dir": None}, "backup_dir must be a folder path"),
    ({"backup_dir": "b", "save_freq": 0}, "save_freq"),
    ({"backup_dir": "b", "save_freq": "batch"}, "save_freq"),
], ids=["empty", "none", "freq-0", "freq-word"])
def test_bad_backup_arguments_are_refused(kwargs, message):
    with pytest.raises(InputError, match=message):
        BackupAndRestore(**kwargs)


def test_a_backup_dir_that_is_a_file_is_refused_before_training(tmp_path):
    x, y = data()
    (tmp_path / "f").write_text("")
    model = make_model("numpy")
    with pytest.raises(InputError, match="is not a folder"):
        model.fit(x, y, callbacks=[BackupAndRestore(tmp_path / "f")], **FIT)
    assert model.optimizer.iterations == 0


def test_a_numeric_save_freq_writes_one_backup_per_save_freq_steps(tmp_path, monkeypatch):
    # 400 training examples at batch 10: 40 steps an epoch, 2 epochs; every 7 steps
    # is 11 writes (steps 7, 14, ..., 77), not one per step once the first 7 have passed.
    writes = []
    original = BackupAndRestore.write
    monkeypatch.setattr(BackupAndRestore, "write", lambda self: (writes.append(1), original(self)))
    x, y = data()
    make_model("numpy").fit(x, y, batch_size=10, epochs=2, validation_split=0.2, verbose=0,
                            engine="layers", callbacks=[BackupAndRestore(tmp_path / "b", save_freq=7)])
    assert len(writes) == 80 // 7
