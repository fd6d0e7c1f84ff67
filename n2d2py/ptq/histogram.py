"""Calibration statistics of one cell's outputs: ``RangeStats`` (min, max, moments) and
``Histogram`` (fixed-width bins), with N2D2's geometry and files.

A histogram is created on the first calibration batch over ``[0, v]`` (unsigned outputs) or
``[-v, v]`` (signed), v = max(|min|, |max|) of the range seen so far, at least 0.1, with
``nb_bins(B, mode)`` bins (64·2^B, at most 65536, for MSE and KL-Divergence; 65536 for
Quantile). Before each later batch it grows to the range seen so far by appending bins of the
**same width** on the right (and as many on the left when it is signed): the bin width is the
first batch's, so the histogram depends on the batch size and order, as N2D2's does.

Bin of a value: ``int((clamp(x) - min)/width + 1e-6)``, the last bin for ``max``. Counts are
exact integers (uint64).

Files (``-calib-reload``; N2D2's ``outputs_range.bin`` and ``outputs_histogram.bin``, native
little-endian, ``size_t`` = 8 bytes): a count, then per cell its name (length, bytes) and
``RangeStats`` (f64 min, f64 max, u64 3, f64 count, sum, sum of squares) or ``Histogram``
(f64 min, f64 max, u64 bins, u64 bins, u64 counts[bins], u64 total). Read errors (a truncated or
padded file, an absurd count) are ``WeightsError`` naming the file.
"""
import math
import struct

import numpy

from ..errors import WeightsError

__all__ = ["RangeStats", "Histogram", "nb_bins", "save_ranges", "load_ranges",
           "save_histograms", "load_histograms", "MAX_BINS"]

MAX_BINS = 65536
#: smallest half-width of a histogram (a dead layer's outputs all 0 still get bins)
MIN_SPAN = 0.1


def nb_bins(bits, mode):
    """N2D2's bin count: 64·2^B (at most 65536) for MSE and KL-Divergence, 65536 for Quantile."""
    return MAX_BINS if mode == "Quantile" else min(64 * 2 ** int(bits), MAX_BINS)


class RangeStats:
    """min, max and the moments (count, sum, sum of squares) of every value seen."""

    def __init__(self, lo=0.0, hi=0.0, moments=(0.0, 0.0, 0.0)):
        self.min, self.max = float(lo), float(hi)
        self.moments = [float(m) for m in moments]

    @property
    def count(self):
        return self.moments[0]

    def update(self, values):
        v = numpy.asarray(values, dtype=numpy.float64).ravel()
        if not v.size:
            return
        lo, hi = float(v.min()), float(v.max())
        if self.count > 0:
            self.min, self.max = min(self.min, lo), max(self.max, hi)
        else:
            self.min, self.max = lo, hi
        self.moments[0] += v.size
        self.moments[1] += float(v.sum())
        self.moments[2] += float(numpy.dot(v, v))

    @property
    def max_abs(self):
        return max(abs(self.min), abs(self.max))

    @property
    def mean(self):
        return self.moments[1] / self.count if self.count else 0.0

    @property
    def std(self):
        if not self.count:
            return 0.0
        return math.sqrt(max(self.moments[2] / self.count - self.mean ** 2, 0.0))


