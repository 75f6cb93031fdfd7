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
