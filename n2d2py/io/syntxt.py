"""N2D2's ``.syntxt`` text weight files: names, number format, strict reading.

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
import contextlib
import os
import re

import numpy

from ..backend import DTYPE
from ..errors import WeightsError, printable
from . import names
from .files import regular_file_problem

def weights_path(folder, cell_name, suffix, create=False):
    """``<folder>/<cell>_<suffix>.syntxt`` (``suffix`` like ``"weights"``; ``""`` gives the legacy
    ``<cell>.syntxt``). The cell's name becomes a file name inside ``folder`` through
    ``io/names.py`` (N2D2's own file name when the name is a safe one). ``create=True``
    (writing) makes the sub-directories a ``/`` in the name implies; without it (reading),
    N2D2's file for a name it writes differently is found too."""
    suffix = (f"_{suffix}" if suffix else "") + ".syntxt"
    if create:
        path = names.cell_file(folder, cell_name, suffix)
        names.makedirs_for(path)
        return path
    return names.find_cell_file(folder, cell_name, suffix)


_exclusive = []   # non-empty inside ``distinct_files()``


@contextlib.contextmanager
def distinct_files():
    """Inside the block every file written by this module must be new: a second write to one
    path (two cells whose N2D2 file names coincide, such as a Conv ``x`` with a quantizer,
    whose ``x_quant_weights.syntxt`` is also the weights file of a Conv ``x_quant``) is a
    WeightsError naming the file, not a silent overwrite."""
    _exclusive.append(True)
    try:
        yield
    finally:
        _exclusive.pop()


@contextlib.contextmanager
def open_for_writing(path):
    """``open(path, "w")`` (ASCII, ``\n``) with the folders above it made; an OSError (disk full,
    permissions, a folder where the file should be) is a WeightsError naming ``path``."""
    try:
        names.makedirs_for(path)
        handle = open(path, "x" if _exclusive else "w", encoding="ascii", newline="\n")
    except FileExistsError:
        raise WeightsError("two cells of the network write this same file (their names "
                           "differ only by N2D2's file-name suffixes, or only by case): "
                           "rename one", file=path) from None
    except OSError as exc:
        raise WeightsError(f"cannot write ({exc.strerror or exc})", file=path) from None
    try:
        with handle:
            yield handle
    except OSError as exc:
        raise WeightsError(f"cannot write ({exc.strerror or exc})", file=path) from None


def format_number(value, precision=6):
    """C++ ``std::ostream << value`` with ``setprecision(precision)`` (``%g`` rules)."""
    text = "%.*g" % (precision, float(value))
    return {"nan": "nan", "-nan": "-nan", "inf": "inf", "-inf": "-inf"}.get(text, text)


def _numbers(values, precision):
    fmt = f"%.{precision}g"
    return [fmt % v for v in numpy.asarray(values, dtype=numpy.float64).ravel().tolist()]


def write_rows(path, rows, precision=6):
    """One line per row, each value followed by a space (rows may differ in length)."""
    with open_for_writing(path) as handle:
        for row in rows:
            handle.write("".join(s + " " for s in _numbers(row, precision)) + "\n")


def write_column(path, values, precision=6):
    """One value per line."""
    with open_for_writing(path) as handle:
        handle.write("".join(s + "\n" for s in _numbers(values, precision)))


def write_scalar(path, value, precision=6, trailing=""):
    """One number and ``trailing`` (N2D2 writes α with nothing after it, LSQ weight steps with ' ')."""
    with open_for_writing(path) as handle:
        handle.write(_numbers([value], precision)[0] + trailing)


#: bytes one number may take in a file, spaces and newlines included (``-1.234567891e-05 ``
#: is 17): a file far larger than its count of numbers needs is refused before it is read
BYTES_PER_NUMBER = 64
SLACK_BYTES = 1 << 16
MAX_UNCOUNTED_BYTES = 64 << 20       # a file read without an expected count (legacy, state)
_NUMBER = re.compile(r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)",
                     re.IGNORECASE)


def read_numbers(path, expected=None, ignore_missing=False, what="values"):
    """All whitespace-separated numbers of a file as float32 (N2D2 reads a stream).

    ``expected`` makes the count strict: fewer is "too few numbers", more is "file larger than
    expected" (N2D2's two messages), each naming the file and the expected count. A missing
    file returns ``None`` with ``ignore_missing``, else raises. A number is written as C++
    reads one (``1_0`` is not one, as Python's ``float`` would take it); a file larger than
    its numbers can take, or that is not a regular file, is refused before it is read."""
    problem = regular_file_problem(path)
    if problem == "not found":
        if ignore_missing:
            return None
        raise WeightsError(f"missing weight file (expected {what})", file=path)
    if problem:
        raise WeightsError(f"weight file {problem}", file=path)
    size = os.path.getsize(path)
    limit = MAX_UNCOUNTED_BYTES if expected is None else \
        expected * BYTES_PER_NUMBER + SLACK_BYTES
    if size > limit:
        count = f"{expected} {what}" if expected is not None else "any weight file"
        raise WeightsError(f"synaptic file larger than expected: {size} bytes, more than "
                           f"{count} can take ({limit} bytes at most)", file=path)
    parts, count = [], 0
    for words in _words(path):        # in chunks: a large file never becomes one list of str
        bad = next((w for w in words if not _NUMBER.fullmatch(w)), None)
        if bad is not None:
            raise WeightsError(f"error while reading synaptic file: {printable(bad[:40])!r} is "
                               f"not a number", file=path)
        values = numpy.array(words, dtype=numpy.float64)
        with numpy.errstate(over="ignore"):
            out = values.astype(DTYPE)
        for index in numpy.flatnonzero(numpy.isinf(out)):
            # "inf" written literally is kept (N2D2 reads it); 1e39 is not
            if words[index].lstrip("+-").lower() not in ("inf", "infinity"):
                raise WeightsError(f"error while reading synaptic file: value {words[index]!r} "
                                   f"(number {count + index + 1}) is outside the float32 range "
                                   f"(magnitude at most {numpy.finfo(DTYPE).max:.8g})", file=path)
        parts.append(out)
        count += len(out)
        if expected is not None and count > expected:
            break
    if expected is not None:
        if count < expected:
            raise WeightsError(f"error while reading synaptic file: too few numbers, "
                               f"expected {expected} {what}, found {count}", file=path)
        if count > expected:
            raise WeightsError(f"synaptic file larger than expected: expected {expected} "
                               f"{what}, found at least {count}", file=path)
    return numpy.concatenate(parts) if parts else numpy.zeros(0, DTYPE)


def _words(path, chunk=1 << 22):
    """Lists of the whitespace-separated words of a text file, ``chunk`` characters at a time
    (a word cut by a chunk's end goes with the next chunk)."""
    with open(path, encoding="ascii", errors="replace") as handle:
        rest = ""
        while True:
            text = handle.read(chunk)
            if not text:
                break
            words = (rest + text).split()
            rest = words.pop() if words and not text[-1].isspace() else ""
            if words:
                yield words
        if rest:
            yield [rest]


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
