"""Tests for nn.datasets.fashion_mnist: the real files from the Debian package, and source order on tiny data.

The real-file tests read the Debian package dataset-fashion-mnist, which .ci/run
installs; they skip (saying so) only where it is not installed. The tiny tests
shrink the shape and checksum tables and fake the network, as test_mnist does.
"""

import gzip
import hashlib
import shutil

import numpy as np
import pytest

from nn.datasets import _download, fashion_mnist, idx, mnist
from nn.errors import DataError

TINY_SHAPES = {
    fashion_mnist.TRAIN_IMAGES: (6, 4, 3),
    fashion_mnist.TRAIN_LABELS: (6,),
    fashion_mnist.TEST_IMAGES: (3, 4, 3),
    fashion_mnist.TEST_LABELS: (3,),
}
KERAS_MIRROR, ZALANDO_MIRROR = fashion_mnist.MIRRORS


@pytest.fixture(scope="module")
def debian_files():
    """The four .gz files of the installed Debian package, found with dpkg -L."""
    try:
        folder = fashion_mnist.debian_folder()
    except DataError as e:
        pytest.skip(f"Debian package {fashion_mnist.DEBIAN_PACKAGE} not installed here ({e}); "
                    f"CI installs it in .ci/run")
    return {name: folder / f"{name}.gz" for name in fashion_mnist.FILES}


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    """No data-folder variables, an empty cache, and a network that serves only `urls`."""
    for var in ("NN_DATA_DIR", fashion_mnist.ENV_VAR):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    urls, calls = {}, []

    def fetch_url(url, verbose=True, timeout=None):
        calls.append(url)
        if url not in urls:
            raise DataError("cannot connect (fake network)")
        return urls[url]

    monkeypatch.setattr(_download, "fetch_url", fetch_url)
    return urls, calls


def test_loads_from_a_folder_of_the_debian_packages_files(debian_files, clean_env, tmp_path):
    folder = tmp_path / "fashion"
    folder.mkdir()
    for path in debian_files.values():
        shutil.copy(path, folder)
    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data(folder, verbose=False)
    assert [a.shape for a in (x_train, y_train, x_test, y_test)] == list(fashion_mnist.SHAPES.values())
    assert all(a.dtype == np.uint8 and a.flags.c_contiguous for a in (x_train, y_train, x_test, y_test))
    # Zalando's README: 6,000 training and 1,000 test pictures of each class.
    assert np.bincount(y_train).tolist() == [6000] * 10 and np.bincount(y_test).tolist() == [1000] * 10
    assert y_train[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]  # Ankle boot, T-shirt/top, ...
    assert len(fashion_mnist.CLASS_NAMES) == 10 and fashion_mnist.CLASS_NAMES[9] == "Ankle boot"
    assert clean_env[1] == []


def test_the_debian_package_is_the_last_source_and_fills_the_cache(debian_files, clean_env, tmp_path):
    urls, calls = clean_env
    _, where = fashion_mnist.locate()
    cache = tmp_path / "xdg" / "nn" / "fashion-mnist"
    assert calls == [f"{mirror}{fashion_mnist.TRAIN_IMAGES}.gz" for mirror in (KERAS_MIRROR, ZALANDO_MIRROR)]
    assert where == f"cache {cache} (fetched via Debian package {fashion_mnist.DEBIAN_PACKAGE})"
    assert fashion_mnist.locate()[1] == f"cache {cache}"
    for name in fashion_mnist.FILES:
        assert hashlib.sha256((cache / name).read_bytes()).hexdigest() == fashion_mnist.SHA256[name]


@pytest.fixture(scope="module")
def mnist_folder(tmp_path_factory):
    """A folder holding the real MNIST, raw IDX, under its own (and so Fashion-MNIST's) file names."""
    folder = tmp_path_factory.mktemp("mnist")
    (x_train, y_train), (x_test, y_test) = mnist.load_data(verbose=False)
    for name, array in zip(mnist.FILES, (x_train, y_train, x_test, y_test)):
        (folder / name).write_bytes(idx.encode(array))
    return folder


