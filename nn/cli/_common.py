"""Shared by every command: checks that run before any work, argument types, the data."""

import argparse
import os

from nn import kernels
from nn.datasets import DATASETS as LOADERS
from nn.errors import InputError

EPILOG = "Every command exits 0 on success, 1 when a check fails, 2 on bad input or missing data."


def check_json(path):
    """Refuse --json unless a file can be written there (checked before the long run)."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise InputError(f"--json {path} is a directory; give a file name such as "
                         f"{os.path.join(path, 'gradcheck.json')}")
    if not path.strip():
        raise InputError(f"--json must be a file path; got {path!r}")
    if os.path.exists(path) and not os.path.isfile(path):  # /dev/full, a FIFO: writes fail or hang
        raise InputError(f"--json {path} is not a regular file; give a file name to write")
    if not os.path.isdir(folder):
        raise InputError(f"--json {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise InputError(f"--json {path} is not writable")


def check_backend(name):
    """Resolve the backend now, so a bad $NN_BACKEND is refused before the data loads."""
    try:
        kernels.get_backend(name)
    except InputError as exc:
        if name is None and os.environ.get("NN_BACKEND"):
            raise InputError(f"NN_BACKEND: {exc}") from None
        raise


DATASETS = tuple(LOADERS)  # mnist, fashion_mnist


def add_dataset_argument(parser, default="mnist", help_default="mnist"):
    """Add --dataset, which names a module of nn.datasets."""
    parser.add_argument("--dataset", choices=DATASETS, default=default,
                        help=f"mnist or fashion_mnist, as Keras has them (default: {help_default}); "
                             "--data-dir is then a folder of that data set's four IDX files")


def load_images(dataset, data_dir):
    """((x_train, y_train), (x_test, y_test)) of `dataset` as its loader returns them: uint8 images."""
    return LOADERS[dataset].load_data(path=data_dir)


def load_test_scaled(dataset, data_dir, dtype):
    """(x_test, y_test) of `dataset`, the images scaled to [0, 1] in `dtype` (the training set is not)."""
    from nn.recipe import scale_images

    _, (x_test, y_test) = load_images(dataset, data_dir)
    return scale_images(x_test, dtype), y_test


def _int_from(low, words):
    """An argparse type: an int >= low, described as `words` in the error."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"expected {words}, got {text!r}")
        return value
    return parse


positive_int = _int_from(1, "a positive integer")
seed = _int_from(0, "a non-negative integer")


def split(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value




def common_parser():
    """The options every command takes: --data-dir and --backend."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", default=None,
                        help="folder with the data set's four IDX files (or mnist.npz); default: "
                             "$NN_DATA_DIR for MNIST, $NN_FASHION_MNIST_DIR for Fashion-MNIST, "
                             "then the cache, then download")
    common.add_argument("--backend", choices=kernels.BACKENDS, default=None,
                        help="kernel backend (default: $NN_BACKEND or the fastest installed)")
    return common
