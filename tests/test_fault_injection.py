"""kill -9 at many moments: `nn train --backup-dir` resumes bit-identical; --out is complete or absent.

Each chain starts `nn train`, kills it with SIGKILL at a moment chosen by
what it has printed (during start-up, inside an epoch, right at an epoch's
end while the backup is written, during the final writes) plus a delay,
runs the same command again, kills that too, and so on; the last run of
each chain completes. After every kill the output folder must be absent or
complete (its manifest verified), and every completed run must equal the
uninterrupted one: the same weights, History and test accuracy, bit for bit.
"""

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from nn.runfolder import verify

pytestmark = [pytest.mark.slow, pytest.mark.data]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARGS = ["--epochs", "2", "--examples", "2000", "--seed", "5"]

#: (engine, [(marker printed, delay in seconds), ...]): one chain of kills, in order.
#: "50/50" is an epoch's last line, printed just before its backup is written;
#: "Test accuracy" comes just before the outputs are written, "Wrote" just after
#: the run folder is renamed into place (the backup is removed after it).
CHAINS = [
    ("fused", [("", 0.25), ("Epoch 1/2", 0.05), ("50/50", 0.0), ("Test accuracy", 0.0)]),
    ("layers", [("Epoch 1/2", 0.1), ("Epoch 2/2", 0.0), ("50/50", 0.002), ("Wrote", 0.0)]),
    ("fused", [("Epoch 2/2", 0.02), ("Test accuracy", 0.03), ("Test accuracy", 0.12),
               ("Wrote", 0.0)]),
]


def command(out, backup, engine):
    return [sys.executable, "-m", "nn", "train", *ARGS, "--engine", engine, "--out", str(out),
            "--backup-dir", str(backup)]


def run_and_kill(cmd, marker, delay):
    """Run cmd; SIGKILL it `delay` s after it prints a line containing `marker`. Returns (rc, stdout)."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout] + [lines.put(None)],
                     daemon=True).start()
    seen = []
    while True:
        if marker == "":
            break
        line = lines.get(timeout=120)
        if line is None:
            break
        seen.append(line)
        if marker in line:
            break
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    rc = proc.wait(timeout=120)
    return rc, "".join(seen)


def outputs(out):
    with np.load(out / "model.npz") as data:
        weights = {k: data[k] for k in data.files if k != "config"}
    history = json.loads((out / "history.json").read_text())
    return weights, history, json.loads((out / "metrics.json").read_text())["test_accuracy"]


def assert_same(got, want):
    assert got[1] == want[1] and got[2] == want[2]
    assert sorted(got[0]) == sorted(want[0])
    for key in want[0]:
        np.testing.assert_array_equal(got[0][key], want[0][key])


def test_kill_9_anywhere_then_resume_ends_bit_identical(tmp_path, record_property):
    reference = {}  # the subprocesses find real MNIST as nn train does (NN_DATA_DIR, the cache, ...)
    for engine in ("fused", "layers"):
        out = tmp_path / f"reference-{engine}"
        done = subprocess.run(command(out, tmp_path / f"ref-backup-{engine}", engine), cwd=ROOT,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert verify(out) == []
        reference[engine] = outputs(out)
    kills = complete = absent = resumed = 0
    for number, (engine, moments) in enumerate(CHAINS):
        out, backup = tmp_path / f"chain-{number}" / "out", tmp_path / f"chain-{number}" / "backup"
        cmd = command(out, backup, engine)
        for marker, delay in moments:
            rc, _ = run_and_kill(cmd, marker, delay)
            if rc == -signal.SIGKILL:
                kills += 1
            if out.exists():  # complete (manifest verified) or absent, never torn
                assert verify(out) == [], (marker, delay)
                complete += 1
            else:
                absent += 1
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        resumed += "Resumed from the backup" in done.stdout
        assert verify(out) == []
        assert_same(outputs(out), reference[engine])
        leftovers = [p.name for p in out.parent.iterdir() if p.name not in ("out", "backup")]
        assert leftovers == []  # no temporary folder, no lock file
        assert not (backup / "backup.npz").exists()
    record_property("kills", kills)
    record_property("folders_complete_after_kill", complete)
    record_property("folders_absent_after_kill", absent)
    print(f"\nfault injection: {kills} kills, {len(CHAINS)} completed runs bit-identical "
          f"({resumed} resumed from a backup); after the kills {complete} folders complete, "
          f"{absent} absent, 0 torn")
    assert kills >= 10
