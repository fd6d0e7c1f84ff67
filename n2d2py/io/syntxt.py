"""N2D2's ``.syntxt`` text weight files (spec/ini.md §6.4): names, number format, strict reading.

Numbers are written like C++ ``operator<<`` with ``setprecision(p)``: ``%g`` with ``p``
significant digits (``0.0432``, ``-1.23457e-05``). N2D2 uses p = 6, or 10 for cells with a weight
quantizer. Text is lossy against the in-memory float32, as in N2D2: 6 digits keep about 1e-6
relative error. ``precision=9`` round-trips every float32 exactly (9 significant digits identify a
float32 uniquely); the cells default to N2D2's 6/10 so that the files match N2D2's byte for byte
and diff cleanly against its folders, and the DeepNet may ask for 9 for lossless checkpoints.
Whatever the precision, export then import gives back exactly the values as written.

Matrix files: one line per row, each value followed by a space (``"0.1 -0.2 \\n"``). Column files
(biases, BatchNorm statistics): one value per line, no trailing space. Scalar files (quantizer
α, step size): one number, no newline.
"""
import os
import re

import numpy

from ..backend import DTYPE
from ..errors import WeightsError

# control characters and < > : " | ? * are replaced by "_"; "/" is kept: ONNX names such as
# "MobilenetV1/Conv2d_0" create sub-directories, as in N2D2
_INVALID = re.compile(r'[\x00-\x1f\x7f<>:"|?*]')


def safe_name(cell_name):
    return _INVALID.sub("_", cell_name)


def weights_path(folder, cell_name, suffix, create=False):
    """``<folder>/<cell>_<suffix>.syntxt`` (``suffix`` like ``"weights"``; ``""`` gives the legacy
    ``<cell>.syntxt``); ``create=True`` makes the sub-directories a ``/`` in the name implies."""
    base = safe_name(cell_name) + (f"_{suffix}" if suffix else "")
    path = os.path.join(folder, base + ".syntxt")
    if create:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    return path


def format_number(value, precision=6):
    """C++ ``std::ostream << value`` with ``setprecision(precision)`` (``%g`` rules)."""
    text = "%.*g" % (precision, float(value))
    return {"nan": "nan", "-nan": "-nan", "inf": "inf", "-inf": "-inf"}.get(text, text)


def _numbers(values, precision):
    fmt = f"%.{precision}g"
    return [fmt % v for v in numpy.asarray(values, dtype=numpy.float64).ravel().tolist()]


def write_rows(path, rows, precision=6):
    """One line per row, each value followed by a space (rows may differ in length)."""
    with open(path, "w", encoding="ascii", newline="\n") as handle:
        for row in rows:
            handle.write("".join(s + " " for s in _numbers(row, precision)) + "\n")


def write_column(path, values, precision=6):
    """One value per line."""
    with open(path, "w", encoding="ascii", newline="\n") as handle:
        handle.write("".join(s + "\n" for s in _numbers(values, precision)))


def write_scalar(path, value, precision=6, trailing=""):
    """One number and ``trailing`` (N2D2 writes α with nothing after it, LSQ weight steps with ' ')."""
    with open(path, "w", encoding="ascii", newline="\n") as handle:
        handle.write(_numbers([value], precision)[0] + trailing)


def read_numbers(path, expected=None, ignore_missing=False, what="values"):
    """All whitespace-separated numbers of a file as float32 (N2D2 reads a stream).

    ``expected`` makes the count strict: fewer is "too few numbers", more is "file larger than
    expected" (N2D2's two messages), each naming the file and the expected count. A missing
    file returns ``None`` with ``ignore_missing``, else raises."""
    if not os.path.isfile(path):
        if ignore_missing:
            return None
        raise WeightsError(f"missing weight file (expected {what})", file=path)
    with open(path, encoding="ascii", errors="replace") as handle:
        words = handle.read().split()
    try:
        values = numpy.array([float(w) for w in words], dtype=numpy.float64)
    except ValueError:
        bad = next(w for w in words if not _is_number(w))
        raise WeightsError(f"error while reading synaptic file: {bad!r} is not a number",
                           file=path) from None
    if expected is not None:
        if len(values) < expected:
            raise WeightsError(f"error while reading synaptic file: too few numbers, "
                               f"expected {expected} {what}, found {len(values)}", file=path)
        if len(values) > expected:
            raise WeightsError(f"synaptic file larger than expected: expected {expected} "
                               f"{what}, found {len(values)}", file=path)
    with numpy.errstate(over="ignore"):
        out = values.astype(DTYPE)
    overflow = numpy.flatnonzero(numpy.isinf(out))
    for index in overflow:   # "inf" written literally is kept (N2D2 reads it); 1e39 is not
        if words[index].lstrip("+-").lower() not in ("inf", "infinity"):
            raise WeightsError(f"error while reading synaptic file: value {words[index]!r} "
                               f"(number {index + 1}) is outside the float32 range "
                               f"(magnitude at most {numpy.finfo(DTYPE).max:.8g})", file=path)
    return out


def _is_number(word):
    try:
        float(word)
        return True
    except ValueError:
        return False


class NumberStream:
    """Sequential reader for legacy single-file ``<cell>.syntxt`` (one stream for every
    tensor of the cell); ``finish()`` enforces "larger than expected"."""

    def __init__(self, path):
        self.path = path
        self.values = read_numbers(path)
        self.position = 0

    def take(self, count, what="values"):
        end = self.position + count
        if end > len(self.values):
            raise WeightsError(f"error while reading synaptic file: too few numbers, needed "
                               f"{end} {what} so far, found {len(self.values)}", file=self.path)
        out, self.position = self.values[self.position:end], end
        return out

    def finish(self):
        if self.position != len(self.values):
            raise WeightsError(f"synaptic file larger than expected: expected {self.position} "
                               f"numbers, found {len(self.values)}", file=self.path)
