"""Calibration histograms and thresholds against N2D2's own values and the formulas:

* N2D2's ``tests/class_Histogram.cpp``: the counts, bin indices and ``enlarge`` results it
  asserts;
* the MSE / KL-Divergence / Quantile searches against plain loops over the candidates (N2D2's
  formulas written the obvious way), and the threshold table derived with
  N2D2's formulas on seeded data (100 000 samples: ReLU(N(0,1)), N(0,1), ReLU(Laplace));
* N2D2's statistics files: ``outputs_range.bin`` of its ``mnist_model`` decoded (N2D2's
  calibration maxima), save/load round trips, damaged files as one-line errors.
"""
import math

import numpy
import pytest

from n2d2py.errors import WeightsError
from n2d2py.ptq.histogram import (Histogram, RangeStats, load_histograms, load_ranges, nb_bins,
                                  save_histograms, save_ranges)
from n2d2py.ptq.thresholds import (candidates, kl_threshold, mse_threshold, quantile_threshold,
                                   threshold)

VALUES = [3.4, 19, -10, 20, 41, -23.4, -23.39, 7.2, -8.2, 3.4, 20.1, 22.3, 0, 1]


def n2d2_histogram():
    hist = Histogram(-23.4, 41.0, 11)
    hist.add(VALUES)
    return hist


def test_class_histogram_counts_and_indices():
    hist = n2d2_histogram()
    assert hist.counts.tolist() == [2, 0, 2, 1, 3, 1, 0, 4, 0, 0, 1]
    hist.add([1.0], count=20)
    assert hist.counts.tolist() == [2, 0, 2, 1, 23, 1, 0, 4, 0, 0, 1]
    assert hist.total == 34
    w = 64.4 / 11
    probes = {-23.4: 0, -100: 0, 41: 10, 100: 10, -23.41 + w: 0, -23.4 + w: 1, -23.39 + w: 1,
              -23.4 + 2 * w: 2, -23.4 + 5 * w: 5}
    for value, index in probes.items():
        assert hist.index([value])[0] == index, value


def test_class_histogram_enlarge():
    w = 64.4 / 11
    hist = n2d2_histogram()
    hist.enlarge(-30, symmetric=True)
    assert hist.counts.tolist() == [0, 0, 2, 0, 2, 1, 3, 1, 0, 4, 0, 0, 1, 0, 0]
    assert math.isclose(hist.lo, -23.4 - 2 * w) and math.isclose(hist.hi, 41 + 2 * w)
    left = n2d2_histogram()
    left.enlarge(-30, symmetric=False)
    assert left.nb == 13 and left.counts.tolist()[:2] == [0, 0] and left.hi == 41.0
    right = n2d2_histogram()
    right.enlarge(50, symmetric=False)
    assert right.nb == 13 and right.counts.tolist()[-2:] == [0, 0] and right.lo == -23.4
    assert math.isclose(right.width, w) and math.isclose(left.width, w)


def test_values_outside_the_histogram_are_a_bug():
    with pytest.raises(ValueError):
        n2d2_histogram().add([41.5])


def test_histogram_grows_with_the_range_keeping_the_first_batch_width():
    stats = RangeStats()
    first = numpy.array([0.0, 0.05, 0.2])
    stats.update(first)
    hist = Histogram.for_range(stats, True, 100)
    hist.update(first, stats)
    assert (hist.lo, hist.hi, hist.nb) == (0.0, 0.2, 100)   # max(|range|, 0.1) = 0.2
    later = numpy.array([0.5, 0.1])
    stats.update(later)
    hist.update(later, stats)
    assert math.isclose(hist.width, 0.002) and hist.nb == 250 and hist.total == 5
    assert hist.counts[hist.index([0.5])[0]] == 1


def test_bin_counts_of_n2d2_modes():
    assert nb_bins(8, "MSE") == nb_bins(8, "KL-Divergence") == 16384
    assert nb_bins(4, "MSE") == 1024 and nb_bins(11, "MSE") == 65536
    assert nb_bins(4, "Quantile") == 65536


def test_candidates_are_n2d2s_repeated_subtraction():
    assert len(candidates(1.0)) == 1000 and len(candidates(3.7)) == 1001
    assert len(candidates(255.0)) == 1001
    assert candidates(2.0)[0] == 2.0 and candidates(2.0)[-1] > 0


def loop_mse(hist, bits):
    lo, hi = (0, 2 ** bits - 1) if hist.lo >= 0 else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    c, n = hist.centers(), hist.counts.astype(float)
    best, best_t = numpy.inf, None
    for t in candidates(max(abs(hist.lo), abs(hist.hi))):
        s = hi / t
        q = numpy.clip(numpy.sign(c * s) * numpy.floor(numpy.abs(c * s) + 0.5), lo, hi) / s
        e = float(((c - q) ** 2 * n / n.sum()).sum())
        if e < best:
            best, best_t = e, t
    return best_t


def loop_kl(hist, bits):
    c, n = hist.centers(), hist.counts.astype(float)
    p = n / n.sum()
    best, best_t = numpy.inf, None
    for t in candidates(max(abs(hist.lo), abs(hist.hi))):
        qlo, nq = (0.0 if hist.lo >= 0 else -t), 2 ** bits
        j = ((numpy.clip(c, qlo, t) - qlo) / ((t - qlo) / nq) + 1e-6).astype(int)
        j = numpy.minimum(j, nq - 1)
        m = numpy.bincount(j, weights=n, minlength=nq)
        q = m[j] / m[j].sum()
        live = p > 0
        kl = float((p[live] * numpy.log(p[live] / q[live])).sum())
        if kl < best:
            best, best_t = kl, t
    return best_t


