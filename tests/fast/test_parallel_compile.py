"""A run starts on the serial steps and moves to the parallel ones once they are compiled."""

import numpy as np
import pytest

from nn import Dense, Sequential
from nn.fast import config, trainer
from nn.fast.registry import _train_steps, copied
from nn.fast.threads import ThreadChoice

numba_steps = pytest.importorskip("nn.fast.numba_steps")


def test_compiling_the_parallel_steps_changes_nothing_and_covers_validation():
    args = _train_steps(np.random.default_rng(0), np.float64, "small")
    chain, batches, _, adam, _, losses, correct = args
    before = copied(args)
    scratch = numba_steps.scratch_for(chain, batches, 2)
    numba_steps.compile_parallel(chain, batches, adam, scratch, losses, correct)
    for got, want in zip(copied(args)[0], before[0]):  # no step was taken: the chain is as it was
        np.testing.assert_array_equal(got, want)
    kernels = pytest.importorskip("nn.fast.numba_kernels")
    for kernel in (kernels.dense_forward, kernels.softmax, kernels._xent_forward):  # validation's
        assert any(str(sig[0]) == "array(float64, 2d, C)" for sig in kernel.signatures), kernel
    signatures = len(numba_steps.sparse_steps.signatures)
    with numba_steps.thread_counts(2, 1):  # a real chunk on 2 threads finds its signature compiled
        numba_steps.train_steps(chain, batches, 0, adam, 2, losses, correct, scratch)
    assert len(numba_steps.sparse_steps.signatures) == signatures


def fitted(monkeypatch, adaptive):
    """Weights after 4 epochs of 150 steps (one chunk each) on sparse inputs; thread counts used."""
    monkeypatch.setattr(config, "ADAPTIVE_THREADS", adaptive)
    monkeypatch.setattr(trainer.config, "NUM_THREADS", 2 if adaptive else 1)
    used, record = [], ThreadChoice.record
    monkeypatch.setattr(ThreadChoice, "record",
                        lambda self, t, n, s: (used.append((t, self.cap)), record(self, t, n, s))[1])
    rng = np.random.default_rng(3)
    x = rng.standard_normal((600, 40))
    x[rng.random(x.shape) < 0.8] = 0  # sparse: the compressed-row path
    model = Sequential([Dense(16, "relu", input_shape=(40,)), Dense(3, "softmax")], dtype="float64",
                       seed=0, backend="numba")
    model.compile()
    model.fit(x, rng.integers(0, 3, 600), batch_size=4, epochs=4, verbose=0, engine="fused")
    return [p.copy() for layer in model.layers for p in layer.params.values()], used


@pytest.mark.skipif(numba_steps.MAX_THREADS < 2, reason="numba has one thread here")
def test_a_fit_starts_on_one_thread_and_offers_more_once_compiled(monkeypatch):
    weights, used = fitted(monkeypatch, adaptive=True)
    assert used[:2] == [(1, 1), (1, 1)]  # the first chunk is reported before the compile
    assert any(t == 2 for t, cap in used[2:]) and all(cap is None for _, cap in used[2:])
    monkeypatch.undo()
    serial, used = fitted(monkeypatch, adaptive=False)
    assert {t for t, _ in used} == {1}
    # one thread fixed moves to the parallel loop too, as one task
    assert used[:2] == [(1, 1), (1, 1)] and all(cap is None for _, cap in used[2:])
    for got, want in zip(weights, serial):  # any thread count gives the same bits
        np.testing.assert_array_equal(got, want)
