"""Where `python -m nn train` reaches its peak memory: resident set per statement of nn.cli.train.run.

    python benchmarks/memory_stages.py --epochs 2 --json memory_stages.json

Runs one `nn train` in a child process with a thread that, every millisecond,
reads the resident set (VmRSS) and its high-water mark (VmHWM) from
/proc/self/status and notes which statement of `nn.cli.train.run` the main
thread is executing and the innermost nn function under it. When the
statement changes, the thread resets the high-water mark (writing 5 to
/proc/self/clear_refs), so each row shows the resident set when its statement
began and the kernel's exact high-water mark while it ran. A rise between two
samples is charged to the statement seen at the second, so a statement
shorter than a millisecond may hand its rise to the next one; the sampling
thread itself adds a few MiB. The last lines are the largest of those peaks
and the nn call stack when it was reached. Linux only (it reads /proc).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

from _common import ROOT, table, write_json

EPOCHS = 2

#: Runs `nn train` with the sampling thread; prints one JSON line of results.
CHILD = r"""
import json, os, sys, threading, time, traceback

NN = os.path.join(ROOT, "nn") + os.sep
RUN = os.path.join(ROOT, "nn", "cli", "train.py")
main_thread = threading.get_ident()
stages, order, state = {}, [], {"hwm": 0, "stack": [], "stop": False}


def status():
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def where():
    frame = sys._current_frames().get(main_thread)
    stack = [f for f in traceback.extract_stack(frame) if f.filename.startswith(NN)]
    top = next((f for f in stack if f.filename == RUN and f.name == "run"), None)
    if top is None:
        return None, stack
    inner = stack[-1]
    return (top.lineno, top.line.strip(), f"{os.path.relpath(inner.filename, ROOT)}:{inner.name}"), stack


def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def sample():
    current = None
    while not state["stop"]:
        rss, hwm = status()
        key, stack = where()
        line = None if key is None else key[:2]
        if line != current:  # a new statement: its own high-water mark from here
            reset_peak()
            current = line
            if line is not None:
                stages.setdefault(line, {"line": line[0], "statement": line[1], "rss_at_start": rss,
                                         "peak": rss, "peak_in": key[2]})
                order.append(line) if line not in order else None
        elif line is not None and hwm > stages[line]["peak"]:
            stages[line]["peak"], stages[line]["peak_in"] = hwm, key[2]
        if line is not None and hwm > state["hwm"]:
            state["hwm"] = hwm
            state["stack"] = [f"{os.path.relpath(f.filename, ROOT)}:{f.lineno} {f.name}" for f in stack]
        time.sleep(0.001)


threading.Thread(target=sample, daemon=True).start()
from nn.cli import main

code = main(sys.argv[1:])
state["stop"] = True
print("STAGES", json.dumps({"code": code, "stages": [stages[k] for k in order], "peak_stack": state["stack"],
                            "peak_mib": state["hwm"]}), flush=True)
"""


def measure(epochs, backend, out):
    """Run one `nn train` under the sampler; return its parsed results."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    args = ["train", "--epochs", str(epochs), "--out", out] + (["--backend", backend] if backend else [])
    done = subprocess.run([sys.executable, "-c", f"ROOT = {ROOT!r}\n" + CHILD, *args], capture_output=True,
                          text=True, env=env, cwd=ROOT)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("STAGES ")), None)
    if done.returncode or line is None:
        raise RuntimeError(f"nn train failed: {done.stderr.strip()[-500:]}")
    return json.loads(line[len("STAGES "):])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--backend", default=None, help="numba or numpy (default: nn's default)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if not os.path.exists("/proc/self/status"):
        sys.exit("memory_stages.py reads /proc/self/status, which only Linux has")
    with tempfile.TemporaryDirectory() as out:
        result = measure(args.epochs, args.backend, out)
    rows = [dict(row, statement=row["statement"][:60]) for row in result["stages"]]
    print(table(rows, [("line", "train.py line", "{}"), ("rss_at_start", "RSS at start MiB", "{:.0f}"),
                       ("peak", "peak MiB", "{:.0f}"), ("peak_in", "innermost nn function at the peak", "{}"),
                       ("statement", "statement", "{}")]))
    print(f"\npeak RSS: {result['peak_mib']:.0f} MiB ({args.epochs} epochs); the nn call stack there:\n  "
          + "\n  ".join(result["peak_stack"]))
    write_json(args.json, {"epochs": args.epochs, "backend": args.backend, **result})


if __name__ == "__main__":
    main()
