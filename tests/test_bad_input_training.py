"""Bad input to training and its callbacks: one clear error, and nothing changed.

An unbuilt model stays unbuilt after a failed fit or train_on_batch (the
corrected call then builds it for the right shape, with the same weights as
if the failure had never happened), and bad callback arguments are refused
when the callback is made, or before training starts.
"""

import numpy as np
import pytest

from nn import Dense, Flatten, InputError, Sequential
from nn.callbacks import (CSVLogger, EarlyStopping, LearningRateScheduler, ModelCheckpoint,
                          ReduceLROnPlateau)


def unbuilt(seed=0):
    model = Sequential([Flatten(), Dense(5, "relu"), Dense(3, "softmax")], seed=seed)
    model.compile()
    return model


def good_data(rng, n=20):
    return rng.random((n, 2, 4)).astype(np.float32), rng.integers(0, 3, n)


FAILED_FIRST_CALLS = {
    "fit-labels-out-of-range": ("fit", lambda x, y: (x[:, :1], y + 7), {}),
    "fit-labels-too-few": ("fit", lambda x, y: (x[:, :1], y[:3]), {}),
    "fit-bad-split": ("fit", lambda x, y: (x[:, :1], y), {"validation_split": 0.99}),
    "fit-bad-validation-data": ("fit", lambda x, y: (x[:, :1], y), {"validation_data": "held out"}),
    "fit-bad-callbacks": ("fit", lambda x, y: (x[:, :1], y), {"callbacks": ["stop"]}),
    "fit-monitor-not-logged": ("fit", lambda x, y: (x[:, :1], y),
                               {"callbacks": [EarlyStopping(monitor="val_loss")]}),
    "train_on_batch-labels": ("train_on_batch", lambda x, y: (x[:, :1], y - 9), {}),
}


@pytest.mark.parametrize("case", FAILED_FIRST_CALLS, ids=list(FAILED_FIRST_CALLS))
def test_a_failed_first_call_leaves_the_model_unbuilt(case, rng):
    method, make, kwargs = FAILED_FIRST_CALLS[case]
    x, y = good_data(rng)
    model = unbuilt()
    bad_x, bad_y = make(x, y)
    if method == "fit":
        kwargs = {"verbose": 0, **kwargs}
    with pytest.raises(InputError):
        getattr(model, method)(bad_x, bad_y, **kwargs)
    assert not model.built and model.input_shape is None
    assert all(not layer.params for layer in model.layers)
    # The corrected call works, and starts from the weights a fresh model gets.
    getattr(model, method)(x, y, **({"verbose": 0} if method == "fit" else {}))
    assert model.layers[1].params["kernel"].shape == (8, 5)
    other = unbuilt()
    getattr(other, method)(x, y, **({"verbose": 0} if method == "fit" else {}))
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)


BAD_CALLBACK_ARGS = {
    "early-mode": (EarlyStopping, {"mode": "up"}, "mode must be 'auto', 'min' or 'max'"),
    "early-monitor-unknown-direction": (EarlyStopping, {"monitor": "f1"}, "pass mode='min'"),
    "early-monitor-empty": (EarlyStopping, {"monitor": ""}, "monitor must be the name"),
    "early-patience-negative": (EarlyStopping, {"patience": -1}, "patience must be an integer"),
    "early-patience-float": (EarlyStopping, {"patience": 1.5}, "patience must be an integer"),
    "early-min-delta-nan": (EarlyStopping, {"min_delta": float("nan")}, "min_delta must be a number"),
    "early-start-negative": (EarlyStopping, {"start_from_epoch": -2}, "start_from_epoch must be"),
    "checkpoint-not-npz": (ModelCheckpoint, {"filepath": "m.keras"}, "must be a str ending in '.npz'"),
    "checkpoint-weights-name": (ModelCheckpoint, {"filepath": "m.npz", "save_weights_only": True},
                                "ending in '.weights.npz'"),
    "checkpoint-freq": (ModelCheckpoint, {"filepath": "m.npz", "save_freq": 0}, "save_freq"),
    "csv-empty": (CSVLogger, {"filename": ""}, "filename must be a file path"),
    "csv-separator": (CSVLogger, {"filename": "a.csv", "separator": ",,"}, "separator must be one"),
    "scheduler-not-callable": (LearningRateScheduler, {"schedule": 0.1}, "schedule must be a function"),
    "plateau-factor": (ReduceLROnPlateau, {"factor": 1.0}, "factor must be below 1"),
    "plateau-min-lr": (ReduceLROnPlateau, {"min_lr": -1}, "min_lr must be a number >= 0"),
}


@pytest.mark.parametrize("case", BAD_CALLBACK_ARGS, ids=list(BAD_CALLBACK_ARGS))
def test_callbacks_refuse_bad_arguments(case):
    cls, kwargs, message = BAD_CALLBACK_ARGS[case]
    with pytest.raises(InputError, match=message):
        cls(**kwargs)


@pytest.mark.parametrize("schedule, message", [
    (lambda epoch, lr: "fast", "the schedule must give a learning rate"),
    (lambda epoch, lr: -0.1, "the schedule must give a learning rate"),
    (lambda epoch, lr: float("inf"), "the schedule must give a learning rate"),
], ids=["string", "negative", "inf"])
def test_a_bad_schedule_stops_before_its_epoch_trains(schedule, message, rng):
    x, y = good_data(rng)
    model = unbuilt()
    model.build(x.shape[1:])
    weights = model.get_weights()
    with pytest.raises(InputError, match=message):
        model.fit(x, y, verbose=0, callbacks=[LearningRateScheduler(schedule)])
    assert model.optimizer.iterations == 0 and model.optimizer.learning_rate == 0.001
    for a, b in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_checkpoint_pattern_that_cannot_be_filled_is_refused_before_training(rng, tmp_path):
    x, y = good_data(rng)
    model = unbuilt()
    with pytest.raises(InputError, match="cannot be formatted"):
        model.fit(x, y, verbose=0, callbacks=[ModelCheckpoint(str(tmp_path / "m-{val_loss}.npz"))])
    assert model.optimizer.iterations == 0 and not model.built
    assert list(tmp_path.iterdir()) == []
