"""NumPy array files a user gives us (``--infer IN.npy``/``.npz``) or we wrote (``net_state/``).

The one place such files are opened: object arrays are refused (numpy's ``allow_pickle=False``),
so a file can only ever hold numbers, and any unreadable file is a ``DataError`` naming it.
"""
import numpy

from ..errors import DataError


def read_arrays(path):
    """``.npz`` → ``{name: array}``; anything else (``.npy``) → one array."""
    try:
        with open(path, "rb") as handle:
            loaded = numpy.load(handle, allow_pickle=False)
            if isinstance(loaded, numpy.lib.npyio.NpzFile):
                with loaded:
                    return {name: loaded[name] for name in loaded.files}
            return loaded
    except OSError as exc:
        raise DataError(f"cannot read the array file ({exc.strerror or exc})", file=path) from None
    except (ValueError, EOFError, KeyError):  # numpy's own text suggests loading unsafely: not ours
        raise DataError("not a NumPy .npy/.npz file of numbers (object arrays are refused)",
                        file=path) from None


def read_array_layout(path):
    """(shape, dtype, byte offset of the data, C-ordered) of a ``.npy`` file, read from its
    header (through a memory map that is closed at once): lets a reader fetch one row with
    ``os.pread`` instead of loading or mapping the whole file."""
    try:
        mapped = numpy.load(path, mmap_mode="r", allow_pickle=False)
        layout = (mapped.shape, mapped.dtype, int(mapped.offset), bool(mapped.flags.c_contiguous))
        handle = getattr(mapped, "_mmap", None)
        del mapped
        if handle is not None:
            handle.close()
        return layout
    except OSError as exc:
        raise DataError(f"cannot read the array file ({exc.strerror or exc})", file=path) from None
    except (ValueError, EOFError, KeyError):
        raise DataError("not a NumPy .npy file of numbers (object arrays are refused)",
                        file=path) from None
