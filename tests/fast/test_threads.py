"""nn.fast.threads: the thread count follows measured step times, and probes stay cheap."""

from nn.fast.threads import MAX_WAIT, PROBE_STEPS, ThreadChoice


def run(choice, chunks, seconds_per_step, steps=128):
    """Feed `chunks` chunks through choice with fake timings; the parts it planned."""
    parts = []
    for chunk in range(chunks):
        for threads, count in choice.plan(steps):
            choice.record(threads, count, count * seconds_per_step(threads, chunk))
            parts.append((threads, count))
    return parts


def test_a_quiet_machine_keeps_every_core_and_a_busy_one_moves_to_one_thread():
    choice = ThreadChoice(2)
    quiet = {1: 2e-4, 2: 1e-4}
    busy = {1: 2.4e-4, 2: 9e-3}  # one busy process: the barrier waits a time slice
    parts = run(choice, 40, lambda t, _: quiet[t])
    assert choice.best == 2
    probed = sum(n for t, n in parts if t == 1)
    assert 0 < probed <= 6 * PROBE_STEPS  # backing off: 8 steps, then waits 2, 4, 8, ...
    parts = run(choice, 40, lambda t, _: busy[t])
    assert choice.best == 1
    assert sum(n for t, n in parts if t == 2) <= 3 * 128  # noticed within a few chunks
    run(choice, 3 * MAX_WAIT, lambda t, _: quiet[t])  # the load goes: found again
    assert choice.best == 2


def test_the_first_call_is_never_timed_and_a_fixed_count_never_probes():
    choice = ThreadChoice(2)
    assert choice.plan(128) == [(2, 128)]
    choice.record(2, 128, 30.0)  # compilation: not a measure of the count
    assert choice.per_step == {}
    fixed = ThreadChoice(3, adaptive=False)
    assert {t for t, _ in run(fixed, 10, lambda t, _: 1.0)} == {3}
    assert ThreadChoice(4).counts == [1, 2, 4]
