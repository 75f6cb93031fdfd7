"""Four IDX files laid out as MNIST, found and verified: what mnist.py and fashion_mnist.py share.

A data set is described by its module (the `spec`), read at call time so that
tests can shrink it: TITLE, ENV_VAR, CACHE_NAME, FILES (train images, train
labels, test images, test labels), SHAPES and SHA256 (of the uncompressed IDX
bytes) per file, NPZ_NAME (a Keras .npz a folder may hold instead, or None),
NPZ_KEYS, HINT (how else to place the files by hand) and
remote_sources(verbose), which yields (label, fetch(need, accept)) in order.

Sources, in order: the folder given as `path`, else the folder in the spec's
environment variable (either is then the only source: a folder the user named
that does not verify is an error, never a fallback); the cache; the remote
sources, each file verified before it is used or cached. A large .gz file
in a folder is decompressed once: its decoded copy goes into the cache's
decoded/ subfolder, named by the SHA-256 of the compressed bytes, and is used
later only if its own SHA-256 is the data set's (`read_verified`).
"""

import hashlib
import io
import os
import sys
import zipfile

import numpy as np

from nn.datasets import _download, _files, idx
from nn.errors import DataError


def locate(spec, path=None, *, cache_dir=None, verbose=False):
    """Return (((x_train, y_train), (x_test, y_test)), a one-line description of where they came from)."""
    if path is not None:
        folder = _files.as_path(path, "path")
        try:
            return pack(spec, from_folder(spec, folder, cache_dir)), f"{folder} (given as path)"
        except DataError as e:
            raise DataError(f"{spec.TITLE}: path={folder} is unusable: {e}") from e
    env = os.environ.get(spec.ENV_VAR, "")
    if env:
        # A folder the user named is the only source: falling back to the cache
        # would train on other data than the user asked for and still exit 0.
        folder = _files.as_path(env, spec.ENV_VAR)
        try:
            return pack(spec, from_folder(spec, folder, cache_dir)), f"{folder} (from {spec.ENV_VAR})"
        except DataError as e:
            raise DataError(f"{spec.TITLE}: {spec.ENV_VAR}={env} is unusable: {e}") from e
    failures = [f"{spec.ENV_VAR}: not set"]
    return _through_cache(spec, cache_folder(spec, cache_dir), failures, verbose)


def cache_folder(spec, cache_dir=None):
    """The data set's cache folder: `cache_dir` if given, else the default under nn's cache root."""
    return _files.as_path(cache_dir, "cache_dir") if cache_dir is not None else _files.cache_root() / spec.CACHE_NAME


def pack(spec, arrays):
    """Arrange {file name: array} as Keras's ((x_train, y_train), (x_test, y_test))."""
    train_images, train_labels, test_images, test_labels = (arrays[name] for name in spec.FILES)
    return (train_images, train_labels), (test_images, test_labels)


def log(verbose, message):
    if verbose:
        print(message, file=sys.stderr)


def verified(spec, name, data, label, copy=True):
    """Return the array in IDX bytes `data` of file `name` if its header and SHA-256 are right.

    `label` says where the bytes came from (a path, URL or archive member) and
    starts every error message. copy=False: the array may be a view of
    `data` (see idx.decode), which the caller then no longer uses.
    """
    array = idx.decode(data, spec.SHAPES[name], label, copy=copy)
    digest = hashlib.sha256(data).hexdigest()
    if digest != spec.SHA256[name]:
        known = _known_files().get(digest)
        what = f"; these are the bytes of {known}, not {spec.TITLE}'s" if known else ""
        raise DataError(f"{label}: checksum mismatch for {name} (SHA-256 {digest}, "
                        f"expected {spec.SHA256[name]}){what}")
    return array


def _known_files():
    """Return {SHA-256: "<data set>'s <file>"} for every data set nn knows, to name a wrong file."""
    from nn.datasets import fashion_mnist, mnist

    return {digest: f"{spec.TITLE}'s {name}" for spec in (mnist, fashion_mnist)
            for name, digest in spec.SHA256.items()}


# ---------------------------------------------------------------- folders