@pytest.mark.data
@pytest.mark.parametrize("how", ["path", "env"])
def test_mnist_under_fashion_mnists_names_is_refused(mnist_folder, clean_env, monkeypatch, how):
    if how == "env":
        monkeypatch.setenv(fashion_mnist.ENV_VAR, str(mnist_folder))
    with pytest.raises(DataError) as info:
        fashion_mnist.load_data(mnist_folder if how == "path" else None, verbose=False)
    message = str(info.value)
    given = f"path={mnist_folder}" if how == "path" else f"{fashion_mnist.ENV_VAR}={mnist_folder}"
    assert message.startswith(f"Fashion-MNIST: {given} is unusable: {mnist_folder / mnist.TRAIN_IMAGES}: "
                              "checksum mismatch for train-images-idx3-ubyte")
    assert "these are the bytes of MNIST's train-images-idx3-ubyte, not Fashion-MNIST's" in message
    assert "\n" not in message and clean_env[1] == []


# ---------------------------------------------------------------- tiny synthetic Fashion-MNIST


@pytest.fixture
def tiny(monkeypatch, clean_env, tmp_path):
    """Tiny data whose shapes and checksums replace the real ones; a fake Debian folder holds it."""
    rng = np.random.default_rng(9)
    raw = {name: idx.encode(rng.integers(0, 256 if len(shape) == 3 else 10, shape, dtype=np.uint8))
           for name, shape in TINY_SHAPES.items()}
    monkeypatch.setattr(fashion_mnist, "SHAPES", TINY_SHAPES)
    monkeypatch.setattr(fashion_mnist, "SHA256", {n: hashlib.sha256(d).hexdigest() for n, d in raw.items()})
    debian = tmp_path / "usr-share-datasets"
    monkeypatch.setattr(fashion_mnist, "debian_folder", lambda: debian)
    return raw, debian, tmp_path / "xdg" / "nn" / "fashion-mnist"


def write(folder, raw):
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in raw.items():
        (folder / f"{name}.gz").write_bytes(gzip.compress(data))
    return folder


def corrupt(raw, name):
    data = bytearray(raw[name])
    data[-1] ^= 0xFF  # the header stays valid: only the checksum can tell
    return {**raw, name: bytes(data)}


def test_mirrors_come_before_the_debian_package(tiny, clean_env):
    raw, debian, cache = tiny
    urls, calls = clean_env
    write(debian, raw)
    for name in fashion_mnist.FILES:
        urls[f"{ZALANDO_MIRROR}{name}.gz"] = gzip.compress(raw[name])
    assert fashion_mnist.locate()[1] == f"cache {cache} (fetched via download {ZALANDO_MIRROR})"
    assert calls[0] == f"{KERAS_MIRROR}{fashion_mnist.TRAIN_IMAGES}.gz" and len(calls) == 5


@pytest.mark.parametrize("where", ["folder", "mirror", "debian", "cache"])
def test_checksums_are_enforced_for_every_source(tiny, clean_env, tmp_path, where):
    raw, debian, cache = tiny
    urls, _ = clean_env
    bad = corrupt(raw, fashion_mnist.TEST_IMAGES)
    if where == "folder":
        with pytest.raises(DataError, match="checksum mismatch for t10k-images-idx3-ubyte"):
            fashion_mnist.load_data(write(tmp_path / "given", bad), verbose=False)
        return
    if where == "mirror":
        urls.update({f"{KERAS_MIRROR}{n}.gz": gzip.compress(d) for n, d in bad.items()})
    if where == "debian":
        write(debian, bad)
    if where == "cache":
        cache.mkdir(parents=True)
        for name, data in bad.items():
            (cache / name).write_bytes(data)
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte(\.gz)?: checksum mismatch") as info:
        fashion_mnist.load_data(verbose=False)
    assert f"apt-get install {fashion_mnist.DEBIAN_PACKAGE}" in str(info.value)
    cached = cache / fashion_mnist.TEST_IMAGES
    assert not cached.exists() or cached.read_bytes() != raw[fashion_mnist.TEST_IMAGES]
    if where != "cache":
        assert not cached.exists()  # never cache bad bytes


def test_a_missing_debian_package_is_named_in_the_final_error(tiny, monkeypatch):
    def not_installed():
        raise DataError(f"not installed (apt-get install {fashion_mnist.DEBIAN_PACKAGE})")

    monkeypatch.setattr(fashion_mnist, "debian_folder", not_installed)
    with pytest.raises(DataError) as info:
        fashion_mnist.load_data(verbose=False)
    sources = [line[4:] for line in str(info.value).splitlines() if line.startswith("  - ")]
    assert [line.split(": ")[0] for line in sources] == [
        fashion_mnist.ENV_VAR, f"cache {tiny[2]}", f"download {KERAS_MIRROR}", f"download {ZALANDO_MIRROR}",
        f"Debian package {fashion_mnist.DEBIAN_PACKAGE}"]
    assert sources[-1].endswith("not installed (apt-get install dataset-fashion-mnist)")
