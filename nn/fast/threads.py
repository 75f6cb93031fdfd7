"""Fast engine: the thread count of each part of a chunk, chosen from measured step times.

On the compressed-row path the fused steps give bit-identical results for
any thread count (no sum crosses a task's range), so the count is free to
change between any two steps (the BLAS path's are not: OpenBLAS's sums
depend on its thread count, and the trainer gives it a fixed count). On a
quiet machine every core wins; when another process is busy on
the same cores, a parallel region waits at its barrier for a thread that has
lost its core, for up to a scheduler time slice (milliseconds, against a step
of about 0.1 ms), and one thread is many times faster. No setting is right
for both, so `ThreadChoice` measures.

A chunk runs in parts of about PART_SECONDS on the chosen count (at most
PART_STEPS steps: 32 at batch 32, 1 or 2 at batch 1024, whose steps take
2-4 ms); each part is timed, and the count's usual time is the median of its
last USUAL parts. So every decision below takes about as long at any batch
size. Now and then another count is probed: one warming step, untimed (idle
threads sleep, and waking them costs a step or two), then untimed settling
steps worth about PROBE_SETTLE_SECONDS (at most PROBE_SETTLE_STEPS), then
timed steps worth about PROBE_SECONDS on the chosen count (at most
PROBE_STEPS: 8 at batch 32, 1 at batch 1024). The settling steps are there
because a count's first steps after another's are slow: measured here at
batch 32, two-thread steps after one-thread ones took 1.2-1.6x their steady
time for about 8 steps (the weights and moments moving between the cores'
caches, most likely), and a probe timed over them lost to one thread where
two were 0.85x its time. A warming or settling step ABORT times slower than
the chosen count's step ends the probe as a loss at once, so under load a
probe costs one step. The
SETTLE parts on the chosen count after a probe are not timed: measured here
at batch 32, the two parts of two threads after a one-thread probe took about
twice their usual time (the weights and moments moving back between the
cores' caches, most likely), and timed they made the probe look like a win.

The risks are not symmetric: too few threads cost at most a factor of the
core count, too many under load can cost fifty. So moving to more threads
takes two probes in a row that beat the usual time clearly; moving to fewer
takes one probe that beats it; and a part LOADED times slower than the usual
(a barrier waiting for time slices: 15-300x here, where a blip was at most 6x
and a probe's after-effect about 2x) is taken as a new load: fewer threads are probed at
once, against that part. A probe that loses waits twice as long before the
next (up to MAX_WAIT parts). A run starts on one thread, the safe count, and
its first part (which compiles) is never timed. While `cap` is set, no count
above it is offered: the trainer caps at one thread until the parallel steps
are compiled.
"""

import statistics

#: Timed steps of a probe of another count, after its warming step: at most
#: this many, and no more than take about PROBE_SECONDS on the chosen count:
#: long enough to time, and no longer (a step at batch 1024 takes 2-4 ms:
#: eight-step probes there spent whole chunks on the other count). Under load
#: the warming step has usually ended the probe before them.
PROBE_STEPS = 8
PROBE_SECONDS = 0.8e-3
#: Untimed steps of a probe after its warming step (see above): at most this
#: many, and no more than take about PROBE_SETTLE_SECONDS on the chosen count.
PROBE_SETTLE_STEPS = 8
PROBE_SETTLE_SECONDS = 2e-3
#: A warming step (or the settling steps' mean) this much slower than the
#: chosen count's step ends the probe: waking threads costs about a step here
#: (the first two-thread step after one-thread ones took 1.0x a one-thread
#: step), a step under load 5x (batch 32, one busy process, OpenMP's shorter
#: spinning: config.SPIN_COUNT) to 30-100x (a barrier waiting a whole time slice).
ABORT = 3
#: A part on the chosen count: about this long, and at most PART_STEPS steps
#: (a wrong choice costs at most that). With parts of a fixed 32 steps, batch
#: 1024's took 80-130 ms each, and moving to two threads most of an epoch.
PART_SECONDS = 4e-3
PART_STEPS = 32
#: Parts whose median is a count's usual time per step.
USUAL = 3
#: Untimed parts on the chosen count after a probe.
SETTLE = 2
#: The longest wait, in parts, between probes.
MAX_WAIT = 64
#: More threads must be this much faster a step, twice in a row, to be chosen
#: (two threads took 0.85x one thread's epoch here, the day the second vCPU gave
#: 0.71x its multiply-adds; 0.8 then kept a fit on one thread throughout).
CLEAR_WIN = 0.9
#: A part this much slower a step than the count's usual means a new load:
#: a barrier waiting for time slices is 15-300x here; blips seen were up to 6x.
LOADED = 10.0


