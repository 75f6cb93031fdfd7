"""Local file helpers for datasets: where the cache lives and how it is written safely."""

import os
import secrets
from pathlib import Path

from nn.errors import InputError


def cache_root():
    """Return ``${XDG_CACHE_HOME:-~/.cache}/nn`` as a Path (not created)."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says a relative value is invalid and must be ignored.
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "nn"


def as_path(value, argument):
    """Return `value` (str or os.PathLike) as an expanded Path; InputError names `argument` otherwise."""
    if not isinstance(value, (str, os.PathLike)):
        raise InputError(f"{argument}: expected a str or os.PathLike folder, got {type(value).__name__}")
    if os.fspath(value) == "":
        raise InputError(f"{argument}: expected a folder, got an empty string")
    return Path(value).expanduser()


def atomic_write(path, data):
    """Write `data` (bytes) to `path` so that readers see the old file or the whole new one.

    The bytes go to a temporary file in the same folder (so os.replace is a
    rename on one file system), are fsynced, then renamed over `path`. On any
    failure, KeyboardInterrupt included, the temporary file is removed and
    `path` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path.parent, ".part")
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.part"
    # Not mkstemp: its mode 0600 would survive the rename; 0666 lets the umask decide.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass  # Already gone or never created; the original error matters more.
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder):
    """Make the rename itself durable where the platform allows opening a folder."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # Windows cannot open folders; the rename is still atomic there.
    try:
        os.fsync(fd)
    except OSError:
        pass  # Some file systems refuse fsync on folders; durability is best effort.
    finally:
        os.close(fd)


def pid_alive(pid):
    """True when process `pid` exists (ours or another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process, or not a pid we can judge: keep its files
    return True


def remove_stale(folder, suffix="", prefix=""):
    """Remove entries of `folder` named prefix...<pid>.<hex>suffix whose process is gone.

    The temporary files and folders nn writes carry the writer's pid, so one
    left by a killed process (kill -9 leaves no chance to clean up) is
    removed the next time nn writes there, and a live writer's never is.
    """
    import shutil

    try:
        entries = os.listdir(folder)
    except OSError:
        return
    for name in entries:
        if not (name.startswith(prefix) and name.endswith(suffix)):
            continue
        parts = name[len(prefix):len(name) - len(suffix)].split(".") if suffix else name[len(prefix):].split("-")
        pid = next((int(p) for p in reversed(parts[:-1]) if p.isdigit()), None)
        if pid is None or pid == os.getpid() or pid_alive(pid):
            continue
        target = os.path.join(folder, name)
        if os.path.isdir(target):
            shutil.rmtree(target, ignore_errors=True)
        else:
            try:
                os.unlink(target)
            except OSError:
                pass
