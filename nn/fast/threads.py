"""Fast engine: each chunk's thread count, chosen from measured step times.

The fused steps give bit-identical results for any thread count (no sum
crosses a task's range), so the count is free to change between any two
steps. On a quiet machine every core wins; when another process is busy on
the same cores, a parallel region waits at its barrier for a thread that has
lost its core, for up to a scheduler time slice (milliseconds, against a step
of about 0.1 ms), and one thread is many times faster. No setting is right
for both, so `ThreadChoice` measures: each chunk runs on the count with the
lowest measured seconds per step, and from time to time a few steps of the
chunk try another count. A probe that loses waits twice as long before the
next, so a losing count costs a bounded share of the time; a chunk much
slower than the last one on its count (the load changed) probes at once.
"""

#: Steps a probe of another thread count takes: long enough to time (about
#: 1 ms at batch 32), short enough that a losing probe under load (about 10 ms
#: a step then) costs little.
PROBE_STEPS = 8
#: The longest wait, in chunks, between probes (a chunk is 4096 examples).
MAX_WAIT = 32
#: A chunk this much slower a step than the one before on the same count
#: means the machine's load changed: probe again at once.
SLOWER = 1.5


class ThreadChoice:
    """Plans each chunk's thread counts and learns from how long each part took."""

    def __init__(self, most, adaptive=True):
        self.counts = sorted({1, max(1, most // 2), most}) if adaptive else [most]
        self.per_step = {}  # thread count -> seconds per step, as last measured
        self.best = most
        self.wait, self.gap, self.turn = 0, 1, 0
        self.warm = False  # the first call compiles and warms caches: never timed

    def plan(self, steps):
        """[(threads, steps), ...]: the parts to run this chunk's `steps` steps in, in order."""
        if not self.warm or len(self.counts) == 1 or steps <= PROBE_STEPS:
            return [(self.best, steps)]
        untried = [c for c in self.counts if c not in self.per_step]
        if untried:
            probe = untried[0]
        elif self.wait > 0:
            self.wait -= 1
            return [(self.best, steps)]
        else:
            others = [c for c in self.counts if c != self.best]
            probe = others[self.turn % len(others)]
            self.turn += 1
        return [(probe, PROBE_STEPS), (self.best, steps - PROBE_STEPS)]

    def record(self, threads, steps, seconds):
        """Note that `steps` steps on `threads` threads took `seconds`."""
        if not self.warm:
            self.warm = True
            return
        before, self.per_step[threads] = self.per_step.get(threads), seconds / steps
        if threads == self.best:
            if before is not None and seconds / steps > SLOWER * before:  # the load changed
                self.wait, self.gap = 0, 1
            return
        best = min(self.per_step, key=self.per_step.get)
        if best == threads:  # the probe won: switch, and look again soon
            self.best, self.gap = threads, 1
        else:  # it lost: wait longer before the next probe
            self.gap = min(2 * self.gap, MAX_WAIT)
        self.wait = self.gap
