"""Tests for nn.datasets.idx: round trips on small synthetic files and every header failure."""

import gzip
import io
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis.extra import numpy as hnp

from nn.datasets import idx
from nn.errors import DataError, InputError


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def header(magic, *dims):
    """Return an IDX header with any magic number, so tests can forge bad ones."""
    return struct.pack(f">I{len(dims)}I", magic, *dims)


def test_encode_golden_bytes():
    # Hand-written: magic 0x00000801, one dimension of 3, then the bytes.
    assert idx.encode(np.array([7, 0, 255], np.uint8)) == b"\x00\x00\x08\x01\x00\x00\x00\x03\x07\x00\xff"


def test_encode_images_header():
    data = idx.encode(np.zeros((2, 3, 4), np.uint8))
    assert data[:16] == header(0x803, 2, 3, 4)
    assert len(data) == 16 + 24 == idx.expected_size((2, 3, 4))


@settings(max_examples=50, deadline=None)
@given(hnp.arrays(np.uint8, hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5)))
def test_round_trip_bytes(array):
    out = idx.decode(idx.encode(array), array.shape)
    assert out.dtype == np.uint8 and out.shape == array.shape
    assert out.flags.c_contiguous and out.flags.writeable
    np.testing.assert_array_equal(out, array)


def test_round_trip_non_contiguous(rng):
    array = rng.integers(0, 256, (4, 6), dtype=np.uint8)[:, ::2]
    np.testing.assert_array_equal(idx.decode(idx.encode(array)), array)


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("suffix", ["", ".gz"], ids=["plain-name", "gz-name"])
def test_read_file_detects_gzip_by_content(tmp_path, rng, compress, suffix):
    # The file name may lie either way; only the gzip magic bytes decide.
    images = rng.integers(0, 256, (5, 4, 3), dtype=np.uint8)
    data = idx.encode(images)
    path = tmp_path / f"images{suffix}"
    path.write_bytes(gzip.compress(data) if compress else data)
    np.testing.assert_array_equal(idx.read(path, (5, 4, 3)), images)
    assert idx.read_bytes(path) == data


def test_read_file_object_and_shape_from_header(rng):
    labels = rng.integers(0, 10, 17, dtype=np.uint8)
    out = idx.read(io.BytesIO(gzip.compress(idx.encode(labels))))
    np.testing.assert_array_equal(out, labels)


def test_read_bytes_stops_at_limit():
    data = idx.encode(np.zeros(100, np.uint8))
    assert len(idx.read_bytes(io.BytesIO(data), limit=10)) == 11
    assert len(idx.read_bytes(io.BytesIO(gzip.compress(data)), limit=10)) == 11


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("limit", [5, 115, 116, 117, 500])  # the file holds 116 bytes
def test_read_array_holds_what_read_bytes_returns(compress, limit):
    data = idx.encode(np.arange(100, dtype=np.uint8).reshape(4, 25))
    stored = gzip.compress(data) if compress else data
    out = idx.read_array(io.BytesIO(stored), limit)
    assert out.dtype == np.uint8 and out.ndim == 1 and out.flags.writeable
    assert out.tobytes() == idx.read_bytes(io.BytesIO(stored), limit) == data[:limit + 1]


def test_read_array_corrupt_gzip_names_the_file(tmp_path):
    path = tmp_path / "broken.gz"
    path.write_bytes(gzip.compress(idx.encode(np.zeros(50, np.uint8)))[:-12])
    with pytest.raises(DataError, match="broken.gz: corrupt gzip data"):
        idx.read_array(path, 100)
    with pytest.raises(DataError, match="absent: cannot read"):
        idx.read_array(tmp_path / "absent", 100)


def test_decode_copies_unless_told_it_may_keep_a_writable_buffer():
    data = idx.encode(np.arange(6, dtype=np.uint8).reshape(2, 3))
    owned = idx.read_array(io.BytesIO(data), len(data))
    kept = idx.decode(owned, (2, 3), copy=False)
    assert np.shares_memory(kept, owned) and kept.flags.writeable and kept.flags.c_contiguous
    assert not np.shares_memory(idx.decode(owned, (2, 3)), owned)
    from_bytes = idx.decode(data, (2, 3), copy=False)  # read-only bytes: always a copy
    assert from_bytes.flags.writeable
    np.testing.assert_array_equal(from_bytes, kept)


BAD_HEADERS = {
    "type-not-ubyte": (header(0x0903, 2, 2, 2) + bytes(8), "bad magic number 0x00000903"),
    "nonzero-high-bytes": (header(0x01000803, 2, 2, 2) + bytes(8), "bad magic number"),
    "zero-dims": (header(0x0800), "bad magic number"),
    "labels-where-images-expected": (header(0x0801, 8) + bytes(8), "declares 1 dimensions"),
    "wrong-dims": (header(0x0803, 2, 2, 3) + bytes(12), "dimensions (2, 2, 3), expected (2, 2, 2)"),
    "truncated-payload": (header(0x0803, 2, 2, 2) + bytes(7), "truncated, 7 payload bytes"),
    "trailing-bytes": (header(0x0803, 2, 2, 2) + bytes(9), "1 trailing bytes"),
    "truncated-header": (header(0x0803, 2), "header truncated"),
    "too-short": (b"\x00\x00", "too short"),
}


@pytest.mark.parametrize("data, message", BAD_HEADERS.values(), ids=BAD_HEADERS.keys())
def test_header_failures_name_the_file(data, message):
    with pytest.raises(DataError, match=r"^train-images-idx3-ubyte: .*") as info:
        idx.decode(data, (2, 2, 2), "train-images-idx3-ubyte")
    assert message in str(info.value)


@pytest.mark.parametrize("data, message", BAD_HEADERS.values(), ids=BAD_HEADERS.keys())
def test_header_failures_from_gzip_file(tmp_path, data, message):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(data))
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz") as info:
        idx.read(path, (2, 2, 2))
    assert message in str(info.value)


def test_oversized_file_is_trailing_bytes_not_memory(tmp_path):
    # read() reads at most one byte past the expected size, so this is cheap.
    path = tmp_path / "labels"
    path.write_bytes(header(0x0801, 3) + bytes(10_000))
    with pytest.raises(DataError, match="labels: 1 trailing bytes"):
        idx.read(path, (3,))


def test_corrupt_gzip(tmp_path):
    path = tmp_path / "broken.gz"
    path.write_bytes(gzip.compress(idx.encode(np.zeros(50, np.uint8)))[:-12])
    with pytest.raises(DataError, match="broken.gz: corrupt gzip data"):
        idx.read(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="nothing-here: cannot read"):
        idx.read(tmp_path / "nothing-here")


@pytest.mark.parametrize("array", [np.zeros(3, np.int32), np.float32(1.0)], ids=["int32", "scalar"])
def test_encode_rejects_bad_arrays(array):
    with pytest.raises(InputError, match="array: IDX encoding needs"):
        idx.encode(array)
