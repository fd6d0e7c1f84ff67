"""Post-training quantization against N2D2's numbers:

* N2D2's ``mnist_model`` with its stored calibration ranges (``outputs_range.bin``, 500 test
  stimuli, clip None, per layer): every layer's rescale factor, Single-shift exponent and
  compensation, Fixed-point16 multiplier and fractional bits equal the values N2D2's formulas
  give (the table below), and so do its Double-shift pairs and compensations. ``fc_1`` reads
  the window sums of the Average pool ``pool_2`` (2x2) where N2D2 reads their truncated mean:
  its factor is N2D2's / 4 and its shift exponents N2D2's + 2, the same arithmetic without the
  truncation.
* The worked example (two Fc layers, 8 bits, per layer, clip None): integer weights and biases,
  factors, and the integer inference of the four samples, in Floating-point, Fixed-point16 and
  Single-shift (with the weights divided by the shift compensation p).
"""
import pathlib
import types

import numpy
import pytest

from n2d2py.build import build_cells_from
from n2d2py.deepnet import DeepNet
from n2d2py.ini import parse_ini_text
from n2d2py.ptq import PTQOptions
from n2d2py.ptq.build import Builder
from n2d2py.ptq.calibration import Statistics, input_format
from n2d2py.ptq.histogram import RangeStats, load_ranges
from n2d2py.ptq.network import CalibratedNet
from n2d2py.qat import engine
from n2d2py.qat.scaling import single_shift

N2D2 = pathlib.Path(__file__).resolve().parents[1] / "data" / "n2d2"
#: N2D2's values: float factor f, Single-shift (e, p), Fixed-point16 (M, nf), per layer
N2D2_LAYERS = {
    "conv_1": (0.00200361, 8, 1.9496, 16807, 23),
    "conv_dw_2": (0.00421462, 7, 1.8537, 17677, 22),
    "conv_pw_2": (0.00781146, 7, 1.0001, 32764, 22),
    "conv_dw_3": (0.00321118, 8, 1.2165, 26937, 23),
    "conv_pw_3": (0.0101189, 6, 1.5441, 21221, 21),
    "conv_4": (0.0107035, 6, 1.4598, 22447, 21),
    "fc_1": (0.0113221, 6, 1.3800, 23744, 21),
    "fc_2": (0.00635567, 7, 1.2292, 26658, 22),
}
#: N2D2's values: Double-shift ((d, e2), p): acc·(2^-(e2-d) + 2^-e2), weights divided by p
N2D2_DOUBLE = {
    "conv_1": ((6, 15), 1.0), "conv_dw_2": ((4, 12), 1.0), "conv_pw_2": ((0, 8), 1.0001),
    "conv_dw_3": ((0, 9), 1.2165), "conv_pw_3": ((1, 8), 1.1581), "conv_4": ((1, 8), 1.0949),
    "fc_1": ((1, 8), 1.0350), "fc_2": ((0, 8), 1.2292),
}
#: fc_1 reads pool_2's window sums (2x2): f / 4, exponent + 2, same M with 2 more bits
AVERAGE_WINDOW = {"fc_1": 4}


@pytest.fixture(scope="module")
def mnist_model():
    folder = N2D2 / "tests_data" / "mnist_model"
    net = DeepNet.from_ini(folder / "model.ini", load_data=False)
    net.import_weights(folder / "weights")
    stats = Statistics(load_ranges(folder / "outputs_range.bin"), {}, "Test", 500)
    return net, stats


def build(net, stats, mode, **options):
    o = PTQOptions(8, "None", act_scaling_mode=mode, **options)
    return Builder(net, o, stats, input_format(stats, o)).run()


def test_layer_factors_of_n2d2_mnist_model(mnist_model):
    net, stats = mnist_model
    shift, fixed = build(net, stats, "Single-shift"), build(net, stats, "Fixed-point16")
    for name, (f, e, p, M, nf) in N2D2_LAYERS.items():
        k = AVERAGE_WINDOW.get(name, 1)
        c = shift.constants[name]
        assert float(c["f"][0]) == pytest.approx(f / k, rel=2e-5), name
        assert single_shift(c["S"][0]) == e + int(numpy.log2(k)), name
        assert float(c["p"][0]) == pytest.approx(p, abs=1e-4), name
        r = fixed.nodes[name].rescaling
        assert (int(r.mult[0]), r.fractional_bits) == (M, nf + int(numpy.log2(k))), name
        assert fixed.rows[name]["T"] == pytest.approx(stats.ranges[fixed.rows[name]["stat"]].max)


