"""Fast engine: a second process that compiles part of the fused steps into numba's cache.

A cold start (numba's on-disk cache empty) spends about 8 s of CPU compiling
the serial steps before the first one runs, on one core. `nn train`
therefore starts this helper at launch (nn.fast.numba_steps.start_helper):
it compiles the first layer's tasks and the loss, which numba saves to its
cache, and says "serial". Meanwhile the training process loads the data and
compiles the later layers; it then waits for "serial" and runs its first
chunks as stepwise_steps, a Python loop over steps calling those parts (the
helper's load from the cache), and tells the helper to go on
(nn.fast.numba_steps._serial_ready). So serial_steps' own compile, the
longest single one (LLVM optimizes the whole step again with every part
inlined), is off the critical path: the helper does it next, at a lower
priority, and says "steps"; the training process then loads serial_steps
from the cache. Last the helper compiles the kernels validation calls and
the parallel steps and says "parallel"; the training process trains on one
thread until then, and then loads them too: no pause for their compile
(about 9 s of CPU, which without the helper stops training after the first
chunk).

It is a process, not a thread: compiling in a second thread crashed inside
LLVM when TensorFlow shared the process. It is forked from the training
process (which has imported numba and the kernels by then: about 0.5 s of
CPU a new interpreter would spend again) unless that one runs other Python
threads; then it is a new interpreter. It only ever adds entries to
numba's cache, each written whole (numba writes a file and renames it), so
the worst a failure can do is cost time: a helper that dies, hangs past
WAIT_S or cannot start leaves its share to be compiled in the training
process, as without it. It runs with the training process's environment
(NUMBA_CACHE_DIR, NN_* flags) and is stopped when that process exits.

    python -m nn.fast.compile_helper float32
"""

import atexit
import os
import select
import signal
import subprocess
import sys
import threading
import time

#: Seconds the training process waits for the helper's share of the serial
#: steps before it stops it and compiles the rest itself. The share takes
#: about 3 s of CPU (imports included); a machine so loaded that it takes ten
#: times as long gains nothing from it.
WAIT_S = 30.0
#: Seconds from its start after which a helper that has not finished the
#: parallel steps (about 9 s of CPU) is stopped and they compile in the
#: training process. Until then training goes on with one thread.
PARALLEL_S = 90.0


