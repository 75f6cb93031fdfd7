"""Teaching path: a command's output folder, written all or nothing.

`RunFolder(out, command)` is opened before any work: it refuses an --out
that cannot hold a folder, takes a lock beside it (a second run into the
same --out is refused while the first holds it) and creates a temporary
folder beside it, `.<name>.tmp-<pid>`, which is where every writer writes
(`run.path`, or `run.file(name)` for one file). `commit()` flushes every
file to disk, writes `manifest.json` (each file's name, size and SHA-256,
the command, the finishing time) and renames the folder into place, so
--out is either absent, the previous complete run, or the new complete
run; a failure or an exception removes the temporary folder (and any
parent folder it created), and a kill -9 leaves only a stale temporary
folder, which the next run into the same --out removes. `verify(out)`
checks a folder against its manifest.
"""

import contextlib
import datetime
import errno
import fcntl
import hashlib
import json
import os
import shutil

from nn.errors import InputError

MANIFEST = "manifest.json"


def sha256_file(path):
    """SHA-256 of a file's bytes, as hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fsync(path, directory=False):
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _why(exc):
    return exc.strerror or str(exc)


class RunFolder:
    """The temporary folder a run writes into, renamed to `out` by commit(); a context manager."""

    def __init__(self, out, command, option="--out"):
        if not isinstance(out, (str, os.PathLike)) or not os.fspath(out).strip():
            raise InputError(f"{option} must be a folder path; got {out!r}")
        self.option, self.command = option, command
        self.out = os.path.abspath(os.fspath(out))
        self.given = os.fspath(out)
        self.parent, self.name = os.path.split(self.out)
        if not self.name:
            raise InputError(f"{option} {self.given} names no folder (it is a filesystem root)")
        if os.path.exists(self.out) and not os.path.isdir(self.out):
            raise InputError(f"{option} {self.given} exists and is not a directory; give a folder "
                             f"for the results")
        self.path = None
        self._lock = self._created = None

    # ---------------------------------------------------------------- open
    def __enter__(self):
        self._created = self._make_parents()
        try:
            self._take_lock()
            self._remove_stale()
            self.path = os.path.join(self.parent, f".{self.name}.tmp-{os.getpid()}")
            os.mkdir(self.path)
        except OSError as exc:
            self._close()
            raise InputError(f"{self.option} {self.given} cannot be written ({_why(exc)})") from None
        except BaseException:
            self._close()
            raise
        return self

    def _make_parents(self):
        """Create the missing parent folders; return them (deepest first) to remove on failure."""
        missing, folder = [], self.parent
        while not os.path.exists(folder):
            missing.append(folder)
            folder = os.path.dirname(folder)
        if not os.path.isdir(folder):
            raise InputError(f"{self.option} {self.given} cannot be created: {folder} is not a directory")
        for made in reversed(missing):
            try:
                os.mkdir(made)
            except OSError as exc:
                self._remove_parents(missing)
                raise InputError(f"{self.option} {self.given} cannot be created ({_why(exc)} "
                                 f"for {made})") from None
        return missing

    def _take_lock(self):
        """flock a lock file beside --out; removed on close, so re-check it is still the file."""
        lock_path = os.path.join(self.parent, f".{self.name}.lock")
        for _ in range(5):
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    raise InputError(f"{self.option} {self.given} is in use by another run (it "
                                     f"holds {lock_path}); wait for it or give another "
                                     f"{self.option}") from None
                raise
            try:
                if os.stat(lock_path).st_ino == os.fstat(fd).st_ino:
                    self._lock = (fd, lock_path)
                    return
            except FileNotFoundError:
                pass
            os.close(fd)  # the holder removed it between our open and flock: take the new one
        raise InputError(f"{self.option} {self.given}: cannot take the lock {lock_path}")

    def _remove_stale(self):
        """Temporary folders of earlier runs that were killed (we hold the lock: none is live)."""
        for entry in os.listdir(self.parent):
            if entry.startswith((f".{self.name}.tmp-", f".{self.name}.old-")):
                shutil.rmtree(os.path.join(self.parent, entry), ignore_errors=True)

    # --------------------------------------------------------------- write
    @contextlib.contextmanager
    def file(self, name):
        """Yield the temporary path of output `name`; an OSError becomes one line naming --out/name."""
        try:
            yield os.path.join(self.path, name)
        except OSError as exc:
            failed = os.fspath(exc.filename) if isinstance(exc.filename, (str, os.PathLike)) else ""
            if os.path.dirname(os.path.abspath(failed)) == self.path:  # the very file, if known
                name = os.path.basename(failed)
            raise InputError(f"cannot write {os.path.join(self.given, name)}: {_why(exc)}") from None
        except InputError as exc:  # a writer's own message: name the file as the user knows it
            raise InputError(str(exc).replace(os.path.join(self.path, name),
                                              os.path.join(self.given, name))) from None

    def write_json(self, name, obj):
        """Write obj as strict JSON (no NaN) to output `name`."""
        text = json.dumps(obj, indent=1, allow_nan=False)
        with self.file(name) as path, open(path, "w") as f:
            f.write(text + "\n")

    def commit(self):
        """Flush, write the manifest, rename the folder into place (replacing an older run)."""
        files = sorted(n for n in os.listdir(self.path) if n != MANIFEST)
        entries = []
        for name in files:
            with self.file(name) as path:
                _fsync(path)
                entries.append({"name": name, "bytes": os.path.getsize(path), "sha256": sha256_file(path)})
        finished = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        self.write_json(MANIFEST, {"files": entries, "command": self.command, "finished": finished})
        with self.file(MANIFEST) as path:
            _fsync(path)
            _fsync(self.path, directory=True)
            old = None
            if os.path.exists(self.out):
                old = os.path.join(self.parent, f".{self.name}.old-{os.getpid()}")
                os.rename(self.out, old)
            os.rename(self.path, self.out)
            _fsync(self.parent, directory=True)
        self.path = None
        if old:
            shutil.rmtree(old, ignore_errors=True)

    # ---------------------------------------------------------------- close
    def __exit__(self, kind, exc, tb):
        self._close()
        return False

    def _close(self):
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path = None
        if self._lock is not None:
            fd, lock_path = self._lock
            with contextlib.suppress(OSError):
                os.unlink(lock_path)
            os.close(fd)
            self._lock = None
        if self._created and not os.path.exists(self.out):
            self._remove_parents(self._created)
        self._created = None

    @staticmethod
    def _remove_parents(folders):
        for folder in folders:  # deepest first; only while empty
            with contextlib.suppress(OSError):
                os.rmdir(folder)


def verify(out):
    """Problems of a run folder against its manifest, as sentences ([] when it is complete)."""
    path = os.path.join(out, MANIFEST)
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as exc:
        return [f"{path}: cannot read the manifest ({exc})"]
    problems, listed = [], {MANIFEST}
    for entry in manifest.get("files", []):
        name = entry["name"]
        listed.add(name)
        file = os.path.join(out, name)
        if not os.path.isfile(file):
            problems.append(f"{file} is missing")
        elif sha256_file(file) != entry["sha256"]:
            problems.append(f"{file} does not match its SHA-256 in the manifest")
    problems += [f"{os.path.join(out, n)} is not in the manifest" for n in sorted(set(os.listdir(out)) - listed)]
    return problems