def from_folder(spec, folder, cache_dir=None):
    """Return {name: array} from the IDX files (raw or .gz), or the spec's .npz, in `folder`.

    A large .gz file is decompressed once and its decoded copy kept in the
    cache (`decoded_copy`); cache_dir as for `locate`.
    """
    if spec.NPZ_NAME and folder.is_file() and folder.suffix == ".npz":
        return _verified_npz(spec, read_file(folder), str(folder))
    if not folder.exists():
        raise DataError(f"{folder} does not exist")
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder")
    found = {name: find(folder, name) for name in spec.FILES}
    npz = folder / spec.NPZ_NAME if spec.NPZ_NAME else None
    problems = []
    if all(found.values()):
        try:
            return {name: read_verified(spec, name, p, cache_dir) for name, p in found.items()}
        except DataError as e:
            problems.append(str(e))
    if npz is not None and npz.is_file():
        try:
            return _verified_npz(spec, read_file(npz), str(npz))
        except DataError as e:
            problems.append(str(e))
    if not problems:
        missing = ", ".join(name for name, p in found.items() if p is None)
        npz_words = f"has no {spec.NPZ_NAME} and " if spec.NPZ_NAME else ""
        problems.append(f"{folder} {npz_words}lacks {missing} (raw or .gz)")
    raise DataError("; ".join(problems))


#: A .gz file that decompresses to at least this many bytes is decoded once, into the cache.
DECODED_MIN_BYTES = 1 << 20
DECODED = "decoded"  # the cache's subfolder of decoded copies, each named by its .gz's SHA-256


def read_verified(spec, name, path, cache_dir=None):
    """The verified array of IDX file `name` at `path` (raw or gzip).

    A gzip file's decoded copy is kept in the cache, named by the SHA-256 of
    the compressed bytes, and used instead of decompressing them again only
    if its own SHA-256 is the data set's for `name`: the same check as for
    the file itself, so a stale or damaged copy is never used (it is decoded
    again and replaced). Errors name `path`.
    """
    limit = idx.expected_size(spec.SHAPES[name])
    try:
        with open(path, "rb") as f:
            head = f.read(2)
            compressed = head + f.read() if head == idx.GZIP_MAGIC else None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from e
    if compressed is None:
        return verified(spec, name, idx.read_array(path, limit), str(path), copy=False)
    copy = decoded_copy(spec, cache_dir, compressed)
    if copy is not None and copy.is_file():
        try:
            return verified(spec, name, idx.read_array(copy, limit), str(copy), copy=False)
        except DataError:
            pass  # damaged or not this file's: decode the .gz again below, and replace it
    data = idx.read_array(io.BytesIO(compressed), limit, str(path))
    array = verified(spec, name, data, str(path), copy=False)
    if copy is not None and len(data) >= DECODED_MIN_BYTES:
        try:
            _files.atomic_write(copy, data)
        except OSError:
            pass  # a read-only cache costs the next run a decompression, nothing more
    return array


def decoded_copy(spec, cache_dir, compressed):
    """Where the decoded copy of gzip bytes `compressed` lives in the cache (None: no cache folder)."""
    try:
        folder = cache_folder(spec, cache_dir) / DECODED
    except (RuntimeError, KeyError):  # no home folder to put the default cache in
        return None
    return folder / hashlib.sha256(compressed).hexdigest()


