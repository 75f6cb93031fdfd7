"""nn.runfolder and `nn train --out`: a run folder is all or nothing, and a busy one is refused."""

import errno
import json
import os
import subprocess
import sys

import pytest

from nn.errors import InputError
from nn.runfolder import RunFolder, verify

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_two(folder):
    folder.write_json("a.json", {"x": 1})
    with folder.file("b.bin") as path, open(path, "wb") as f:
        f.write(b"\0" * 1000)


def test_commit_renames_a_complete_folder_with_a_manifest(tmp_path):
    out = tmp_path / "runs" / "one"  # its parent does not exist yet
    with RunFolder(out, ["nn", "train"]) as folder:
        write_two(folder)
        assert not out.exists() and os.path.dirname(folder.path) == str(out.parent)
        folder.commit()
    assert sorted(p.name for p in out.iterdir()) == ["a.json", "b.bin", "manifest.json"]
    assert verify(out) == []
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"] == ["nn", "train"] and manifest["finished"].endswith("+00:00")
    assert [f["name"] for f in manifest["files"]] == ["a.json", "b.bin"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["one"]  # no lock, no temporary folder
    (out / "b.bin").write_bytes(b"torn")
    (out / "extra").write_text("")
    assert verify(out) == [f"{out / 'b.bin'} does not match its SHA-256 in the manifest",
                           f"{out / 'extra'} is not in the manifest"]


def test_a_failure_leaves_nothing_and_an_older_run_untouched(tmp_path):
    out = tmp_path / "run"
    with RunFolder(out, ["first"]) as folder:
        write_two(folder)
        folder.commit()
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(RuntimeError), RunFolder(out, ["second"]) as folder:
        write_two(folder)
        raise RuntimeError("the run failed")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    with pytest.raises(RuntimeError), RunFolder(tmp_path / "new" / "deeper", ["third"]):
        raise RuntimeError("before any output")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # the parents it made are gone


def test_a_second_commit_replaces_the_older_run_whole(tmp_path):
    out = tmp_path / "run"
    for text in ("old", "new"):
        with RunFolder(out, [text]) as folder:
            folder.write_json(f"{text}.json", text)
            folder.commit()
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "new.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_second_run_into_the_same_out_is_refused_while_the_first_runs(tmp_path):
    out = tmp_path / "run"
    with RunFolder(out, ["first"]) as folder:
        with pytest.raises(InputError, match="is in use by another run"):
            with RunFolder(out, ["second"]):
                pass
        folder.write_json("a.json", 1)
        folder.commit()
    assert verify(out) == []


def test_a_stale_temporary_folder_of_a_killed_run_is_removed(tmp_path):
    stale = tmp_path / ".run.tmp-99999"
    stale.mkdir()
    (stale / "model.npz").write_bytes(b"half")
    with RunFolder(tmp_path / "run", ["again"]) as folder:
        folder.write_json("a.json", 1)
        folder.commit()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES], ids=["disk-full", "unwritable"])
def test_a_failed_write_is_one_line_naming_the_file_and_leaves_nothing(code, tmp_path, monkeypatch):
    import builtins

    real_open = builtins.open

    def failing_open(path, mode="r", *args, **kwargs):
        if "w" in mode and str(path).endswith("b.bin"):
            raise OSError(code, os.strerror(code), str(path))
        return real_open(path, mode, *args, **kwargs)

    out = tmp_path / "run"
    monkeypatch.setattr(builtins, "open", failing_open)
    with pytest.raises(InputError) as info, RunFolder(out, ["x"]) as folder:
        write_two(folder)
    assert str(info.value) == f"cannot write {out / 'b.bin'}: {os.strerror(code)}"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("out, message", [
    ("", "--out must be a folder path"),
    ("   ", "--out must be a folder path"),
    ("/", "names no folder"),
], ids=["empty", "blank", "root"])
def test_run_folder_refuses_what_cannot_be_a_folder(out, message):
    with pytest.raises(InputError, match=message):
        RunFolder(out, ["x"])


def nn_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "nn", *args], capture_output=True, text=True,
                          cwd=ROOT, env=dict(os.environ, **(env or {})), timeout=300)


@pytest.mark.parametrize("args, message", [
    (["train", "--out", ""], "--out must be a folder path"),
    (["train", "--out", "/proc/x"], "--out /proc/x cannot be written"),
    (["train", "--out", "/proc/x/y"], "--out /proc/x/y cannot be created"),
    (["train", "--out", "/dev/null"], "exists and is not a directory"),
    (["train", "--backup-dir", ""], "--backup-dir must be a folder path"),
    (["train", "--backup-dir", "/dev/null"], "--backup-dir /dev/null exists and is not a folder"),
    (["gradcheck", "--json", "/dev/full"], "--json /dev/full is not a regular file"),
    (["gradcheck", "--json", ""], "--json must be a file path"),
], ids=["out-empty", "out-proc", "out-proc-deeper", "out-file", "backup-empty", "backup-file",
        "json-dev-full", "json-empty"])
def test_cli_refuses_bad_outputs_before_any_work(args, message, tmp_path):
    # NN_DATA_DIR points nowhere: had the command started work, it would fail on the data.
    result = nn_cli(*args, env={"NN_DATA_DIR": str(tmp_path / "no-data")})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr and list(tmp_path.iterdir()) == []
