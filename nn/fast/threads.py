"""Fast engine: the thread count of each part of a chunk, chosen from measured step times.

The fused steps give bit-identical results for any thread count (no sum
crosses a task's range), so the count is free to change between any two
steps. On a quiet machine every core wins; when another process is busy on
the same cores, a parallel region waits at its barrier for a thread that has
lost its core, for up to a scheduler time slice (milliseconds, against a step
of about 0.1 ms), and one thread is many times faster. No setting is right
for both, so `ThreadChoice` measures. A chunk runs in parts of PART_STEPS
steps on the count with the lowest measured seconds per step; now and then it
probes another count: one warming step, untimed (idle threads sleep, and
waking them costs a step or two), then PROBE_STEPS timed steps. A warming
step ABORT times slower than a step on the chosen count ends the probe as a
loss at once: under load a probe then costs one step, not PROBE_STEPS. The
risks are not symmetric: too few threads cost at most a factor of the core
count, too many under load can cost fifty, so moving to fewer threads takes
one probe faster than the chosen count's last two parts (a lone slow part is
often a blip; a load that stays slows the next part too) and moving to more
takes two probes in a row that win clearly. A probe that loses waits twice as long before the next (up to
MAX_WAIT parts). A run starts on one thread, the safe count, and the first
part (which compiles) is never timed. While `cap` is set, no count above it
is offered: the trainer caps at one thread until the parallel steps are
compiled.
"""

#: Timed steps of a probe of another count, after its warming step: long
#: enough to time (about 0.8 ms at batch 32 on a quiet machine); under load
#: the warming step has usually ended the probe before them.
PROBE_STEPS = 8
#: A warming step this much slower than a step on the chosen count ends the
#: probe: waking threads costs about a step here, a barrier under load 30-100
#: (a scheduler time slice, 10-30 ms, against a step of 0.1-0.3 ms).
ABORT = 8
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
        self.previous = {}  # thread count -> seconds per step, as measured the part before
        self.best = self.counts[0]  # the safe start: more threads must prove themselves
        self.wait, self.gap, self.turn, self.wins = 0, 1, 0, 0
        self.warm = False  # the first call compiles and warms caches: never timed
        self.cap = None  # the most threads offered now (None: every count)
        self.warming = None  # the count a probe's untimed warming step runs on
        self.timing = None  # the count whose warming step passed: time it next

    def part(self, steps):
        """(threads, count): how many of the remaining `steps` steps to run next, on how many threads."""
        if len(self.counts) == 1 or (self.cap is not None and self.cap <= self.counts[0]):
            return self.best, steps
        if not self.warm:  # compiles: untimed, short and on the safe count
            return self.best, min(PART_STEPS, steps)
        if self.best not in self.per_step:  # measure the chosen count before any probe
            return self.best, min(PART_STEPS, steps)
        if self.timing is not None:
            return self.timing, min(PROBE_STEPS, steps)
        if self.wait > 0:
            self.wait -= 1
            return self.best, min(PART_STEPS, steps)
        offered = [c for c in self.counts if self.cap is None or c <= self.cap]
        untried = [c for c in offered if c not in self.per_step and c != self.best]
        others = untried or [c for c in offered if c != self.best]
        self.turn += 1
        self.warming = others[self.turn % len(others)]
        return self.warming, 1

    def record(self, threads, steps, seconds):
        """Note that `steps` steps on `threads` threads took `seconds`."""
        if not self.warm:
            self.warm = True
            return
        if threads == self.warming:  # a probe's first step: not a measure, unless hopeless
            self.warming = None
            if seconds / steps <= ABORT * self.per_step.get(self.best, float("inf")):
                self.timing = threads
                return
            self.per_step[threads] = seconds / steps
            self._lost()
            return
        self.timing = None
        before, now = self.per_step.get(threads), seconds / steps
        self.per_step[threads] = now
        if threads == self.best:
            if before is not None:
                self.previous[threads] = before
            if before is not None and now > SLOWER * before and threads > self.counts[0]:
                self.wait, self.gap = 0, 1  # slower than it was: the load changed
            return
        best_now = self.per_step.get(self.best, float("inf"))
        if threads < self.best:  # fewer threads: faster than the chosen count's last two parts
            # One slow part is often a blip (another process's moment); a load that
            # stays makes the next part slow too, and the probe after it wins.
            won = now < min(best_now, self.previous.get(self.best, best_now))
        else:  # more threads: risky, two clear wins in a row
            self.wins = self.wins + 1 if now < CLEAR_WIN * best_now else 0
            won = self.wins >= 2
        if won:
            self.best, self.gap, self.wins = threads, 1, 0
            self.wait = self.gap
        elif threads > self.best and self.wins:  # a first clear win: retry soon
            self.wait = 0
        elif threads < self.best and best_now > SLOWER * self.previous.get(self.best, best_now):
            self.wait = 1  # the chosen count's last part was slow: probe again after the next
        else:
            self._lost()

    def _lost(self):
        """A probe lost: wait twice as long before the next."""
        self.wins = 0
        self.gap = min(2 * self.gap, MAX_WAIT)
        self.wait = self.gap
