"""N2D2's post-training quantization test (``tests/class_DeepNetQuantization.cpp``) on the 1000
bundled test digits: its two float models with its weights, calibrated like the test does (the first
500 Test stimuli, 8 bits), in each of its configurations.

N2D2 asserts its scores on the first 500 of the 10 000 MNIST test digits, which are not bundled;
here each configuration must stay within 0.5 point of the float network on the 1000 bundled digits
(N2D2's stay within 0.15 of theirs), and the fake-quantized network (the float twins) must give
the integer engine's codes on every node and digit; the C export of the multi-branch model (a
concatenation, a residual sum) gives them too. Measured with cross-layer equalization (our
default; N2D2's test runs without it) (float / integer %): mnist_model 96.5 / 96.4, 96.3, 96.4,
96.2 (None, MSE, KL, None per output); multibranch 98.6 / 98.7, 98.7, 98.7, 98.6, 98.6, 98.6,
98.6, 98.7 (the order of CASES); without (``-no-cle``): 96.7, 96.6, 96.3, 96.4; 98.7, 98.7, 98.7,
98.6, 98.7, 98.5, 98.7, 98.7.
"""
import pathlib

import numpy
import pytest

from n2d2py.deepnet import DeepNet
from n2d2py.ptq import PTQOptions, calibrate
from n2d2py.qat.export_c import export_c, write_stimuli

from c_helpers import INTEGER_FLAGS, compile_program, read_trace, run_program

N2D2 = pathlib.Path(__file__).resolve().parents[1] / "data" / "n2d2" / "tests_data"
#: (model, clipping, rescaling, per output): N2D2's configurations
CASES = [("mnist_model", "None", "Floating-point", False),
         ("mnist_model", "MSE", "Floating-point", False),
         ("mnist_model", "KL-Divergence", "Floating-point", False),
         ("mnist_model", "None", "Floating-point", True),
         ("mnist_multibranch_model", "None", "Floating-point", False),
         ("mnist_multibranch_model", "None", "Fixed-point32", False),
         ("mnist_multibranch_model", "None", "Fixed-point16", False),
         ("mnist_multibranch_model", "None", "Single-shift", False),
         ("mnist_multibranch_model", "None", "Double-shift", False),
         ("mnist_multibranch_model", "MSE", "Floating-point", False),
         ("mnist_multibranch_model", "KL-Divergence", "Floating-point", False),
         ("mnist_multibranch_model", "None", "Floating-point", True)]
NETS = {}


def network(model):
    if model not in NETS:
        net = DeepNet.from_ini(N2D2 / model / "model.ini")
        net.import_weights(N2D2 / model / "weights")
        net.sp.batch_size = 1000
        x, labels, _ = next(net.sp.batches("Test", False, None, 1000))
        NETS[model] = (net, net.test().recognition_rate, x)
    return NETS[model]


@pytest.mark.parametrize("model, clipping, rescaling, per_output", CASES,
                         ids=[f"{c[0][6:9]}-{c[1]}-{c[2]}-{'ch' if c[3] else 'layer'}"
                              for c in CASES])
def test_n2d2_configuration(model, clipping, rescaling, per_output):
    net, float_rate, x = network(model)
    options = PTQOptions(8, clipping, act_scaling_mode=rescaling, per_output=per_output)
    fused = calibrate(net, options, calib=500, set_name="Test")
    assert fused.stats.count == 500 and fused.stats.set_name == "Test"
    rate = fused.test().recognition_rate
    print(f"{model} {clipping} {rescaling} per_output={per_output}: float {float_rate:.1f} %, "
          f"integer {rate:.1f} %")
    assert abs(rate - float_rate) <= 0.5
    codes = fused.input_codes(x)
    integer = fused.forward(codes, keep="all")
    fake = fused.fake_quantized().forward(codes, keep="all")
    for name, values in integer.items():
        assert numpy.array_equal(values, fake[name]), name


def test_branches_meet_at_one_scale():
    """conv4 reads three branches: each producer is retargeted to the coarsest step (they feed
    conv4 alone, no requantizing node); elemwise7 adds conv4 (which also feeds conv5) and conv6
    exactly with integer multipliers."""
    net, _, x = network("mnist_multibranch_model")
    fused = calibrate(net, PTQOptions(8, "None"), calib=500, set_name="Test")
    concat = fused.nodes["conv4_concat"]
    assert concat.parents == ["conv_3_l3", "conv_3_m2", "conv_3_r1"]
    steps = {fused.formats[p].step for p in concat.parents}
    tops = [fused.stats.ranges[p].max for p in concat.parents]
    assert steps == {max(tops) / 255} and not [n for n in fused.nodes if "rescale" in n]
    sum_node, c = fused.nodes["elemwise7"], fused.constants["elemwise7"]
    assert sum_node.parents == ["conv4", "conv6"]
    ratios = numpy.array(c["ratios"]) * 2.0 ** c["k"]
    assert numpy.abs(numpy.array(sum_node.multipliers) - ratios).max() <= 0.5
    assert max(abs(m) for m in sum_node.multipliers) <= 2 ** 15 - 1


@pytest.mark.parametrize("mode", ["Single-shift", "Double-shift"])
def test_c_export_of_the_multibranch_model(mode, tmp_path):
    """conv4's concatenation and elemwise7's sum in integer-only C: every layer's codes on 300
    digits are the engine's."""
    net, _, x = network("mnist_multibranch_model")
    fused = calibrate(net, PTQOptions(8, "None", act_scaling_mode=mode), calib=500,
                      set_name="Test")
    program = export_c(fused, tmp_path / "c")
    assert "conv4_concat" in [node.name for node in program.nodes]
    binary = compile_program(tmp_path / "c", tmp_path / "network", INTEGER_FLAGS, trace=True)
    codes = fused.input_codes(x[:300])
    write_stimuli(tmp_path / "s.bin", codes)
    classes, _, _, _ = run_program(binary, tmp_path / "s.bin", tmp_path / "trace")
    engine = fused.forward(codes, keep="all")
    for name, got in read_trace(program, tmp_path / "trace", 300).items():
        assert numpy.array_equal(got, numpy.asarray(engine[name]).reshape(300, -1)), name
    assert classes.tolist() == numpy.asarray(engine[program.output.name]).reshape(
        300, -1).argmax(axis=1).tolist()


@pytest.mark.parametrize("bits", [2, 16])
def test_bit_width_extremes(bits):
    """16 bits: the fixed-point products of wide accumulators stay within int64 (fewer
    fractional bits where needed); 2 bits: codes -2..1 and 0..3, fake = integer."""
    net, float_rate, x = network("mnist_multibranch_model")
    fused = calibrate(net, PTQOptions(bits, "MSE", act_scaling_mode="Fixed-point32"), calib=200,
                      set_name="Test")
    codes = fused.input_codes(x)
    integer = fused.forward(codes, keep="all")
    fake = fused.fake_quantized().forward(codes, keep="all")
    assert all(numpy.array_equal(v, fake[k]) for k, v in integer.items())
    for name, node in fused.nodes.items():
        if node.type_name == "Conv":
            source = node.parents[0]
            inputs = codes if source == "env" else integer[source]
            acc = numpy.abs(node.accumulate(inputs) + node.rescaling.B.reshape(1, -1, 1, 1)).max()
            assert float(acc) * float(node.rescaling.mult.max()) < 2.0 ** 63, name
            assert node.rescaling.lo == (0 if fused.formats[name].lo == 0 else -2 ** (bits - 1))
    rate = fused.test().recognition_rate
    if bits == 16:
        assert abs(rate - float_rate) <= 0.2
