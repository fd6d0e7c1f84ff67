"""Clipping thresholds from a calibration histogram (``--act-clipping-mode``,
``--wt-clipping-mode``): the real value mapped to the largest code.

``None``: the largest magnitude seen (``RangeStats.max_abs``, not the histogram).

``MSE``: the candidate t minimising the expected squared error of quantizing the histogram
(each bin counted at its centre c_i, probability p_i) to B bits with scale hi/t::

    mse(t) = Σ p_i (c_i − clip(round(c_i·hi/t), lo, hi)·t/hi)²

with [lo, hi] = [0, 2^B − 1] for an unsigned histogram, [−2^(B−1), 2^(B−1) − 1] for a
signed one (round: half away from zero). Rounding noise and clipping error are both measured.

``KL-Divergence``: the candidate t minimising KL(P‖Q), P the histogram, Q the histogram
re-binned into 2^B bins over [0, t] (or [−t, t]; 2^B bins for signed data too), every
reference bin i taking the count m_j(i) of the coarse bin its centre falls into (clamped into
it: outliers go to the edge bins), normalised by Σ_i m_j(i) over all reference bins. This is
N2D2's definition, not TensorRT's (no outlier folding, no smoothing).

``Quantile``: the centre of the first bin at which the cumulative count reaches
floor(q·N) (q = ``--act-quantile-value``); of the signed values for a signed histogram.

Candidates for MSE and KL: t0 = max(|lo|, |hi|) of the histogram, then t −= t0/1000 while
t > 0 (repeated subtraction: 1000 or 1001 candidates); the first strict minimum wins, so a tie
keeps the larger threshold. An empty histogram gives 0.
"""
import numpy

from .histogram import Histogram

__all__ = ["CLIPPING_MODES", "parse_clipping_mode", "threshold", "mse_threshold",
           "kl_threshold", "quantile_threshold", "candidates"]

#: N2D2 spelling -> accepted spellings (case-insensitive, '-', '_' and ' ' ignored)
CLIPPING_MODES = {"None": ("none", "max", "minmax"), "MSE": ("mse",),
                  "KL-Divergence": ("kldivergence", "kl", "entropy"),
                  "Quantile": ("quantile", "percentile")}
#: KL values are compared to this many decimals (below: summation noise)
KL_DIGITS = 12
#: candidate thresholds evaluated at once (memory: CHUNK x bins float64 arrays)
CHUNK_VALUES = 1 << 18


def parse_clipping_mode(value):
    """``--act-clipping-mode`` / ``--wt-clipping-mode`` value -> N2D2 spelling, or None."""
    key = str(value).lower().replace("-", "").replace("_", "").replace(" ", "")
    for name, aliases in CLIPPING_MODES.items():
        if key == name.lower().replace("-", "") or key in aliases:
            return name
    return None


def candidates(t0):
    """N2D2's candidate thresholds, largest first (repeated float64 subtraction of t0/1000)."""
    step, out, t = t0 / 1000.0, [], float(t0)
    while t > 0.0:
        out.append(t)
        t -= step
    return numpy.array(out)


