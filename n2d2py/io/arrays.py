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
