"""The compile helper: a second process shares a cold start's compiling; failures only cost time."""

import os
import subprocess
import sys
import textwrap
import time

import numba
import numpy as np
import pytest

from nn import Dense, Sequential
from nn.fast import compile_helper

numba_steps = pytest.importorskip("nn.fast.numba_steps")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def sparse_fit(dtype):
    """A fused fit on sparse inputs (the compressed-row path); the fitted weights."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((300, 40)).astype(dtype)
    x[rng.random(x.shape) < 0.8] = 0
    model = Sequential([Dense(16, "relu", input_shape=(40,)), Dense(8, "relu"), Dense(3, "softmax")],
                       dtype=dtype, seed=0, backend="numba")
    model.compile()
    model.fit(x, rng.integers(0, 3, 300), batch_size=8, epochs=1, verbose=0, engine="fused")
    return [p for layer in model.layers for p in layer.params.values()]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_example_args_have_the_types_of_a_real_fits_serial_steps(monkeypatch, dtype):
    seen, real = [], numba_steps.train_steps

    def spy(chain, batches, first_step, adam, threads, losses, correct, scratch=None):
        seen.append((chain, batches, first_step, adam, scratch, 1, losses, correct))
        return real(chain, batches, first_step, adam, threads, losses, correct, scratch)

    monkeypatch.setattr(numba_steps, "train_steps", spy)
    sparse_fit(dtype)
    want = tuple(numba.typeof(a) for a in numba_steps.example_args(dtype))
    assert seen and all(tuple(numba.typeof(a) for a in args) == want for args in seen)


def helper(code):
    """A stand-in helper running `code` (Python), started as the real one is."""
    return compile_helper.start("float32", [sys.executable, "-c", code])


def test_a_helper_that_dies_is_waited_for_no_longer():
    dead = helper("import sys; sys.exit(3)")
    assert dead.wait_for("serial") is False
    assert not dead.running and dead.process.returncode == 3


def test_a_helper_that_hangs_is_stopped_after_the_timeout():
    hung = helper("import time; time.sleep(600)")
    assert hung.wait_for("serial", timeout=0.2) is False
    assert not hung.running and hung.process.returncode is not None  # killed and reaped


def test_a_poll_hears_what_the_helper_has_said_since():
    # compile_parallel polls with timeout 0: a poll that never read the pipe kept a
    # cold run on one thread until PARALLEL_S, long after the helper had finished.
    done = helper("import time; print('serial', flush=True); time.sleep(0.2); "
                  "print('parallel', flush=True); time.sleep(600)")
    assert done.wait_for("serial", timeout=20)
    time.sleep(2)  # "parallel" is in the pipe by now, unread
    assert done.wait_for("parallel", 0, stop=False) is True and done.running
    done.stop()


def test_a_helper_is_heard_step_by_step_and_polled_without_stopping_it():
    slow = helper("print('serial', flush=True); import time; time.sleep(600)")
    assert slow.wait_for("serial", timeout=20)
    assert slow.wait_for("parallel", 0, stop=False) is False and slow.running  # a poll
    slow.stop()
    assert not slow.running and slow.process.returncode is not None


#: In a fresh process (no other threads): fork helpers whose main is a stand-in,
#: one that finishes and one that hangs, and report what Helper saw of each.
FORKED = textwrap.dedent("""
    import json, time
    from nn.fast import compile_helper
    def finishing(argv):
        compile_helper._say("serial")
        return 0 if input() == "go" else 5
    compile_helper.main = finishing
    done = compile_helper.start("float32")
    assert isinstance(done.process, compile_helper._Forked)
    heard = done.wait_for("serial", timeout=20)
    done.go_on()
    ended = not done.wait_for("parallel", timeout=20)
    compile_helper.main = lambda argv: time.sleep(600)
    hung = compile_helper.start("float32")
    hung_heard = hung.wait_for("serial", timeout=0.5)
    print(json.dumps([heard, ended, done.process.wait(), hung_heard, hung.running, hung.process.returncode]))