class Histogram:
    """Counts over ``nb`` bins of equal width spanning [lo, hi] (see the module docstring)."""

    def __init__(self, lo, hi, nb, counts=None, total=None):
        if nb <= 0 or not hi > lo:
            raise ValueError(f"histogram [{lo}, {hi}] with {nb} bins")
        self.lo, self.hi = float(lo), float(hi)
        self.counts = numpy.zeros(int(nb), numpy.uint64) if counts is None else \
            numpy.asarray(counts, numpy.uint64).copy()
        self.total = int(self.counts.sum()) if total is None else int(total)

    @classmethod
    def for_range(cls, stats, unsigned, nb):
        """The first batch's histogram: [0, v] or [-v, v], v = max(|range|, 0.1)."""
        v = max(stats.max_abs, MIN_SPAN)
        return cls(0.0 if unsigned else -v, v, nb)

    @property
    def nb(self):
        return len(self.counts)

    @property
    def width(self):
        return (self.hi - self.lo) / self.nb

    @property
    def unsigned(self):
        return self.lo >= 0.0

    def centers(self):
        return self.lo + (numpy.arange(self.nb) + 0.5) * self.width

    def index(self, values):
        """Bin of each value (clamped into [lo, hi])."""
        v = numpy.clip(numpy.asarray(values, numpy.float64), self.lo, self.hi)
        i = ((v - self.lo) / self.width + 1e-6).astype(numpy.int64)
        return numpy.minimum(i, self.nb - 1)

    def add(self, values, count=1):
        """Count ``values`` (each ``count`` times); a value outside [lo, hi] is a bug."""
        v = numpy.asarray(values, numpy.float64).ravel()
        if not v.size:
            return
        if float(v.min()) < self.lo or float(v.max()) > self.hi:
            raise ValueError(f"values [{v.min()}, {v.max()}] outside the histogram "
                             f"[{self.lo}, {self.hi}]")
        self.counts += numpy.bincount(self.index(v), minlength=self.nb).astype(numpy.uint64) \
            * numpy.uint64(count)
        self.total += int(v.size) * int(count)

    def enlarge(self, value, symmetric):
        """Append empty bins of the current width until ``value`` fits (both sides when
        ``symmetric``; only the side ``value`` is on otherwise)."""
        w = self.width
        if value < self.lo:
            k = int(math.ceil((self.lo - value) / w))
        elif value > self.hi:
            k = int(math.ceil((value - self.hi) / w))
        else:
            return
        zeros = numpy.zeros(k, numpy.uint64)
        if symmetric or value < self.lo:
            self.counts = numpy.concatenate([zeros, self.counts])
            self.lo -= k * w
        if symmetric or value > self.hi:
            self.counts = numpy.concatenate([self.counts, zeros])
            self.hi += k * w

    def update(self, values, stats):
        """One calibration batch: grow to the range seen so far (``stats``, updated with this
        batch first), then count the batch."""
        self.enlarge(stats.max_abs, self.lo < 0.0)
        self.add(values)


# -- N2D2's files ------------------------------------------------------------------------------
def _pack_name(name):
    raw = name.encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw


def save_ranges(path, ranges):
    """``outputs_range.bin``: {cell name: RangeStats}."""
    parts = [struct.pack("<Q", len(ranges))]
    for name, s in ranges.items():
        parts.append(_pack_name(name) + struct.pack("<ddQ", s.min, s.max, 3)
                     + struct.pack("<3d", *s.moments))
    with open(path, "wb") as f:
        f.write(b"".join(parts))


def save_histograms(path, histograms):
    """``outputs_histogram.bin``: {cell name: Histogram}."""
    parts = [struct.pack("<Q", len(histograms))]
    for name, h in histograms.items():
        parts.append(_pack_name(name) + struct.pack("<ddQQ", h.lo, h.hi, h.nb, h.nb)
                     + h.counts.astype("<u8").tobytes() + struct.pack("<Q", h.total))
    with open(path, "wb") as f:
        f.write(b"".join(parts))


class _Reader:
    def __init__(self, path):
        self.path = path
        try:
            with open(path, "rb") as f:
                self.data = f.read()
        except OSError as exc:
            raise WeightsError(f"cannot read calibration statistics ({exc.strerror})",
                               file=path) from None
        self.pos = 0

    def take(self, fmt):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise WeightsError("truncated calibration statistics file", file=self.path)
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values

    def count(self, what, limit):
        n, = self.take("<Q")
        if n > limit:
            raise WeightsError(f"{what} count {n} is not plausible (file damaged?)",
                               file=self.path)
        return n

    def name(self):
        n = self.count("name length", 4096)
        raw = self.data[self.pos:self.pos + n]
        if len(raw) != n:
            raise WeightsError("truncated calibration statistics file", file=self.path)
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def finish(self):
        if self.pos != len(self.data):
            raise WeightsError(f"{len(self.data) - self.pos} unexpected bytes at the end",
                               file=self.path)


def _load_cells(path, read_one):
    """{cell name: read_one(reader, name)} over an N2D2 statistics file."""
    r = _Reader(path)
    out = {}
    for _ in range(r.count("cell", 1 << 20)):
        name = r.name()
        out[name] = read_one(r, name)
    r.finish()
    return out


def _read_range(r, name):
    lo, hi = r.take("<dd")
    k = r.count("moment", 16)
    moments = list(r.take(f"<{k}d")) + [0.0] * max(0, 3 - k)
    return RangeStats(lo, hi, moments[:3])


def _read_histogram(r, name):
    lo, hi = r.take("<dd")
    r.count("bin", 1 << 26)
    nb = r.count("bin", 1 << 26)
    if r.pos + 8 * nb > len(r.data) or nb == 0 or not hi > lo:
        raise WeightsError(f"histogram of '{name}' is damaged", file=r.path)
    counts = numpy.frombuffer(r.data, "<u8", nb, r.pos).astype(numpy.uint64)
    r.pos += 8 * nb
    total, = r.take("<Q")
    return Histogram(lo, hi, nb, counts, total)


def load_ranges(path):
    return _load_cells(path, _read_range)


def load_histograms(path):
    return _load_cells(path, _read_histogram)