class Helper:
    """A running compile helper and the steps ("serial", "steps", "parallel") it has said it finished."""

    def __init__(self, process):
        self.process, self.started = process, time.monotonic()
        self.said, self._pending = set(), b""

    def wait_for(self, step, timeout=WAIT_S, stop=True):
        """True once the helper has finished `step`; False if it ended without it or has taken
        longer than `timeout` seconds (then it is stopped, unless stop=False)."""
        deadline = time.monotonic() + timeout
        while step not in self.said:
            out = self.process.stdout
            left = deadline - time.monotonic()
            if out.closed:
                return False
            if not select.select([out], [], [], max(left, 0))[0]:  # timeout 0: a poll, still read
                if stop:
                    self.stop()
                return False
            data = os.read(out.fileno(), 4096)
            if not data:  # it exited
                self.stop()
                return False
            *lines, self._pending = (self._pending + data).split(b"\n")
            self.said.update(line.decode(errors="replace").strip() for line in lines)
        return True

    @property
    def running(self):
        """Whether the helper may still say something (it has not ended, nor been stopped)."""
        return not self.process.stdout.closed

    def go_on(self):
        """Let the helper go on to serial_steps and the parallel steps (it waits for this after "serial")."""
        try:
            self.process.stdin.write(b"go\n")
            self.process.stdin.flush()
        except (OSError, ValueError):  # it has ended, or been stopped: nothing to tell
            pass

    def stop(self):
        """Stop the helper if it still runs (its finished work stays in the cache)."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if not pipe.closed:
                pipe.close()


class _Forked:
    """A forked helper, with the few members of subprocess.Popen that Helper uses."""

    def __init__(self, pid, stdin, stdout):
        self.pid, self.stdin, self.stdout, self.returncode = pid, stdin, stdout, None

    def _reap(self, flags):
        try:
            pid, status = os.waitpid(self.pid, flags)
        except ChildProcessError:  # reaped elsewhere
            pid, status = self.pid, -1
        if pid:
            self.returncode = os.waitstatus_to_exitcode(status) if status >= 0 else -1

    def poll(self):
        if self.returncode is None:
            self._reap(os.WNOHANG)
        return self.returncode

    def kill(self):
        if self.returncode is None:
            os.kill(self.pid, signal.SIGKILL)

    def wait(self):
        if self.returncode is None:
            self._reap(0)
        return self.returncode


def _fork(dtype):
    """Fork the helper from this process, which has already imported numba and nn's kernels.

    A forked helper starts compiling at once, where a new interpreter first
    spends about 0.5 s of CPU importing them again. In the child: runs main
    and ends with os._exit, never returning into the caller (nor running its
    atexit hooks or `finally`s).
    """
    told_r, told_w = os.pipe()
    said_r, said_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the helper
        code = 1
        try:
            os.close(told_w)
            os.close(said_r)
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):  # nothing of the helper's reaches the terminal
                os.dup2(devnull, fd)
            sys.stdin, sys.stdout = open(told_r), open(said_w, "w")
            code = main([dtype])
        except BaseException:  # noqa: BLE001  (whatever happens, the child ends here)
            pass
        finally:
            os._exit(code)
    os.close(told_r)
    os.close(said_w)
    return _Forked(pid, os.fdopen(told_w, "wb"), os.fdopen(said_r, "rb"))


def start(dtype, command=None):
    """Start the helper for `dtype` inputs; None if it cannot start.

    Forked from this process when it runs no other Python thread (a fork keeps
    only the calling thread, and a lock another one held would stay locked),
    else a new interpreter. command: the argv to run instead (tests use it to
    stand in a failing helper).
    """
    import numpy as np

    import nn

    if os.name != "posix":  # wait_for selects on a pipe, and the helper renices itself
        return None
    try:
        if command is None and threading.active_count() == 1:
            process = _fork(np.dtype(dtype).name)
        else:
            root = os.path.dirname(os.path.dirname(os.path.abspath(nn.__file__)))
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(
                [root] + [p for p in [os.environ.get("PYTHONPATH")] if p]))  # this process's nn, not another
            argv = command or [sys.executable, "-m", "nn.fast.compile_helper", np.dtype(dtype).name]
            process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.DEVNULL, env=env)
    except OSError:
        return None
    helper = Helper(process)
    atexit.register(helper.stop)
    return helper


def _say(step):
    sys.stdout.write(step + "\n")
    sys.stdout.flush()


def main(argv):
    """Compile the helper's share for dtype argv[0], saying each step as it is cached."""
    import numba

    from nn.fast import numba_steps

    args = numba_steps.example_args(argv[0])
    theirs, _ = numba_steps.serial_calls(args)
    for dispatcher, types in theirs:
        dispatcher.compile(types)
    _say("serial")
    # The rest only once the training process has its parts of the steps
    # (go_on): until then every cycle goes to the training process's critical
    # path. serial_steps (about 3 s of CPU) at the same priority: at nice 10
    # beside one other busy process it got so little CPU that a 3-epoch run
    # ended on stepwise_steps, a quarter slower a step. The parallel steps
    # (about 9 s) at nice 10: training goes on meanwhile.
    if sys.stdin.readline().strip() != "go":
        return 0  # the training process ended, or will never run the serial steps
    numba_steps.serial_steps.compile(tuple(numba.typeof(a) for a in args))
    _say("steps")
    # Every run that starts on the serial steps moves to the parallel ones once
    # they are compiled, one fixed to a single thread too (as one task: a faster
    # loop, nn.fast.trainer), so they are compiled whatever the thread count.
    os.nice(10)
    chain, batches, _, adam, scratch, _, losses, correct = args
    numba_steps.compile_parallel(chain, batches, adam, scratch, losses, correct)
    _say("parallel")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