def test_double_shift_of_n2d2_mnist_model(mnist_model):
    """N2D2's two-term shifts and compensations; the integer engine applies them (the node's
    integer form) and the fake-quantized network gives its codes."""
    net, stats = mnist_model
    double = build(net, stats, "Double-shift")
    for name, ((d, e2), p) in N2D2_DOUBLE.items():
        k = int(numpy.log2(AVERAGE_WINDOW.get(name, 1)))
        form = double.nodes[name].rescaling.integer_form()
        assert (form.op, int(form.shift_a[0]), int(form.shift_b[0])) == ("double", d, e2 + k)
        assert float(double.constants[name]["p"][0]) == pytest.approx(p, abs=1e-4), name
    fused = CalibratedNet.from_builder(double, net, double.o, stats)
    codes = numpy.random.default_rng(0).integers(0, 256, (4, 1, 28, 28))
    integer = fused.forward(codes, keep="all")
    fake = fused.fake_quantized().forward(codes, keep="all")
    assert all(numpy.array_equal(v, fake[k]) for k, v in integer.items())


def test_thresholds_take_the_max_pool_statistics_of_a_clipped_layer(mnist_model):
    net, stats = mnist_model
    rows = build(net, stats, "Floating-point").rows
    assert rows["conv_pw_2"]["stat"] == "pool_1" and rows["conv_1"]["stat"] == "conv_1"
    assert rows["conv_pw_2"]["T"] == stats.ranges["pool_1"].max


# -- a worked example (2-layer Fc, 8 bits) ----------------------------------------------------
X = numpy.array([[0.2, 0.9, 0.5], [1.0, 0.1, 0.3], [0.6, 0.6, 0.0], [0.0, 0.4, 1.0]])
W1 = numpy.array([[0.5, -0.25, 0.1], [-0.4, 0.8, 0.2], [0.3, 0.3, -0.6], [0.05, -0.1, 0.4]])
B1 = numpy.array([0.1, -0.05, 0.2, 0.0])
W2 = numpy.array([[0.6, -1.2, 0.3, 0.9], [-0.2, 0.5, 1.5, -0.7], [0.4, 0.4, -0.3, 0.2]])
B2 = numpy.array([0.05, -0.1, 0.2])
TWO_FC = """
[fc1]
Input=sp
Type=Fc
NbOutputs=4
ActivationFunction=Rectifier

[fc2]
Input=fc1
Type=Fc
NbOutputs=3
ActivationFunction=Linear
"""


def example(mode):
    cells, targets, _ = build_cells_from(parse_ini_text(TWO_FC, "two_fc.ini"), (3, 1, 1))
    for name, W, b in (("fc1", W1, B1), ("fc2", W2, B2)):
        cells[name].weights[0].data[...] = W.astype(numpy.float32)
        cells[name].bias.data[...] = b.astype(numpy.float32)
    net = types.SimpleNamespace(cells=cells, input_shape=(3, 1, 1), targets=[], sp=None)
    y1 = numpy.maximum(X @ W1.T + B1, 0)
    y2 = y1 @ W2.T + B2
    ranges = {}
    for name, values in (("env", X), ("fc1", y1), ("fc2", y2)):
        ranges[name] = RangeStats()
        ranges[name].update(values)
    stats = Statistics(ranges, {}, "Test", 4)
    o = PTQOptions(8, "None", act_scaling_mode=mode)
    builder = Builder(net, o, stats, input_format(stats, o)).run()
    fused = CalibratedNet.from_builder(builder, net, o, stats)
    codes = fused.input_codes(X.reshape(4, 3, 1, 1).astype(numpy.float32))
    outputs = engine.run(fused.nodes, codes)
    return builder, codes, outputs


