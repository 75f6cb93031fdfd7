"""The IDX file format of MNIST: read (raw or gzip), check and write unsigned-byte arrays.

An IDX file is a 4-byte magic number ``0x0000TTNN`` (TT the element type, 0x08
for unsigned bytes; NN the number of dimensions), then NN big-endian uint32
dimensions, then the elements in C order. Only the unsigned-byte type is
supported because that is all MNIST uses.
"""

import gzip
import io
import os
import struct
import zlib

import numpy as np

from nn.errors import DataError, InputError

UBYTE = 0x08
GZIP_MAGIC = b"\x1f\x8b"


def encode(array):
    """Return the canonical IDX bytes of a uint8 array of any shape (1 to 255 dims)."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise InputError(f"array: IDX encoding needs dtype uint8, got {array.dtype}")
    if not 1 <= array.ndim <= 255:
        raise InputError(f"array: IDX encoding needs 1 to 255 dimensions, got {array.ndim}")
    header = struct.pack(f">I{array.ndim}I", (UBYTE << 8) | array.ndim, *array.shape)
    return header + np.ascontiguousarray(array).tobytes()


def decode(data, shape=None, name="IDX data", copy=True):
    """Parse IDX bytes into a new writable C-contiguous uint8 array.

    `shape` is the expected shape (a tuple); None accepts whatever the header
    declares. `name` goes into every error message so the user knows which file
    was bad. Raises DataError on a bad magic number, unexpected dimensions or a
    payload whose size is not the product of the dimensions. copy=False: when
    `data` is writable and the caller owns it (`read_array`'s result), the
    array is a view of it instead of a copy.
    """
    if len(data) < 4:
        raise DataError(f"{name}: only {len(data)} bytes, too short for an IDX header")
    (magic,) = struct.unpack(">I", data[:4])
    zeros, dtype, ndim = magic >> 16, (magic >> 8) & 0xFF, magic & 0xFF
    if zeros != 0 or dtype != UBYTE or ndim == 0:
        raise DataError(
            f"{name}: bad magic number 0x{magic:08x}, expected 0x000008NN "
            "(unsigned bytes, NN dimensions); is this an IDX file?"
        )
    if shape is not None and ndim != len(shape):
        raise DataError(
            f"{name}: magic number 0x{magic:08x} declares {ndim} dimensions, "
            f"expected 0x{(UBYTE << 8) | len(shape):08x} ({len(shape)} dimensions)"
        )
    start = 4 + 4 * ndim
    if len(data) < start:
        raise DataError(f"{name}: header truncated, {len(data)} bytes for {ndim} dimensions")
    dims = struct.unpack(f">{ndim}I", data[4:start])
    if shape is not None and dims != tuple(shape):
        raise DataError(f"{name}: dimensions {dims}, expected {tuple(shape)}")
    _check_payload(len(data) - start, dims, name)
    # frombuffer aliases `data`; copy (always from read-only bytes) so callers own their array.
    array = np.frombuffer(data, dtype=np.uint8, offset=start).reshape(dims)
    return array.copy() if copy or not array.flags.writeable else array


def _check_payload(size, dims, name):
    """Raise DataError unless `size` payload bytes are exactly what `dims` need."""
    expected = int(np.prod(dims, dtype=np.int64))
    if size < expected:
        raise DataError(f"{name}: truncated, {size} payload bytes for dimensions {dims} ({expected} needed)")
    if size > expected:
        raise DataError(f"{name}: {size - expected} trailing bytes after the {expected} "
                        f"that dimensions {dims} need")


def expected_size(shape):
    """Return the byte size of the IDX file that holds a uint8 array of `shape`."""
    return 4 + 4 * len(shape) + int(np.prod(shape, dtype=np.int64))


def _read(reader, source, limit, name):
    """reader(binary file, limit, name) on `source`, a path (opened here) or a binary file object.

    A file that cannot be opened or holds corrupt gzip data is a DataError
    naming it.
    """
    if isinstance(source, (str, os.PathLike)):
        name = name or os.fspath(source)
        try:
            with open(source, "rb") as f:
                return _read(reader, f, limit, name)
        except OSError as e:
            raise DataError(f"{name}: cannot read ({e.strerror or e})") from e
    name = name or "IDX data"
    try:
        return reader(source, limit)
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise DataError(f"{name}: corrupt gzip data ({str(e) or type(e).__name__})") from e


def read_bytes(source, limit=None, name=None):
    """Return the uncompressed bytes of an IDX file (a path or a binary file object).

    Gzip is detected by its magic bytes, not by the file name. At most
    `limit + 1` uncompressed bytes are returned, so a wrong or hostile file
    cannot exhaust memory and an oversized one is still seen as too long by
    `decode`.
    """
    return _read(_bytes, source, limit, name)


def _bytes(source, limit):
    size = -1 if limit is None else limit + 1
    head = source.read(2)
    if head != GZIP_MAGIC:
        return head + source.read(-1 if size < 0 else max(size - len(head), 0))
    # The compressed bytes are at most a few MB; the limit guards the output.
    with gzip.GzipFile(fileobj=io.BytesIO(head + source.read())) as gz:
        return gz.read(size)


def read_array(source, limit, name=None):
    """As `read_bytes`, but into a new writable uint8 array (at most limit + 1 bytes).

    The file's bytes (decompressed on the way if gzip) land straight in the
    array, so that decode(..., copy=False) can keep them: loading a data set
    then holds one copy of its pixels, not the bytes and a copy of them.
    """
    return _read(_array, source, limit, name)


def _array(source, limit):
    out = np.empty(limit + 1, np.uint8)  # one more byte than allowed: an oversized file shows
    view = memoryview(out)
    head = source.read(2)
    if head == GZIP_MAGIC:
        with gzip.GzipFile(fileobj=io.BytesIO(head + source.read())) as gz:
            return out[:_fill(gz, view)]
    view[:len(head)] = head
    return out[:len(head) + _fill(source, view[len(head):])]


def _fill(stream, view):
    """Read from binary `stream` into memoryview `view` until it is full or the stream ends."""
    filled = 0
    while filled < len(view):
        got = stream.readinto(view[filled:])
        if not got:
            break
        filled += got
    return filled


def read(source, shape=None, name=None):
    """Read and parse an IDX file (path or binary file object, raw or gzip) into a uint8 array."""
    if name is None and isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
    limit = None if shape is None else expected_size(shape)
    return decode(read_bytes(source, limit, name), shape, name or "IDX data")

