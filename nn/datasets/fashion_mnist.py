"""Fashion-MNIST exactly as ``keras.datasets.fashion_mnist.load_data()`` returns it.

Zalando's 28x28 grayscale pictures of ten kinds of clothing, in MNIST's four
IDX files under MNIST's file names, so the seed network trains on it unchanged.
Sources, in order: a folder (`path`, else ``$NN_FASHION_MNIST_DIR``), which
when given is the only source; the cache
``${XDG_CACHE_HOME:-~/.cache}/nn/fashion-mnist``; the mirror Keras downloads
from, then Zalando's own; the files of the Debian package dataset-fashion-mnist
(for networks that reach only package registries: ``apt-get install
dataset-fashion-mnist``). Every file is checked against the SHA-256 of its
uncompressed IDX bytes before it is used or cached, whatever its source.

The environment variable is not MNIST's NN_DATA_DIR: both data sets use the
same four file names, and one folder cannot hold both.
"""

import shutil
import subprocess
import sys
from functools import partial
from pathlib import Path

from nn.datasets import _idxset, mnist
from nn.errors import DataError

TITLE = "Fashion-MNIST"
ENV_VAR = "NN_FASHION_MNIST_DIR"
CACHE_NAME = "fashion-mnist"

# Zalando made Fashion-MNIST a drop-in replacement: MNIST's file names and shapes.
FILES, SHAPES = mnist.FILES, dict(mnist.SHAPES)
TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS = FILES
# SHA-256 of the uncompressed IDX files. Computed from the Debian package's
# files, and the same figures are published by independent loaders of Zalando's
# originals; the .gz files themselves differ by source (Debian recompressed them).
SHA256 = {
    TRAIN_IMAGES: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    TRAIN_LABELS: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    TEST_IMAGES: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    TEST_LABELS: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
# Label i names class i, as in Keras's documentation of load_data.
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

NPZ_NAME, NPZ_KEYS = None, {}  # Keras ships Fashion-MNIST only as the four .gz files
MIRRORS = ("https://storage.googleapis.com/tensorflow/tf-keras-datasets/",  # Keras's
           "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/")  # Zalando's
DEBIAN_PACKAGE = "dataset-fashion-mnist"
DEBIAN_FOLDER = Path("/usr/share/datasets/fashion-mnist")  # where the package puts them today
HINT = f" Or, on Debian or Ubuntu: apt-get install {DEBIAN_PACKAGE}."


def load_data(path=None, *, cache_dir=None, verbose=True):
    """Return ((x_train, y_train), (x_test, y_test)) as C-contiguous uint8 arrays.

    Shapes (60000, 28, 28), (60000,), (10000, 28, 28), (10000,), as Keras;
    labels 0-9 index CLASS_NAMES. `path` is a folder with the four IDX files
    (raw or .gz); when given it is the only source, and so is
    ``$NN_FASHION_MNIST_DIR`` when set and `path` is not. `cache_dir` replaces
    the default cache folder. Progress goes to stderr when `verbose`. Raises
    DataError naming the file and what was expected when a named folder does
    not verify, or listing every source tried when none works.
    """
    arrays, where = locate(path, cache_dir=cache_dir, verbose=verbose)
    _idxset.log(verbose, f"Fashion-MNIST loaded from {where}")
    return arrays


def locate(path=None, *, cache_dir=None, verbose=False):
    """Like `load_data`, but return (arrays, a one-line description of where the data came from)."""
    return _idxset.locate(_spec(), path, cache_dir=cache_dir, verbose=verbose)


def remote_sources(verbose):
    """Yield (label, fetch(need, accept)) for each source after the cache, in the order they are tried."""
    spec = _spec()
    for base in MIRRORS:
        yield f"download {base}", partial(_idxset.fetch_mirror, spec, base, verbose=verbose)
    yield f"Debian package {DEBIAN_PACKAGE}", _fetch_debian


def debian_folder():
    """Return the folder where the installed Debian package keeps the four .gz files.

    Asks dpkg (the package may move them in a later version); without dpkg,
    the folder the package uses today.
    """
    dpkg = shutil.which("dpkg")
    if dpkg is None:
        return DEBIAN_FOLDER
    try:
        result = subprocess.run([dpkg, "-L", DEBIAN_PACKAGE], capture_output=True, text=True,
                                stdin=subprocess.DEVNULL, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise DataError(f"cannot run dpkg -L {DEBIAN_PACKAGE} ({e})") from e
    if result.returncode != 0:
        raise DataError(f"not installed (apt-get install {DEBIAN_PACKAGE})")
    for line in result.stdout.splitlines():
        if line.strip().endswith(f"/{TRAIN_IMAGES}.gz"):
            return Path(line.strip()).parent
    raise DataError(f"dpkg -L {DEBIAN_PACKAGE} lists no {TRAIN_IMAGES}.gz")


def _fetch_debian(need, accept):
    _idxset.fetch_installed(_spec(), debian_folder(), need, accept)


def _spec():
    """This module, which describes Fashion-MNIST to _idxset (read at call time, so tests can shrink it)."""
    return sys.modules[__name__]