def find(folder, name):
    """Return the path of IDX file `name` in `folder`, raw preferred over .gz, or None."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_file(path):
    try:
        return path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from e


def npz_to_idx(spec, data, origin):
    """Return {name: canonical IDX bytes} rebuilt from the arrays of Keras .npz bytes.

    Rebuilding the IDX bytes lets one checksum table cover every source.
    """
    try:
        npz = np.load(io.BytesIO(data), allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):  # np.load reads .npy bytes as one array
            raise DataError(f"{origin}: not a readable .npz (it holds a single .npy array)")
        with npz:
            missing = sorted(set(spec.NPZ_KEYS) - set(npz.files))
            if missing:
                raise DataError(f"{origin}: no array {', '.join(missing)}")
            arrays = {key: npz[key] for key in spec.NPZ_KEYS}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{origin}: not a readable .npz ({type(e).__name__}: {e})") from e
    for key, array in arrays.items():
        if array.dtype != np.uint8 or array.ndim == 0:
            expected = spec.SHAPES[spec.NPZ_KEYS[key]]
            raise DataError(f"{origin}: {key} is {array.dtype} {array.shape}, expected uint8 {expected}")
    return {spec.NPZ_KEYS[key]: idx.encode(array) for key, array in arrays.items()}


def _verified_npz(spec, data, origin):
    """Return {name: array} from .npz bytes, each checked like an IDX file."""
    return {name: verified(spec, name, raw, f"{origin} [{name}]")
            for name, raw in npz_to_idx(spec, data, origin).items()}


# ---------------------------------------------------------------- cache and remote sources


def _through_cache(spec, cache, failures, verbose):
    """Load from the cache folder, filling what it lacks from the remote sources in order."""
    arrays, problems = _from_cache(spec, cache)
    if len(arrays) == len(spec.FILES):
        return pack(spec, arrays), f"cache {cache}"
    failures.append(f"cache {cache}: {'; '.join(problems)}")
    contributors, cache_errors = [], []

    def accept(name, data, label):
        arrays[name] = verified(spec, name, data, label)  # before caching: never cache bad bytes
        try:
            _files.atomic_write(cache / name, data)
        except OSError as e:
            cache_errors.append(f"{cache / name}: {e.strerror or e}")

    for label, fetch in spec.remote_sources(verbose):
        before = len(arrays)
        try:
            fetch([name for name in spec.FILES if name not in arrays], accept)
        except DataError as e:
            failures.append(f"{label}: {e}")
            log(verbose, f"{spec.TITLE}: {label} failed: {e}")
        if len(arrays) > before:
            contributors.append(label)
        if len(arrays) == len(spec.FILES):
            break
    else:
        raise DataError(_failure_message(spec, failures, cache))
    if cache_errors:
        log(verbose, f"{spec.TITLE}: could not write the cache: {'; '.join(cache_errors)}")
        return pack(spec, arrays), f"{', '.join(contributors)} (not cached: {cache_errors[0]})"
    return pack(spec, arrays), f"cache {cache} (fetched via {', '.join(contributors)})"


def _from_cache(spec, cache):
    """Return ({name: array} of the good files in the cache, [why the others are not usable])."""
    arrays, missing, problems = {}, [], []
    for name in spec.FILES:
        path = cache / name
        if not path.is_file():
            missing.append(name)
            continue
        try:
            arrays[name] = verified(spec, name, idx.read_array(path, idx.expected_size(spec.SHAPES[name])),
                                    str(path), copy=False)
        except DataError as e:
            problems.append(f"{e} (not used; fetching it again)")
    if len(missing) == len(spec.FILES):
        return arrays, [f"no {spec.TITLE} files yet"]
    return arrays, ([f"lacks {', '.join(missing)}"] if missing else []) + problems


def get(spec, url, verbose):
    log(verbose, f"{spec.TITLE}: downloading {url}")
    return _download.fetch_url(url, verbose)


def fetch_mirror(spec, base, need, accept, verbose):
    """Fetch the needed .gz files one by one from a mirror that serves NAME.gz under `base`."""
    for name in need:
        url = f"{base}{name}.gz"
        try:
            data = get(spec, url, verbose)
        except DataError as e:
            # Stop at the first failure: a dead mirror should cost one timeout, not four.
            raise DataError(f"{name}.gz: {e}") from e
        accept(name, idx.read_bytes(io.BytesIO(data), idx.expected_size(spec.SHAPES[name]), url), url)


def fetch_installed(spec, folder, need, accept):
    """Read the needed IDX files (raw or .gz) from a folder a system package installed."""
    if not folder.is_dir():
        raise DataError(f"{folder} does not exist")
    offers = []
    for name in need:
        path = find(folder, name)
        if path is None:
            raise DataError(f"{folder} lacks {name} (raw or .gz)")
        offers.append((name, idx.read_bytes(path, idx.expected_size(spec.SHAPES[name])), str(path)))
    accept_all(offers, accept)


def accept_all(offers, accept):
    """Call accept(name, data, label) for every offer, so one bad file does not waste the good ones."""
    errors = []
    for name, data, label in offers:
        try:
            accept(name, data, label)
        except DataError as e:
            errors.append(str(e))
    if errors:
        raise DataError("; ".join(errors))


def _failure_message(spec, failures, cache):
    """Return the one error that lists why every source failed and how to place the files by hand."""
    lines = "\n".join(f"  - {line}" for line in failures)
    npz = f", or Keras's {spec.NPZ_NAME}," if spec.NPZ_NAME else ""
    return (
        f"{spec.TITLE} could not be loaded; every source failed:\n{lines}\n"
        f"To place it by hand: put the four IDX files {', '.join(spec.FILES)} (raw or .gz){npz} "
        f"in a folder and set {spec.ENV_VAR} to it (or pass it as path=); "
        f"or put the four raw IDX files in {cache}.{spec.HINT}"
    )
