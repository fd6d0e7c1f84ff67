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
