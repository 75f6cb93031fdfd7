"""Start-up, one-off compile time and peak memory of `python -m nn train`, per backend.

    python benchmarks/startup_memory.py --json startup_memory.json

Start-up: seconds from launching a new `python -m nn train` process to the
end of its first chunk of training steps (the first moment fit reports a
batch; a chunk is 4096 examples, 128 steps at batch 32), once with an empty
numba cache (numba compiles everything: the one-off compile time is the
difference) and then --warm-runs times with the cache warm. Each also records
the CPU seconds (user + system) spent by then in the process and in any it
started (a cold start's compile helper, nn.fast.compile_helper, which then
finishes its work before the process exits, so that the warm runs find
everything cached): on a shared machine wall time moves with the other
processes, CPU time much less. A cold start's CPU time is also given
for the training process alone: with a core free for the helper, that is
what the first step waits for. Peak memory: the
resident-set high-water mark (getrusage maxrss) of a whole
`python -m nn train --epochs E` process per backend, validation and test
evaluation included.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from _common import ROOT, table, write_json

BACKENDS = "numba,numpy"
WARM_RUNS = 3
EPOCHS = 2

#: Runs `nn train` and exits as soon as fit reports its first batch, printing
#: the wall-clock time then (the parent compares it with the launch time) and
#: the CPU seconds spent by then, a cold start's compile helper's included
#: (read from /proc: it still runs). The helper is then let finish what it
#: compiles after the first step (serial_steps, the parallel steps), as in
#: any run longer than a few seconds, so that the warm runs find them cached.
FIRST_STEP = """
import os, sys, time
import nn.callbacks
def helper_cpu(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    except (OSError, ValueError, IndexError):
        return 0.0
def first_batch(self, batch, logs=None):
    print("FIRST_STEP", time.time(), flush=True)
    t = os.times()
    helper = getattr(sys.modules.get("nn.fast.numba_steps"), "_helper", None)
    running = helper is not None and helper.process.poll() is None
    print("CPU_S", t.user + t.system + t.children_user + t.children_system
          + (helper_cpu(helper.process.pid) if running else 0.0), flush=True)
    print("MAIN_CPU_S", t.user + t.system, flush=True)
    if running:
        helper.wait_for("parallel", timeout=600, stop=False)
        helper.stop()
    os._exit(0)
nn.callbacks.ProgressBar.on_train_batch_end = first_batch
from nn.cli import main
main(sys.argv[1:])
"""

#: Runs `nn train` to the end and prints the process's peak resident set.
PEAK = """
import resource, sys
from nn.cli import main
code = main(sys.argv[1:])
print("MAXRSS_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True)
sys.exit(code)
"""


def run(script, args, env):
    """Launch python -c script args; return (launch wall time, stdout)."""
    launched = time.time()
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                          env=env, cwd=ROOT)
    if done.returncode:
        raise RuntimeError(f"nn train failed: {done.stderr.strip()[-500:]}")
    return launched, done.stdout


def tagged(stdout, tag):
    """The number printed after `tag` in stdout."""
    return float(next(line.split()[1] for line in stdout.splitlines() if line.startswith(tag)))


def startup(backend, warm_runs, out):
    """Seconds to the first reported batch: cold cache once, then warm."""
    args = ["train", "--backend", backend, "--epochs", "1", "--out", out]
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=ROOT)
        times, cpu, main_cpu = [], [], []
        for _ in range(1 + warm_runs):
            launched, stdout = run(FIRST_STEP, args, env)
            times.append(tagged(stdout, "FIRST_STEP") - launched)
            cpu.append(tagged(stdout, "CPU_S"))
            main_cpu.append(tagged(stdout, "MAIN_CPU_S"))
    warm = statistics.median(times[1:])
    return {"backend": backend, "first_step_cold_s": times[0], "first_step_warm_s": warm,
            "compile_s": times[0] - warm, "warm_runs": times[1:],
            "first_step_cold_cpu_s": cpu[0], "first_step_cold_train_cpu_s": main_cpu[0],
            "first_step_warm_cpu_s": statistics.median(cpu[1:]),
            "warm_runs_cpu": cpu[1:]}


def peak_memory(backend, epochs, out):
    """Peak resident set, in MiB, of a full `nn train` run."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    _, stdout = run(PEAK, ["train", "--backend", backend, "--epochs", str(epochs), "--out", out], env)
    return tagged(stdout, "MAXRSS_KB") / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default=BACKENDS)
    parser.add_argument("--warm-runs", type=int, default=WARM_RUNS)
    parser.add_argument("--epochs", type=int, default=EPOCHS,
                        help="epochs of the peak-memory run (0: no peak-memory run)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for backend in args.backends.split(","):
            row = startup(backend, args.warm_runs, out) if backend == "numba" else {"backend": backend}
            row["peak_rss_mib"] = peak_memory(backend, args.epochs, out) if args.epochs else None
            rows.append(row)
    base = next((r["peak_rss_mib"] for r in rows if r["backend"] == "numpy"), None)
    for row in rows:
        row["peak_vs_numpy"] = row["peak_rss_mib"] / base if base and row["peak_rss_mib"] else None
    print(table(rows, [("backend", "backend", "{}"), ("first_step_cold_s", "first step, cold cache s", "{:.2f}"),
                       ("first_step_cold_cpu_s", "its CPU s", "{:.2f}"),
                       ("first_step_cold_train_cpu_s", "of which nn train's", "{:.2f}"),
                       ("first_step_warm_s", "first step, warm cache s", "{:.2f}"),
                       ("first_step_warm_cpu_s", "its CPU s", "{:.2f}"),
                       ("compile_s", "compile s", "{:.2f}"),
                       ("peak_rss_mib", f"peak RSS MiB ({args.epochs} epochs)", "{:.0f}"),
                       ("peak_vs_numpy", "x numpy", "{:.2f}")]))
    write_json(args.json, {"epochs": args.epochs, "rows": rows})


if __name__ == "__main__":
    main()
