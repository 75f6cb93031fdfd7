"""Fast engine: the thread count of each part of a chunk, chosen from measured step times.

The fused steps give bit-identical results for any thread count (no sum
crosses a task's range), so the count is free to change between any two
steps. On a quiet machine every core wins; when another process is busy on
the same cores, a parallel region waits at its barrier for a thread that has
lost its core, for up to a scheduler time slice (milliseconds, against a step
of about 0.1 ms), and one thread is many times faster. No setting is right
for both, so `ThreadChoice` measures. A chunk runs in parts of PART_STEPS
steps on the count with the lowest measured seconds per step; now and then a
part of PROBE_STEPS steps tries another count. The risks are not symmetric:
too few threads cost at most a factor of the core count, too many under load
can cost fifty, so moving to fewer threads takes one faster measure and
moving to more takes two probes in a row that win clearly. A probe that
loses waits twice as long before the next (up to MAX_WAIT parts). A run
starts on one thread, the safe count, and the first part (which compiles)
is never timed. While `cap` is set, no count above it is offered: the
trainer caps at one thread until the parallel steps are compiled.
"""

#: Steps a probe of another count takes: long enough to time (about 0.4 ms at
#: batch 32), short enough that a losing probe under load (10-20 ms a step
#: then) costs little.
PROBE_STEPS = 4
#: Steps of a part on the chosen count: a wrong choice costs at most this many.
PART_STEPS = 32
#: The longest wait, in parts, between probes.
MAX_WAIT = 64
#: More threads must be this much faster a step, twice in a row, to be chosen.
CLEAR_WIN = 0.8
#: A part this much slower a step than the last one on the same count means
#: the load changed: probe fewer threads at once.
SLOWER = 1.5


class ThreadChoice:
    """Picks the thread count of each part of a chunk and learns from how long it took."""

    def __init__(self, most, adaptive=True):
        self.counts = sorted({1, max(1, most // 2), most}) if adaptive else [most]
        self.per_step = {}  # thread count -> seconds per step, as last measured
        self.best = self.counts[0]  # the safe start: more threads must prove themselves
        self.wait, self.gap, self.turn, self.wins = 0, 1, 0, 0
        self.warm = False  # the first call compiles and warms caches: never timed
        self.cap = None  # the most threads offered now (None: every count)

    def part(self, steps):
        """(threads, count): how many of the remaining `steps` steps to run next, on how many threads."""
        if len(self.counts) == 1 or (self.cap is not None and self.cap <= self.counts[0]):
            return self.best, steps
        if not self.warm:  # compiles: untimed, short and on the safe count
            return self.best, min(PART_STEPS, steps)
        if self.best not in self.per_step:  # measure the chosen count before any probe
            return self.best, min(PART_STEPS, steps)
        if self.wait > 0:
            self.wait -= 1
            return self.best, min(PART_STEPS, steps)
        offered = [c for c in self.counts if self.cap is None or c <= self.cap]
        untried = [c for c in offered if c not in self.per_step and c != self.best]
        others = untried or [c for c in offered if c != self.best]
        self.turn += 1
        return others[self.turn % len(others)], min(PROBE_STEPS, steps)

    def record(self, threads, steps, seconds):
        """Note that `steps` steps on `threads` threads took `seconds`."""
        if not self.warm:
            self.warm = True
            return
        before, now = self.per_step.get(threads), seconds / steps
        self.per_step[threads] = now
        if threads == self.best:
            if before is not None and now > SLOWER * before and threads > self.counts[0]:
                self.wait, self.gap = 0, 1  # slower than it was: the load changed
            return
        best_now = self.per_step.get(self.best, float("inf"))
        if threads < self.best:  # fewer threads: safe, one faster measure moves
            won = now < best_now
        else:  # more threads: risky, two clear wins in a row
            self.wins = self.wins + 1 if now < CLEAR_WIN * best_now else 0
            won = self.wins >= 2
        if won:
            self.best, self.gap, self.wins = threads, 1, 0
        elif threads < self.best or not self.wins:  # a loss (a first clear win retries soon)
            self.gap = min(2 * self.gap, MAX_WAIT)
        self.wait = 0 if self.wins else self.gap
