"""IDX files (MNIST's format), raw or gzip-compressed (spec/ini.md §3.3, ``MNIST_IDX_Database``).

Layout: 2 zero bytes, a type byte (0x08 = unsigned byte, the only type MNIST uses), the number of
dimensions, then one big-endian uint32 per dimension, then the data in C order. Every check names
the file and what was expected, because a truncated download is the usual cause of failure.
"""
import gzip
import os

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


def _read_bytes(path):
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            return f.read()
    except (OSError, EOFError) as exc:  # gzip raises these on a truncated or corrupt stream
        raise DataError(f"cannot read IDX file: {exc}", file=path) from None


def read_idx(path, expect_ndim=None):
    """The array stored in an IDX file (dtype per its type byte, native byte order).

    ``expect_ndim`` (1 for labels, 3 for images) is checked when given. Errors: DataError naming
    ``path`` for a bad magic number, wrong dimension count, or a length that does not match the
    header (expected vs actual bytes).
    """
    data = _read_bytes(path)
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
    expected = header + int(numpy.prod(dims, dtype=numpy.int64)) * dtype.itemsize
    if len(data) != expected:
        kind = "truncated" if len(data) < expected else "oversized"
        raise DataError(f"{kind} IDX file: header {dims} needs {expected} bytes, got {len(data)}",
                        file=path)
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
