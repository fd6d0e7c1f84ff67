"""IDX files (MNIST's format), raw or gzip-compressed: what ``MNIST_IDX_Database`` reads.

Layout: 2 zero bytes, a type byte (0x08 = unsigned byte, the only type MNIST uses), the number of
dimensions, then one big-endian uint32 per dimension, then the data in C order. Every check names
the file and what was expected, because a truncated download is the usual cause of failure.
"""
import gzip
import math
import os
import zlib

import numpy

from ..errors import DataError

# IDX type byte -> (numpy dtype, big-endian); MNIST uses only 0x08 but the format defines these.
IDX_TYPES = {0x08: numpy.dtype("u1"), 0x09: numpy.dtype("i1"), 0x0B: numpy.dtype(">i2"),
             0x0C: numpy.dtype(">i4"), 0x0D: numpy.dtype(">f4"), 0x0E: numpy.dtype(">f8")}
TYPE_CODES = {numpy.dtype(v).newbyteorder("=").str: k for k, v in IDX_TYPES.items()}


def find_idx(folder, stem):
    """Path of ``stem`` or ``stem.gz`` in ``folder`` (raw first, as N2D2 reads raw files), else None."""
    for name in (stem, stem + ".gz"):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    return None


CHUNK = 1 << 24   # decompression step: a gzip bomb is never expanded past what the header needs


def _read_upto(handle, count):
    """At most ``count`` bytes of ``handle`` (fewer at the end), read in ``CHUNK`` steps so that
    a header claiming a huge size costs nothing until the data is really there."""
    chunks = []
    while count > 0:
        chunk = handle.read(min(count, CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


def read_idx(path, expect_ndim=None):
    """The array stored in an IDX file (dtype per its type byte, native byte order).

    ``expect_ndim`` (1 for labels, 3 for images) is checked when given. Errors: DataError naming
    ``path`` for a bad magic number, wrong dimension count, or a length that does not match the
    header (expected vs actual bytes). A gzip file is decompressed only up to the size the
    header implies (plus one byte to detect an oversized file).
    """
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            return _read_idx(handle, path, expect_ndim)
    except (OSError, EOFError, zlib.error) as exc:  # gzip: truncated or corrupt stream
        raise DataError(f"cannot read IDX file: {exc}", file=path) from None


def _read_idx(handle, path, expect_ndim):
    data = _read_upto(handle, CHUNK)   # the header, and small files whole (corrupt streams show)
    if len(data) < 4:
        raise DataError(f"truncated IDX header: expected at least 4 bytes, got {len(data)}", file=path)
    if data[0] != 0 or data[1] != 0 or data[2] not in IDX_TYPES:
        raise DataError(f"not an IDX file: bad magic number 0x{data[:4].hex()} "
                        f"(expected 0x0000TTNN with type TT in "
                        f"{', '.join(f'{t:02x}' for t in IDX_TYPES)})", file=path)
    dtype, ndim = IDX_TYPES[data[2]], data[3]
    if expect_ndim is not None and ndim != expect_ndim:
        raise DataError(f"IDX file has {ndim} dimensions, expected {expect_ndim}", file=path)
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"truncated IDX header: expected {header} bytes, got {len(data)}", file=path)
    dims = tuple(int(d) for d in numpy.frombuffer(data, ">u4", ndim, 4))
    expected = header + math.prod(dims) * dtype.itemsize
    size = None if path.endswith(".gz") else os.fstat(handle.fileno()).st_size
    if size is None or size == expected:   # a raw file's size is known without reading it
        data += _read_upto(handle, expected + 1 - len(data))
        size = len(data)
    if size != expected:
        kind = "truncated" if size < expected else "oversized"
        got = f"more than {expected}" if size > expected and path.endswith(".gz") else size
        raise DataError(f"{kind} IDX file: header {dims} needs {expected} bytes, got {got}"
                        f"{' (decompressed)' if path.endswith('.gz') else ''}", file=path)
    array = numpy.frombuffer(data, dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path, array):
    """Write ``array`` as an IDX file (gzip if ``path`` ends with ``.gz``); used by tests and tools."""
    array = numpy.asarray(array)
    code = TYPE_CODES.get(array.dtype.newbyteorder("=").str)
    if code is None:
        raise DataError(f"dtype {array.dtype} has no IDX type code", file=path)
    header = bytes([0, 0, code, array.ndim]) + numpy.asarray(array.shape, ">u4").tobytes()
    payload = header + numpy.ascontiguousarray(array, IDX_TYPES[code]).tobytes()
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(payload)