""")


def test_a_forked_helper_is_heard_waited_for_and_stopped():
    done = subprocess.run([sys.executable, "-c", FORKED], capture_output=True, text=True, timeout=120,
                          cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))
    assert done.returncode == 0, done.stderr[-2000:]
    heard, ended, code, hung_heard, hung_running, hung_code = __import__("json").loads(done.stdout)
    assert heard and ended and code == 0  # it said "serial", was told to go on, and exited 0
    assert not hung_heard and not hung_running and hung_code == -9  # killed after the timeout


def test_a_process_running_other_threads_starts_a_new_interpreter_not_a_fork(monkeypatch):
    import threading

    started, popen = [], subprocess.Popen

    def spy(argv, **kwargs):
        started.append(argv)
        return popen([sys.executable, "-c", "pass"], **kwargs)

    monkeypatch.setattr(compile_helper, "_fork", lambda dtype: pytest.fail("forked"))
    monkeypatch.setattr(compile_helper.subprocess, "Popen", spy)
    thread = threading.Thread(target=time.sleep, args=(1,))
    thread.start()
    try:
        compile_helper.start("float32").stop()
    finally:
        thread.join()
    assert started[0][1:] == ["-m", "nn.fast.compile_helper", "float32"]


def test_serial_steps_compile_here_once_a_helper_has_died(monkeypatch):
    dead = helper("import sys; sys.exit(1)")
    monkeypatch.setattr(numba_steps, "_helper", dead)
    monkeypatch.setattr(numba_steps, "_parts_ready", False)
    args = numba_steps.example_args("float64")
    assert numba_steps._serial_ready(args) is True  # so train_steps compiles (or loads) serial_steps
    _, ours = numba_steps.serial_calls(args)
    assert all(types in dispatcher.signatures for dispatcher, types in ours)


def test_stepwise_steps_until_the_helper_says_it_has_cached_serial_steps(monkeypatch):
    slow = helper("import sys, time; print('serial', flush=True); sys.stdin.readline(); time.sleep(2); "
                  "print('steps', flush=True); time.sleep(600)")
    monkeypatch.setattr(numba_steps, "_helper", slow)
    monkeypatch.setattr(numba_steps, "_parts_ready", False)
    args = numba_steps.example_args("float64")
    assert numba_steps._serial_ready(args) is False and slow.running  # told to go on: stepwise meanwhile
    assert slow.wait_for("steps", timeout=20, stop=False)
    assert numba_steps._serial_ready(args) is True
    slow.stop()


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_stepwise_steps_give_serial_steps_bits(dtype, rng):
    """stepwise_steps on 1 and 2 tasks and serial_steps: the same weights, moments, gradient,
    losses and counts, bit for bit (a first layer wider than a register block, a short last batch)."""
    from tests.fast.test_numba_sparse import fresh_chain, sparse_chain_problem

    n, batch, steps = 50, 4, 13  # the 13th batch is short
    shapes, w0, batches, adam = sparse_chain_problem(rng, dtype, n, batch, steps)
    results = []
    for loop, pieces in ((numba_steps.serial_steps, 1), (numba_steps.stepwise_steps, 1),
                         (numba_steps.stepwise_steps, 2)):
        chain = fresh_chain(shapes, w0)
        losses, correct = np.empty(steps, dtype), np.empty(steps, np.int64)
        for first in (0, 5):  # two chunks: the second starts mid-epoch
            part = slice(first, 5 if first == 0 else steps)
            loop(chain, batches, first, adam._replace(alphas=adam.alphas[part]),
                 numba_steps.scratch_for(chain, batches, pieces), pieces, losses[part], correct[part])
        results.append((chain.w, chain.m, chain.v, chain.grads, losses, correct))
    for got in results[1:]:
        for a, b, name in zip(got, results[0], ("w", "m", "v", "grads", "losses", "correct")):
            assert a.tobytes() == b.tobytes(), name


def test_stepwise_steps_call_their_parts_with_the_types_compiled_for_them():
    # A drift would compile another specialization at the first call: on a cold
    # start, in the training process, on the critical path.
    args = numba_steps.example_args("float32")
    theirs, ours = numba_steps.serial_calls(args)
    before = {d: set(d.signatures) for d, _ in theirs + ours}
    numba_steps.stepwise_steps(*args)
    for dispatcher, types in theirs + ours:
        assert set(dispatcher.signatures) - before[dispatcher] <= {types}, dispatcher.py_func.__name__
        assert types in dispatcher.signatures, dispatcher.py_func.__name__


def test_the_parallel_steps_wait_for_a_running_helper_and_not_for_an_ended_one(monkeypatch):
    chain, batches, _, adam, scratch, _, losses, correct = numba_steps.example_args("float64")
    busy = helper("print('serial', flush=True); import time; time.sleep(600)")
    monkeypatch.setattr(numba_steps, "_helper", busy)
    assert numba_steps.compile_parallel(chain, batches, adam, scratch, losses, correct) is False
    assert busy.running  # still compiling: training goes on with one thread
    busy.stop()  # as if it had died: now they compile here
    assert numba_steps.compile_parallel(chain, batches, adam, scratch, losses, correct) is True


def test_no_helper_with_the_cache_off(monkeypatch):
    monkeypatch.setattr(numba_steps, "CACHE", False)
    monkeypatch.setattr(numba_steps, "_helper", None)
    assert numba_steps.start_helper("float32") is False and numba_steps._helper is None


@pytest.mark.parametrize("setting", [("ADAPTIVE_THREADS", False, "NUM_THREADS", 2),
                                     ("SKIP_ZEROS", "0", "ADAPTIVE_THREADS", True)],
                         ids=["two-threads-fixed", "no-zero-skipping"])
def test_no_helper_for_a_run_that_cannot_start_on_the_serial_steps(monkeypatch, setting):
    from nn.fast import config

    monkeypatch.setattr(config, setting[0], setting[1])
    monkeypatch.setattr(config, setting[2], setting[3])
    monkeypatch.setattr(numba_steps, "cached", lambda dtype: False)  # a cold cache
    monkeypatch.setattr(numba_steps, "_helper", None)
    monkeypatch.setattr(compile_helper, "start", lambda dtype: pytest.fail("a helper started"))
    assert numba_steps.start_helper("float32") is False


@pytest.mark.parametrize("started, line", [(True, "in a second process too"),
                                           (False, "the one-thread steps now")])
def test_nn_train_says_it_compiles_in_one_line(monkeypatch, capsys, started, line):
    from nn.cli import train

    monkeypatch.setattr(numba_steps, "cached", lambda dtype: False)
    monkeypatch.setattr(numba_steps, "start_helper", lambda dtype: started)
    train.announce_compile("numba", "float32")
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("Compiling the fused steps") and line in out
    monkeypatch.setattr(numba_steps, "cached", lambda dtype: True)
    train.announce_compile("numba", "float32")
    assert capsys.readouterr().out == ""


#: In a fresh process with an empty cache: start the helper, fit, and report
#: which of serial_steps' callees were loaded from the cache (the helper's)
#: and which compiled here, with the fitted weights.
COLD_FIT = textwrap.dedent("""
    import json, sys
    import numpy as np
    sys.path.insert(0, {tests!r})
    from test_compile_helper import sparse_fit
    from nn.fast import numba_steps
    assert numba_steps.start_helper("float64")
    weights = sparse_fit("float64")
    theirs, ours = numba_steps.serial_calls(numba_steps.example_args("float64"))
    stats = {{d.py_func.__name__: [sum(d.stats.cache_hits.values()), sum(d.stats.cache_misses.values())]
             for d, _ in theirs + ours}}
    np.savez({out!r}, *weights)
    print(json.dumps(stats))
""")


@pytest.mark.slow
def test_a_cold_fit_loads_the_helpers_share_and_gets_the_same_weights(tmp_path):
    out = str(tmp_path / "weights.npz")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, "-c", COLD_FIT.format(tests=os.path.dirname(__file__), out=out)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    stats = __import__("json").loads(done.stdout.strip().splitlines()[-1])
    # hits, misses: the helper's share loaded from the cache, never compiled
    # here; ours compiled here once (a second signature would mean that
    # serial_calls drifted from serial_steps' call sites).
    for name in ("_rows_task", "_update_task", "_loss_gradient"):
        assert stats[name] == [1, 0], stats
    for name in ("_forward", "_backward_from"):
        assert stats[name] == [0, 1], stats
    with np.load(out) as cold:
        for got, want in zip([cold[k] for k in cold.files], sparse_fit("float64")):
            np.testing.assert_array_equal(got, want)
