"""SAT against N2D2's trained LeNet_w4_a8 folder: Symmetric R=15 conv
weights, ApplyScaling FC weights, and the quantized-weights file format."""
import numpy
import pytest

from n2d2py.autograd import Variable
from n2d2py.quantizers import SATWeightQuantizer, export_quant_weights, quant_weights_file
from n2d2py.quantizers.base import read_syntxt_values

# The *_quant_weights* files are w_q of the forward before the last SGD step while *_weights
# were written after it: a few elements sit one grid step apart, at most 16 per layer for
# LeNet_w4_a8; we measured conv1 3, conv2 2, conv3 16.
MAX_STALE = 16
ULP_TOL = 1e-6  # N2D2's CUDA build rounds some levels 1 ulp differently (fast reciprocal)


@pytest.fixture
def folder(n2d2_ini):
    return n2d2_ini / "tests_data" / "mnist_model" / "weights_LeNet_w4_a8"


def load(path, shape):
    return numpy.asarray(read_syntxt_values(str(path)), dtype=numpy.float32).reshape(shape)


def quantize(w, R, scaling):
    q = SATWeightQuantizer(range=R, quant_mode="Symmetric", apply_scaling=scaling)
    return q([Variable(w)])[0].data, q


@pytest.mark.parametrize("name, shape, R", [("conv1", (6, 1, 5, 5), 255),
                                            ("conv2", (16, 6, 5, 5), 15),
                                            ("conv3", (120, 16, 5, 5), 15)])
def test_conv_symmetric_matches_n2d2_quant_weights(folder, name, shape, R):
    w = load(folder / f"{name}_weights.syntxt", shape)
    ref = load(folder / f"{name}_quant_weights.syntxt", shape)
    wq, _ = quantize(w, R, scaling=False)
    stale = numpy.abs(wq.astype(numpy.float64) - ref) > ULP_TOL
    assert stale.sum() <= MAX_STALE
    step = 1.0 / (R // 2)
    numpy.testing.assert_allclose(numpy.abs(wq - ref)[stale], step, rtol=1e-5)  # one grid step
    if R == 15:
        assert len(numpy.unique(wq)) == 15 and len(numpy.unique(ref)) == 15


def test_fc_scaling_gives_unit_variance_times_outputs(folder):
    # fc1: 84 outputs, Symmetric R=15, ApplyScaling=1 (LeNet_w4_a8.ini [Fc_def], [fc1])
    w = load(folder / "fc1_weights.syntxt", (84, 120))
    ref = load(folder / "fc1_quant_weights_quant.syntxt", (84, 120)).astype(numpy.float64)
    wq, q = quantize(w, 15, scaling=True)
    assert wq.astype(numpy.float64).var(ddof=1) * 84 == pytest.approx(1.0, abs=1e-5)
    assert ref.var(ddof=1) * 84 == pytest.approx(1.0, abs=1e-5)  # N2D2's own file: Var_{N-1}·n = 1
    # integer codes k in w_q = k/(7·s): equal except the stale elements
    codes = numpy.rint(wq.astype(numpy.float64) * q.scaling[0] * 7)
    ref_codes = numpy.rint(ref / numpy.abs(ref[ref != 0]).min())
    assert (codes != ref_codes).sum() <= 2
    assert set(numpy.unique(codes)) <= set(range(-7, 8))


def test_quant_weights_file_format(folder, tmp_path):
    w = load(folder / "conv2_weights.syntxt", (16, 6, 5, 5))
    wq, _ = quantize(w, 15, scaling=False)
    path = export_quant_weights(str(tmp_path), "conv2", "Conv", [wq])
    assert path == quant_weights_file(str(tmp_path), "conv2", "Conv")
    assert path.endswith("conv2_quant_weights.syntxt")
    assert quant_weights_file("d", "fc1", "Fc").endswith("fc1_quant_weights_quant.syntxt")
    ours = open(path).read()
    theirs = open(folder / "conv2_quant_weights.syntxt").read()
    assert ours.count("\n") == theirs.count("\n") == 16
    assert all(line.endswith(" ") for line in ours.splitlines())
    mine, ref = ours.split(), theirs.split()
    assert len(mine) == len(ref) == 2400
    same_value = numpy.asarray(mine, dtype=numpy.float32) == numpy.asarray(ref, dtype=numpy.float32)
    assert same_value.sum() > 2000 and "-0" in mine  # C++ prints negative zero as "-0"
    assert all(a == b for a, b, s in zip(mine, ref, same_value) if s)  # identical text when equal
    numpy.testing.assert_array_equal(load(path, (16, 6, 5, 5)), wq)  # 10 digits round-trip float32


def test_quant_weights_with_two_parents_and_mapping(tmp_path):
    w1 = numpy.arange(2 * 1 * 2 * 2, dtype=numpy.float32).reshape(2, 1, 2, 2)
    w2 = -numpy.arange(2 * 2 * 2 * 2, dtype=numpy.float32).reshape(2, 2, 2, 2) / 8
    connections = numpy.asarray([[1, 1, 0], [0, 1, 1]], dtype=bool)
    path = export_quant_weights(str(tmp_path), "c", "Conv", [w1, w2], connections)
    rows = [line.split() for line in open(path).read().splitlines()]
    assert rows[0] == ["0", "1", "2", "3", "-0", "-0.125", "-0.25", "-0.375"]
    assert rows[1] == ["-1", "-1.125", "-1.25", "-1.375", "-1.5", "-1.625", "-1.75", "-1.875"]