def _chunks(ts, nb):
    k = max(1, CHUNK_VALUES // max(nb, 1))
    for start in range(0, len(ts), k):
        yield ts[start:start + k]


def _first_min(ts, scores):
    """The threshold of the first strict minimum (the largest of equal scores)."""
    return float(ts[int(numpy.argmin(scores))])


def _round_half_away(x):
    t = numpy.trunc(x)
    return t + numpy.copysign((numpy.abs(x - t) >= 0.5).astype(x.dtype), x)


def grid(bits, unsigned):
    """(lo, hi) of B-bit codes."""
    return (0, 2 ** bits - 1) if unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def mse_threshold(hist, bits):
    if hist.total == 0:
        return 0.0
    lo, hi = grid(bits, hist.unsigned)
    keep = hist.counts > 0
    c = hist.centers()[keep]
    p = hist.counts[keep].astype(numpy.float64) / hist.total
    ts = candidates(max(abs(hist.lo), abs(hist.hi)))
    scores = []
    for part in _chunks(ts, len(c)):
        scale = (hi / part)[:, None]
        x = numpy.multiply(c[None, :], scale)
        r = numpy.rint(x)
        # rint rounds exact halves to even, C's round away from zero (rare: checked first)
        d = numpy.abs(numpy.subtract(r, x, out=x))
        if (d == 0.5).any():
            x = c[None, :] * scale
            r = numpy.where(numpy.abs(r - x) == 0.5, numpy.trunc(x) + numpy.sign(x), r)
        numpy.clip(r, lo, hi, out=r)
        r /= scale
        numpy.subtract(c[None, :], r, out=r)
        numpy.square(r, out=r)
        scores.append(r @ p)
    return _first_min(ts, numpy.concatenate(scores))


def kl_threshold(hist, bits):
    """KL(P‖Q) per candidate, computed per coarse bin j rather than per reference bin: with
    m_j the count of coarse bin j, c_j how many reference bins (empty ones included) fall in it,
    N the total and p_i = n_i/N,

        KL = Σ p_i·ln p_i − (1/N)·Σ_j m_j·ln m_j + ln(Σ_j c_j·m_j)

    (the reference bins of coarse bin j share q = m_j/Σ c·m). The coarse bin of a centre c is
    floor((clamp(c) − lo_q)/w_q + 1e-6), a step function of c: its boundaries are found by a
    binary search among the (sorted) centres, so a candidate costs O(2^B·log bins)."""
    if hist.total == 0:
        return 0.0
    nq = 2 ** bits
    centers = hist.centers()
    n = hist.counts.astype(numpy.float64)
    live = n > 0
    c_live, n_live = centers[live], n[live]
    cumulative = numpy.concatenate([[0.0], numpy.cumsum(n_live)])
    N = float(hist.total)
    p = n_live / N
    entropy = float((p * numpy.log(p)).sum())
    ts = candidates(max(abs(hist.lo), abs(hist.hi)))
    qlo = numpy.zeros_like(ts) if hist.unsigned else -ts
    width = (ts - qlo) / nq
    # centre c is in coarse bin >= j (1 <= j < nq) iff (c − lo_q)/w_q + 1e-6 >= j
    j = numpy.arange(1, nq)
    bounds = qlo[:, None] + (j[None, :] - 1e-6) * width[:, None]
    first_all = numpy.searchsorted(centers, bounds.ravel()).reshape(len(ts), nq - 1)
    first_live = numpy.searchsorted(c_live, bounds.ravel()).reshape(len(ts), nq - 1)
    zeros, ends = numpy.zeros((len(ts), 1), numpy.int64), numpy.full((len(ts), 1), 0)
    edges_all = numpy.hstack([zeros, first_all, ends + hist.nb])
    edges_live = numpy.hstack([zeros, first_live, ends + len(c_live)])
    m = cumulative[edges_live[:, 1:]] - cumulative[edges_live[:, :-1]]
    counts = numpy.diff(edges_all, axis=1).astype(numpy.float64)
    mlogm = numpy.where(m > 0, m * numpy.log(numpy.where(m > 0, m, 1.0)), 0.0).sum(axis=1)
    scores = entropy - mlogm / N + numpy.log((counts * m).sum(axis=1))
    # the loop over reference bins gives exact ties (e.g. 0 when coarse bins are finer than the
    # data); summed per coarse bin they differ in the last bits: ties are ties again here
    return _first_min(ts, numpy.round(scores, KL_DIGITS))


def quantile_threshold(hist, quantile):
    target = int(quantile * hist.total)
    cumulative = numpy.cumsum(hist.counts.astype(numpy.float64))
    reached = numpy.flatnonzero(cumulative >= target)
    index = int(reached[0]) if reached.size else hist.nb - 1
    return float(hist.centers()[index])


def threshold(mode, stats, hist, bits, quantile=0.9999):
    """The threshold of ``mode`` ("None", "MSE", "KL-Divergence", "Quantile") for a cell with
    range ``stats`` (RangeStats) and histogram ``hist`` (None for "None")."""
    if mode == "None":
        return stats.max_abs
    if mode == "MSE":
        return mse_threshold(hist, bits)
    if mode == "KL-Divergence":
        return kl_threshold(hist, bits)
    return quantile_threshold(hist, quantile)


def weight_histogram(values, bits, mode):
    """The histogram N2D2 builds of a cell's weights for ``--wt-clipping-mode``: [−w, w],
    w = max|W|, with ``nb_bins(B, mode)`` bins."""
    from .histogram import nb_bins
    w = float(numpy.abs(values).max())
    hist = Histogram(-w, w, nb_bins(bits, mode))
    hist.add(values)
    return hist
