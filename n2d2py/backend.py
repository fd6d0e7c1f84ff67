"""The one place that chooses the array module ``xp`` (NumPy or CuPy) and moves arrays.

Only the data decides the backend: a function receives ``xp`` from ``get_xp`` of its inputs,
cells and solvers never choose (docs/ARCHITECTURE.md, "Backend").
"""
import numpy

try:  # CPU-only machine: everything still imports and runs on NumPy
    import cupy as _cupy
    cupy_available = _cupy.is_available()
except Exception:  # ImportError, or a CuPy without a usable CUDA driver
    _cupy = None
    cupy_available = False

DTYPE = numpy.float32  # float32 everywhere unless an issue says otherwise


def get_xp(*arrays):
    """Return cupy if any argument is a cupy array, else numpy."""
    if _cupy is not None:
        for a in arrays:
            if isinstance(a, _cupy.ndarray):
                return _cupy
    return numpy


def to_device(array, device):
    """Move an array to ``"cpu"`` (NumPy) or ``"gpu"``/``"cuda"`` (CuPy); no copy if already there."""
    if array is None:
        return None
    if device == "cpu":
        return asnumpy(array)
    if device in ("gpu", "cuda"):
        if not cupy_available:
            raise RuntimeError("no GPU backend: cupy is not installed or no CUDA device is visible")
        return _cupy.asarray(array)
    raise ValueError(f"unknown device {device!r}: expected 'cpu' or 'gpu'")


def asnumpy(array):
    """A NumPy copy (or view) of a NumPy or CuPy array."""
    if _cupy is not None and isinstance(array, _cupy.ndarray):
        return _cupy.asnumpy(array)
    return numpy.asarray(array)


def device_of(array):
    """``"gpu"`` for a CuPy array, else ``"cpu"``."""
    return "gpu" if get_xp(array) is not numpy else "cpu"


def keep_freed_memory():
    """Ask glibc's malloc to keep freed blocks instead of returning them to the system.

    Training allocates and frees the same multi-megabyte arrays every step; with glibc's
    defaults each one is a fresh mmap whose page faults cost more than filling it (about 15% of
    a ResNet-20 step, tools/bench/README.md). Called by the command line and the benchmarks,
    not at import: a library should not change its host process's allocator. No-op elsewhere.
    """
    import ctypes
    import sys
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)) and \
            bool(libc.mallopt(M_TRIM_THRESHOLD, 1 << 31))
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
        return False