def test_worked_example_floating_point():
    builder, codes, outputs = example("Floating-point")
    fc1, fc2 = builder.nodes["fc1"], builder.nodes["fc2"]
    assert fc1.W_int.tolist() == [[79, -40, 16], [-64, 127, 32], [48, 48, -95], [8, -16, 64]]
    assert fc1.rescaling.B.tolist() == [4048, -2024, 8096, 0]
    assert fc2.W_int.tolist() == [[51, -102, 25, 76], [-17, 42, 127, -59], [34, 34, -25, 17]]
    assert fc2.rescaling.B.tolist() == [1564, -3129, 6258]
    assert builder.constants["fc1"]["f"][0] == pytest.approx(0.00912929, rel=1e-6)
    assert builder.constants["fc2"]["f"][0] == pytest.approx(0.00517048, rel=1e-6)
    assert codes[0].ravel().tolist() == [51, 229, 127]          # 229.5 and 127.5 truncate
    acc = fc1.accumulate(codes[:1]).ravel() + fc1.rescaling.B    # the bias comes with the rescale
    assert acc.tolist() == [949, 27859, 9471, 4872]
    assert outputs["fc1"][0].ravel().tolist() == [9, 254, 86, 44]
    assert outputs["fc2"][0].ravel().tolist() == [-95, 81, 71]
    assert outputs["fc2"].reshape(4, 3).argmax(axis=1).tolist() == [1, 0, 1, 2]
    a2 = outputs["fc2"][0].ravel() * builder.rows["fc2"]["step"]
    assert a2.round(4).tolist() == [-0.5872, 0.5007, 0.4389]


def test_worked_example_fixed_point16():
    builder, codes, outputs = example("Fixed-point16")
    r1, r2 = builder.nodes["fc1"].rescaling, builder.nodes["fc2"].rescaling
    assert (int(r1.mult[0]), r1.fractional_bits) == (19146, 21)
    assert (int(r2.mult[0]), r2.fractional_bits) == (21687, 22)
    assert outputs["fc1"][0].ravel().tolist() == [9, 254, 86, 44]
    assert outputs["fc2"][0].ravel().tolist() == [-95, 81, 71]


def test_worked_example_single_shift():
    builder, codes, outputs = example("Single-shift")
    fc1 = builder.nodes["fc1"]
    assert fc1.W_int.tolist() == [[46, -23, 9], [-37, 74, 19], [28, 28, -56], [5, -9, 37]]
    assert fc1.rescaling.B.tolist() == [2365, -1183, 4730, 0]
    assert fc1.rescaling.shift.tolist() == [6] * 4 and builder.nodes["fc2"].rescaling.shift[0] == 7
    assert builder.constants["fc1"]["p"][0] == pytest.approx(1.7115, abs=1e-4)
    assert builder.constants["fc2"]["p"][0] == pytest.approx(1.5110, abs=1e-4)
    acc = fc1.accumulate(codes[:1]).ravel() + fc1.rescaling.B
    assert acc.tolist() == [587, 16289, 5458, 2893]
    assert outputs["fc1"][0].ravel().tolist() == [9, 255, 85, 45]
    assert outputs["fc2"][0].ravel().tolist() == [-94, 81, 70]


def test_reload_n2d2s_stored_ranges(tmp_path):
    """N2D2's C export test quantizes ``mnist_model`` from its stored ``outputs_range.bin``
    (clip None, Single-shift, without cross-layer equalization: ``-no-cle``):
    ``--calib-reload`` reads that file as it is."""
    import shutil
    from cli_runner import assert_error, error_line, run_subprocess
    folder = N2D2 / "tests_data" / "mnist_model"
    (tmp_path / "calib_int8").mkdir()
    shutil.copy(folder / "outputs_range.bin", tmp_path / "calib_int8")
    argv = [folder / "model.ini", "-w", folder / "weights", "--calib", 500, "--calib-reload",
            "-no-cle"]
    status, out, err = run_subprocess(tmp_path, *argv, "--act-clipping-mode", "None",
                                      "--act-rescaling-mode", "Single-shift", "--test")
    assert status == 0, err
    assert "no calibration.json (N2D2's files?)" in out and "reloaded from" in out
    table = (tmp_path / "calib_int8" / "layers.dat").read_text()
    assert "4.2266" in table and "9.8789" in table and "shift 8" in table   # N2D2's maxima
    rates = [line for line in out.splitlines() if "Final recognition rate" in line]
    assert len(rates) == 3 and rates[1] == rates[2]
    (tmp_path / "calib_int8" / "outputs_histogram.bin").unlink()
    status, out, err = run_subprocess(tmp_path, *argv)      # MSE needs the histograms
    assert status == 2
    assert_error(error_line(err), "no histogram of", "--act-clipping-mode MSE")