@pytest.mark.parametrize("unsigned", [True, False])
@pytest.mark.parametrize("bits", [3, 8])
def test_searches_equal_plain_loops(unsigned, bits, rng):
    data = rng.standard_normal(5000) * 2.0
    data = numpy.maximum(data, 0) if unsigned else data
    stats = RangeStats()
    stats.update(data)
    hist = Histogram.for_range(stats, unsigned, 512)
    hist.update(data, stats)
    assert mse_threshold(hist, bits) == loop_mse(hist, bits)
    assert kl_threshold(hist, bits) == loop_kl(hist, bits)


def test_quantile_is_the_centre_of_the_first_bin_reaching_the_count():
    hist = Histogram(0.0, 10.0, 10, counts=[5, 0, 3, 2, 0, 0, 0, 0, 0, 1])
    assert quantile_threshold(hist, 0.5) == 0.5            # floor(0.5 * 11) = 5 reached in bin 0
    assert quantile_threshold(hist, 0.9) == 3.5            # 9: bins 0..3
    assert quantile_threshold(hist, 1.0) == 9.5
    assert quantile_threshold(hist, 0.01) == 0.5           # target 0: the first bin


def test_edge_cases_of_the_searches():
    empty = Histogram(0.0, 0.1, 64)
    assert mse_threshold(empty, 8) == 0.0 and kl_threshold(empty, 8) == 0.0
    constant = Histogram(0.0, 3.0, nb_bins(8, "MSE"))
    constant.add(numpy.full(50, 3.0))
    assert mse_threshold(constant, 8) == 3.0 and kl_threshold(constant, 8) == 3.0
    dead = Histogram(0.0, 0.1, 16384)
    dead.add(numpy.zeros(100))
    assert 0 < mse_threshold(dead, 8) < 2e-4 and 0 < kl_threshold(dead, 8) < 5e-3


def seeded_samples():
    """The data of the threshold table: default_rng(0), drawn in this order."""
    rng = numpy.random.default_rng(0)
    normal = rng.standard_normal(100_000)
    signed = rng.standard_normal(100_000)
    laplace = rng.laplace(0.0, 1.0, 100_000)
    return numpy.maximum(normal, 0), signed, numpy.maximum(laplace, 0)


#: derived with N2D2's formulas: max, MSE, KL-Divergence, Quantile 0.9999
TABLE = [("relu", 8, True, (4.732, 4.448, 3.289, 3.773)),
         ("relu", 4, True, (4.732, 2.929, 2.768, 3.773)),
         ("signed", 8, False, (4.594, 3.937, 4.530, 3.696)),
         ("laplace", 8, True, (10.033, 9.873, 6.973, 8.410))]


@pytest.mark.parametrize("name, bits, unsigned, expected", TABLE,
                         ids=[f"{r[0]}-{r[1]}" for r in TABLE])
def test_threshold_table(name, bits, unsigned, expected):
    data = dict(zip(("relu", "signed", "laplace"), seeded_samples()))[name]
    stats = RangeStats()
    stats.update(data)
    for mode, value in zip(("None", "MSE", "KL-Divergence", "Quantile"), expected):
        hist = Histogram.for_range(stats, unsigned, nb_bins(bits, mode))
        hist.update(data, stats)
        assert round(threshold(mode, stats, hist, bits, 0.9999), 3) == value, mode


def test_n2d2_outputs_range_file(n2d2_ini):
    ranges = load_ranges(n2d2_ini / "tests_data" / "mnist_model" / "outputs_range.bin")
    assert len(ranges) == 12
    assert (ranges["env"].min, ranges["env"].max, ranges["env"].count) == (0.0, 1.0, 392000.0)
    maxima = {"conv_1": 3.24965, "conv_dw_2": 4.70828, "pool_1": 4.22659, "conv_dw_3": 9.87893,
              "conv_pw_3": 7.43375, "conv_4": 5.82874, "fc_1": 1.96833, "fc_2": 1.38012,
              "pool_2": 4.57697}
    for name, value in maxima.items():
        assert round(ranges[name].max_abs, 5) == value, name
    assert round(ranges["fc_2"].min, 4) == -0.2829


def test_statistics_files_round_trip(tmp_path, rng):
    stats = RangeStats()
    data = rng.standard_normal(1000)
    stats.update(data)
    hist = Histogram.for_range(stats, False, 64)
    hist.update(data, stats)
    save_ranges(tmp_path / "r.bin", {"a/b": stats, "env": RangeStats()})
    save_histograms(tmp_path / "h.bin", {"a/b": hist})
    ranges, hists = load_ranges(tmp_path / "r.bin"), load_histograms(tmp_path / "h.bin")
    assert ranges["a/b"].moments == stats.moments and ranges["env"].count == 0
    assert hists["a/b"].counts.tolist() == hist.counts.tolist()
    assert (hists["a/b"].lo, hists["a/b"].hi, hists["a/b"].total) == (hist.lo, hist.hi, 1000)


@pytest.mark.parametrize("cut", [3, 20, -1])
def test_damaged_statistics_files_are_errors(tmp_path, cut):
    stats = RangeStats()
    stats.update([1.0, 2.0])
    save_ranges(tmp_path / "r.bin", {"conv": stats})
    raw = (tmp_path / "r.bin").read_bytes()
    (tmp_path / "r.bin").write_bytes(raw[:cut] if cut > 0 else raw + b"\0")
    with pytest.raises(WeightsError) as info:
        load_ranges(tmp_path / "r.bin")
    assert "r.bin" in str(info.value)
