"""A run starts on the serial steps and moves to the parallel ones once they are compiled."""

import os
import sys
import threading

import numpy as np
import pytest

from nn import Dense, Sequential
from nn.fast import config, trainer
from nn.fast.registry import _train_steps, copied
from nn.fast.threads import ThreadChoice

numba_steps = pytest.importorskip("nn.fast.numba_steps")


def test_compiling_in_the_background_changes_nothing_and_reports_a_failure():
    args = _train_steps(np.random.default_rng(0), np.float64, "small")
    chain, batches, _, adam, _, losses, correct = args
    before = copied(args)
    scratch = numba_steps.scratch_for(chain, batches, 2)
    job = numba_steps.ParallelCompile(chain, batches, adam, scratch, losses, correct)
    job.thread.join()
    assert job.ready()
    kernels = pytest.importorskip("nn.fast.numba_kernels")
    for kernel in (kernels.dense_forward, kernels.softmax, kernels._xent_forward):  # validation's
        assert any(str(sig[0]) == "array(float64, 2d, C)" for sig in kernel.signatures), kernel
    for got, want in zip(copied(args)[0], before[0]):  # no step was taken: the chain is as it was
        np.testing.assert_array_equal(got, want)
    bad = chain._replace(shapes=chain.shapes[:, 0].copy())  # 1-D shapes: numba cannot type it
    job = numba_steps.ParallelCompile(bad, batches, adam, scratch, losses, correct)
    job.thread.join()
    with pytest.raises(Exception, match="(?i)typ"):
        job.ready()  # raised in the caller's thread, not lost in the background


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")
def test_the_background_compile_lowers_only_its_own_thread_priority():
    seen = {}

    def body():
        me = threading.get_native_id()
        before = os.getpriority(os.PRIO_PROCESS, me)
        numba_steps._lower_priority()
        seen["change"] = os.getpriority(os.PRIO_PROCESS, me) - before

    thread = threading.Thread(target=body)
    process = os.getpriority(os.PRIO_PROCESS, 0)
    thread.start()
    thread.join()
    assert seen["change"] == min(numba_steps.NICER, 19 - process)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == process  # the caller's own


def fitted(monkeypatch, adaptive):
    """Weights after 4 epochs of 150 steps (one chunk each) on sparse inputs; thread counts used."""
    monkeypatch.setattr(config, "ADAPTIVE_THREADS", adaptive)
    monkeypatch.setattr(trainer.config, "NUM_THREADS", 2 if adaptive else 1)
    used, record = [], ThreadChoice.record
    monkeypatch.setattr(ThreadChoice, "record",
                        lambda self, t, n, s: (used.append((t, self.cap)), record(self, t, n, s))[1])
    ready = numba_steps.ParallelCompile.ready
    monkeypatch.setattr(numba_steps.ParallelCompile, "ready",  # wait for it: no race in the test
                        lambda self: (self.thread.join(), ready(self))[1])
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
    assert used[:2] == [(1, 1), (1, 1)]  # epoch 1 compiles the serial steps, epoch 2 theirs
    assert any(t == 2 for t, cap in used[2:]) and all(cap is None for _, cap in used[2:])
    monkeypatch.undo()
    serial, used = fitted(monkeypatch, adaptive=False)
    assert {t for t, _ in used} == {1}
    for got, want in zip(weights, serial):  # any thread count gives the same bits
        np.testing.assert_array_equal(got, want)