class ThreadChoice:
    """Picks the thread count of each part of a chunk and learns from how long it took."""

    def __init__(self, most, adaptive=True):
        self.counts = sorted({1, max(1, most // 2), most}) if adaptive else [most]
        self.parts = {}  # thread count -> seconds per step of its last USUAL timed parts
        self.probed = {}  # thread count -> seconds per step of its last probe
        self.best = self.counts[0]  # the safe start: more threads must prove themselves
        self.wait, self.gap, self.turn, self.wins = 0, 1, 0, 0
        self.warm = False  # the first call compiles and warms caches: never timed
        self.cap = None  # the most threads offered now (None: every count)
        self.warming = None  # the count a probe's untimed warming step runs on
        self.timing = None  # the count whose warming step passed: settle on it, then time it
        self.settling = False  # whether the probe of self.timing has its settling steps to run
        self.settle = 0  # untimed parts left after a probe
        self.loaded = None  # seconds per step of a part that signalled a new load
        self.steps = {}  # thread count -> steps run on it (every part, timed or not)

    def usual(self, threads):
        """Seconds per step usual for `threads` (median of its last parts), or None."""
        times = self.parts.get(threads)
        return statistics.median(times) if times else None

    def part(self, steps):
        """(threads, count): how many of the remaining `steps` steps to run next, on how many threads."""
        if len(self.counts) == 1 or (self.cap is not None and self.cap <= self.counts[0]):
            return self.best, steps
        if not self.warm or self.settle or self.best not in self.parts:
            return self.best, min(self._part_steps(), steps)  # untimed, settling, or measure it first
        if self.timing is not None:
            if self.settling:
                return self.timing, min(self._steps_for(PROBE_SETTLE_SECONDS, PROBE_SETTLE_STEPS), steps)
            return self.timing, min(self._probe_steps(), steps)
        if self.wait > 0:
            self.wait -= 1
            return self.best, min(self._part_steps(), steps)
        offered = [c for c in self.counts if self.cap is None or c <= self.cap]
        others = [c for c in offered if c != self.best]
        if self.loaded is not None:  # a new load: fewer threads first
            others = [c for c in others if c < self.best] or others
        else:
            others = [c for c in others if c not in self.probed] or others
        self.turn += 1
        self.warming = others[self.turn % len(others)]
        return self.warming, 1

    def _steps_for(self, seconds, most):
        """Steps that take about `seconds` on the chosen count: 1 to `most`."""
        step = self.usual(self.best)
        return max(1, min(most, round(seconds / step))) if step else most

    def _part_steps(self):
        """Steps of a part: about PART_SECONDS on the chosen count, 1 to PART_STEPS."""
        return self._steps_for(PART_SECONDS, PART_STEPS)

    def _probe_steps(self):
        """Timed steps of a probe: about PROBE_SECONDS on the chosen count, 1 to PROBE_STEPS."""
        return self._steps_for(PROBE_SECONDS, PROBE_STEPS)

    def record(self, threads, steps, seconds):
        """Note that `steps` steps on `threads` threads took `seconds`."""
        self.steps[threads] = self.steps.get(threads, 0) + steps
        now = seconds / steps
        if not self.warm:
            self.warm = True
            return
        if threads == self.warming or (threads == self.timing and self.settling):
            # a probe's first steps: not a measure, unless hopeless
            settled, self.warming, self.settling = threads == self.timing, None, False
            if now <= ABORT * (self.usual(self.best) or float("inf")):
                self.timing, self.settling = threads, not settled
            else:
                self.timing, self.probed[threads] = None, now
                self._lost()
            return
        if threads == self.timing:
            self.timing = None
            self.probed[threads] = now
            self._judge(threads, now)
            return
        if self.settle:
            self.settle -= 1
            return
        usual = self.usual(threads)
        self.parts[threads] = (self.parts.get(threads, []) + [now])[-USUAL:]
        if usual is not None and now > LOADED * usual and threads > self.counts[0]:
            self.loaded, self.wait, self.gap = now, 0, 1  # a new load: probe fewer threads now

    def _judge(self, threads, now):
        """A timed probe of `threads` took `now` seconds a step: move, retry, or back off."""
        usual = self.usual(self.best)
        if threads < self.best:  # fewer threads: safe, one faster probe moves
            won = now < (self.loaded if self.loaded is not None else usual)
        else:  # more threads: risky, two clear wins in a row
            self.wins = self.wins + 1 if now < CLEAR_WIN * usual else 0
            won = self.wins >= 2
        self.loaded = None
        if won:
            self.best, self.gap, self.wins, self.wait = threads, 1, 0, 1
            self.parts[threads] = [now]  # its usual from here on: the probe, then its parts
        elif self.wins:  # a first clear win: retry after one part
            self.wait = 1
        else:
            self.settle = SETTLE
            self._lost()

    def _lost(self):
        """A probe lost: wait twice as long before the next."""
        self.wins = 0
        self.gap = min(2 * self.gap, MAX_WAIT)
        self.wait = self.gap
