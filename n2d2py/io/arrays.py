"""NumPy array files a user gives us (``--infer IN.npy``/``.npz``) or we wrote (``net_state/``).

The one place such files are opened, and they are never trusted:

* only a regular file is opened (a FIFO or a device would block or never end);
* every array's header is read first: its dtype must be numbers (bool, integers, floats:
  object, string, structured and complex arrays are refused, so no pickle is ever loaded) and
  the bytes its shape declares must be exactly the bytes the file (or the ``.npz`` member)
  holds, so a forged header cannot make us allocate what is not there;
* ``open_arrays`` reads the headers of an ``.npz`` without its data (``ArrayArchive``), so a
  training state can be checked against the network before any array is loaded;
* anything unreadable (truncated, not a zip, a bad header) is a ``DataError`` naming the file.
"""
import math
import os
from collections.abc import Mapping
import zipfile
import zlib

import numpy
from numpy.lib import format as npy_format

from ..errors import DataError
from .files import regular_file_problem

NUMBER_KINDS = "biuf"
MAX_HEADER = 10000
MAX_RATIO, BOMB_FLOOR = 1100, 1 << 16   # deflate expands at most ~1032x; small members pass
_UNREADABLE = (ValueError, EOFError, KeyError, TypeError, IndexError, OverflowError,
               zipfile.BadZipFile, zlib.error, NotImplementedError, UnicodeError, SyntaxError)


def _header(handle, size, path, member=None):
    """(shape, fortran_order, dtype) of the ``.npy`` stream ``handle`` holding ``size`` bytes."""
    where = f"array '{member}': " if member is not None else ""
    try:
        version = npy_format.read_magic(handle)
        read = {(1, 0): npy_format.read_array_header_1_0,
                (2, 0): npy_format.read_array_header_2_0}.get(version)
        if read is None:
            raise ValueError(f"unsupported .npy version {version}")
        shape, fortran, dtype = read(handle, max_header_size=MAX_HEADER)
    except _UNREADABLE as exc:
        raise DataError(f"{where}not a NumPy array of numbers ({type(exc).__name__})",
                        file=path) from None
    if dtype.hasobject or dtype.kind not in NUMBER_KINDS or dtype.fields is not None \
            or dtype.subdtype is not None:
        kind = "object arrays" if dtype.hasobject else f"arrays of {dtype}"
        raise DataError(f"{where}{kind} are refused: numbers only (bool, integers, floats)",
                        file=path)
    declared = math.prod(shape) * dtype.itemsize
    held = size - handle.tell()
    if declared != held:
        raise DataError(f"{where}its header declares shape {tuple(shape)} of {dtype} "
                        f"({declared} bytes) but the file holds {held} bytes after it "
                        f"(truncated or forged)", file=path)
    return tuple(int(d) for d in shape), fortran, dtype


def _data(handle, header, path, member=None):
    shape, fortran, dtype = header
    try:
        count = math.prod(shape)
        data = handle.read(count * dtype.itemsize)
        array = numpy.frombuffer(data, dtype=dtype, count=count).copy()
    except _UNREADABLE + (OSError,) as exc:
        where = f"array '{member}': " if member is not None else ""
        raise DataError(f"{where}cannot be read ({type(exc).__name__}: {exc})",
                        file=path) from None
    return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)


class ArrayArchive(Mapping):
    """An ``.npz`` read lazily: ``headers`` {name: (shape, dtype)} at once, ``archive[name]``
    reads one array (a mapping: ``keys()``, ``in``, ``len``, iteration)."""

    def __init__(self, path):
        self.path = path
        self.members, self.headers = {}, {}
        try:
            with zipfile.ZipFile(path) as archive:
                for info in archive.infolist():
                    name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                    if name in self.members:
                        raise DataError(f"array '{name}' appears twice", file=path)
                    if info.compress_type != zipfile.ZIP_STORED and \
                            info.file_size > MAX_RATIO * max(info.compress_size, BOMB_FLOOR):
                        raise DataError(f"array '{name}': {info.compress_size} compressed bytes "
                                        f"claim {info.file_size} (a compression bomb?)", file=path)
                    with archive.open(info) as handle:
                        shape, _, dtype = _header(handle, info.file_size, path, name)
                    self.members[name] = info.filename
                    self.headers[name] = (shape, dtype)
        except DataError:
            raise
        except _UNREADABLE + (OSError,) as exc:
            raise DataError(f"not a readable .npz archive ({type(exc).__name__}: {exc})",
                            file=path) from None

    def __getitem__(self, name):
        member = self.members[name]
        try:
            with zipfile.ZipFile(self.path) as archive, archive.open(member) as handle:
                info = archive.getinfo(member)
                return _data(handle, _header(handle, info.file_size, self.path, name),
                             self.path, name)
        except DataError:
            raise
        except _UNREADABLE + (OSError,) as exc:
            raise DataError(f"array '{name}' cannot be read ({type(exc).__name__}: {exc})",
                            file=self.path) from None

    def __contains__(self, name):
        return name in self.members

    def __iter__(self):
        return iter(self.members)

    def __len__(self):
        return len(self.members)


def open_arrays(path):
    """``.npz`` → ``ArrayArchive`` (headers checked, data read on demand); ``.npy`` → the
    array. Any problem is a ``DataError`` naming ``path``."""
    path = os.fspath(path)
    problem = regular_file_problem(path)
    if problem:
        raise DataError(f"array file {problem}", file=path)
    try:
        if zipfile.is_zipfile(path):
            return ArrayArchive(path)
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            return _data(handle, _header(handle, size, path), path)
    except OSError as exc:
        raise DataError(f"cannot read the array file ({exc.strerror or exc})", file=path) from None


def read_arrays(path):
    """``.npz`` → ``{name: array}``; anything else (``.npy``) → one array."""
    loaded = open_arrays(path)
    if isinstance(loaded, ArrayArchive):
        return {name: loaded[name] for name in loaded}
    return loaded


def read_array_layout(path):
    """(shape, dtype, byte offset of the data, C-ordered) of a ``.npy`` file, from its header
    (checked as ``open_arrays`` checks it: numbers only, exactly the bytes the shape needs):
    lets a reader fetch one row with ``os.pread`` instead of loading the whole file."""
    path = os.fspath(path)
    problem = regular_file_problem(path)
    if problem:
        raise DataError(f"array file {problem}", file=path)
    try:
        with open(path, "rb") as handle:
            shape, fortran, dtype = _header(handle, os.path.getsize(path), path)
            return shape, dtype, handle.tell(), not fortran or len(shape) <= 1
    except OSError as exc:
        raise DataError(f"cannot read the array file ({exc.strerror or exc})", file=path) from None


def write_arrays(path, arrays):
    """``{name: array}`` as an ``.npz`` whose member names are exactly the names (``numpy.savez``
    takes them as keyword arguments: an output named ``file`` or ``allow_pickle`` clashes)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as handle:
                npy_format.write_array(handle, numpy.asanyarray(array), allow_pickle=False)


__all__ = ["read_arrays", "read_array_layout", "open_arrays", "write_arrays", "ArrayArchive",
           "NUMBER_KINDS"]
