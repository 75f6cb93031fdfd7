"""Lockstep: nn and its Keras twin trained side by side on the same batches.

NumPy cannot replay TensorFlow's shuffle or its Glorot draws, so the two can
only be compared from the same starting weights on the same batches. Keras is
driven batch by batch with `train_on_batch`, which runs the same compiled
train step as `fit`; nn with its own `train_on_batch`. After every step the
driver records both losses and accuracies (measured before the update, as
both report them) and how far the weights, and optionally Adam's moments,
have drifted apart.
"""

from dataclasses import dataclass, field

import numpy as np

from reference.twin import keras_adam_state, keras_floatx, to_keras


def rel_diff(ours, theirs):
    """max |ours - theirs| over every array, divided by max |theirs| (0 if both are all 0)."""
    diff = max(float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
               for a, b in zip(ours, theirs))
    scale = max(float(np.max(np.abs(b))) for b in theirs)
    return diff / scale if scale else diff


@dataclass
class Trace:
    """Per-step records of a lockstep run; every list has one entry per step.

    m_rel_diff and v_rel_diff hold NaN on the steps where the optimizer state
    was not read (see Lockstep's state_every).
    """

    nn_loss: list = field(default_factory=list)
    keras_loss: list = field(default_factory=list)
    nn_accuracy: list = field(default_factory=list)
    keras_accuracy: list = field(default_factory=list)
    weight_rel_diff: list = field(default_factory=list)
    m_rel_diff: list = field(default_factory=list)
    v_rel_diff: list = field(default_factory=list)

    def __len__(self):
        return len(self.nn_loss)


class Lockstep:
    """Train an nn model and its Keras twin in lockstep, recording how they differ.

    model: a compiled nn.Sequential; its current weights become the twin's.
    kmodel: the Keras twin, or None to build one with reference.twin.to_keras.
    state_every: read Keras's Adam moments every this many steps (0: never);
    reading them costs about as much as a Keras step.
    """

    def __init__(self, model, kmodel=None, state_every=1):
        self.model = model
        self.kmodel = to_keras(model) if kmodel is None else kmodel
        self.state_every = int(state_every)
        self.trace = Trace()

    def step(self, x, y):
        """One update on both sides; returns (nn [loss, acc], keras [loss, acc])."""
        ours = self.model.train_on_batch(x, y)
        with keras_floatx(self.model.dtype):
            theirs = self.kmodel.train_on_batch(x, y)
        t = self.trace
        t.nn_loss.append(ours[0])
        t.keras_loss.append(theirs[0])
        t.nn_accuracy.append(ours[1])
        t.keras_accuracy.append(theirs[1])
        t.weight_rel_diff.append(self.weight_rel_diff())
        if self.state_every and len(t) % self.state_every == 0:
            m, v = self.state_rel_diff()
        else:
            m = v = float("nan")
        t.m_rel_diff.append(m)
        t.v_rel_diff.append(v)
        return ours, theirs

    def weight_rel_diff(self):
        """Largest weight difference divided by the largest Keras weight."""
        return rel_diff(self.model.get_weights(), self.kmodel.get_weights())

    def state_rel_diff(self):
        """(m, v) relative differences of Adam's moments; checks the step counts agree."""
        ours, theirs = self.model.optimizer.state, keras_adam_state(self.kmodel)
        if ours.count != theirs.count:
            raise AssertionError(f"nn took {ours.count} Adam steps, Keras {theirs.count}")
        return rel_diff(ours.m, theirs.m), rel_diff(ours.v, theirs.v)

    def epoch(self, x, y, order, batch_size=32):
        """Train both over x[order] in batches; return (nn logs, keras logs) as fit reports them.

        The logs are {"loss", "accuracy"}: means of the per-batch values weighted
        by batch size, the running figures fit shows at the end of an epoch.
        """
        sums = np.zeros((2, 2))  # (side, [loss, correct]) weighted by batch size
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            ours, theirs = self.step(x[idx], y[idx])
            sums += len(idx) * np.array([ours, theirs])
        means = sums / len(order)
        return ({"loss": means[0, 0], "accuracy": means[0, 1]},
                {"loss": means[1, 0], "accuracy": means[1, 1]})
