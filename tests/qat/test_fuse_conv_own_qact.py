"""``--qat-sat`` of Conv cells that carry their own SAT activation quantizer and no BatchNorm (an
n2d2py extension, docs/FUSION.md "A Conv without BatchNorm"; N2D2's pass leaves such a Conv
fake-quantized): the Conv+BN rule with slope f = 1 and no shift, the Conv's bias in B, SAT's
scale adjustment folded in as for an Fc.

The network: a LeNet-like INI without BatchNorm, trained here for two epochs of the bundled
digits (3,200 stimuli, seed 1; about 1 s): conv1 (8-bit weights, ApplyScaling=1, bias,
Rectifier + QAct 8 bits), a Max pool, conv2 (4-bit Default, ApplyScaling=0, Linear + QAct 4
bits), an Average pool (window sums), conv3 (1x1, 4-bit Symmetric, ApplyScaling=1), an Fc
without QAct. Measured on the 1000 bundled test digits: fake-quantized 88.7 %, fused
Floating-point 88.7 % (every code equal but one on a rounding tie; with --n2d2-compat one image
flips on the last Fc's rounded logits), Fixed-point16 and Fixed-point32 88.3 % (codes off by
one on 0.3 % of conv3's outputs at most), Single-shift 90.0 %, Double-shift 89.0 %.
"""
import copy
import re

import numpy
import pytest

from n2d2py import cli
from n2d2py.backend import asnumpy
from n2d2py.errors import N2D2Error
from n2d2py.qat import fuse_qat
from n2d2py.qat.scaling import rintf

from qat_agreement import agreement

F32 = numpy.float32
DIGITS = 1000
INTEGER_MODES = ["Fixed-point16", "Fixed-point32", "Single-shift", "Double-shift"]

INI = """DefaultModel=Frame
[database]
Type=MNIST_IDX_Database
Validation=0.2

[sp]
SizeX=24
SizeY=24
BatchSize=32

[sp.Transformation_1]
Type=RescaleTransformation
Width=[sp]SizeX
Height=[sp]SizeY

[sp.Transformation_2]
Type=RangeAffineTransformation
FirstOperator=Divides
FirstValue=255.0

[Conv_def]
Type=Conv
QWeight=SAT
QWeight.ApplyScaling=1      ; no BatchNorm: SAT's scale adjustment
QAct=SAT                    ; the Conv carries the activation quantizer itself
QAct.Alpha=6.0
QAct.Range=15
ConfigSection=common.config

[common.config]
NoBias=0
Solvers.LearningRate=0.01
Solvers.Momentum=0.9

[conv1] Conv_def
Input=sp
KernelDims=5 5
NbOutputs=6
ActivationFunction=Rectifier
QWeight.Range=255
QAct.Range=255

[pool1]
Input=conv1
Type=Pool
PoolDims=2 2
NbOutputs=[conv1]NbOutputs
Stride=2
Pooling=Max
Mapping.Size=1

[conv2] Conv_def
Input=pool1
KernelDims=3 3
NbOutputs=12
ActivationFunction=Linear
QWeight.Range=15
QWeight.ApplyScaling=0

[pool2]
Input=conv2
Type=Pool
PoolDims=2 2
NbOutputs=[conv2]NbOutputs
Stride=2
Pooling=Average
Mapping.Size=1

[conv3] Conv_def
Input=pool2
KernelDims=1 1
NbOutputs=16
ActivationFunction=Rectifier
QWeight.Range=15
QWeight.QuantMode=Symmetric

[fc]
Input=conv3
Type=Fc
NbOutputs=10
ActivationFunction=Linear
QWeight=SAT
QWeight.Range=255
QWeight.ApplyScaling=1
ConfigSection=common.config

[softmax]
Input=fc
Type=Softmax
NbOutputs=10
WithLoss=1

[softmax.Target]
"""
CONVS = ("conv1", "conv2", "conv3")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from n2d2py.deepnet import DeepNet
    from n2d2py.ini import parse_ini_text
    folder = tmp_path_factory.mktemp("conv_own_qact")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("N2D2_DATA", str(folder))       # the bundled digits, whatever the machine
        net = DeepNet.from_ini(parse_ini_text(INI, str(folder / "net.ini")), device="cpu",
                               seed=1)
    net.weight_histograms = False
    rng = numpy.random.default_rng(1)
    for _ in range(2):
        for xb, lb, _ in net.sp.batches("Learn", True, rng, None):
            net.learn_batch(xb, lb)
    net.sp.batch_size = DIGITS
    x, labels, _ = next(net.sp.batches("Test", False, None, DIGITS))
    return net, x, numpy.asarray(labels)


def classes(out):
    return numpy.asarray(out).reshape(DIGITS, -1).argmax(axis=1)


# -- the rule's constants -------------------------------------------------------------------------
@pytest.mark.parametrize("rnd", ["NONE", "RINTF"])
def test_constants_are_the_batchnorm_rule_with_unit_slope(trained, rnd):
    """Per channel, with the codes (R_in, α_in) the Conv reads and its quantizer's (R_out,
    α_out), SAT scale s (1 without ApplyScaling) and weight scale wsf (1 under NONE):
    S = (α_in/R_in)(R_out/α_out)/(wsf·s), B = b·(R_in/α_in)·wsf·s and
    C = α_out·(R_in/α_in)·wsf·s under RINTF; under NONE s stays in the weights and goes into their denominator D."""
    net, _, _ = trained
    fused = fuse_qat(net, "Floating-point", rnd, "NONE", "NONE")
    assert list(fused.nodes) == ["conv1", "pool1", "conv2", "pool2", "conv3", "fc", "softmax"]
    codes_in = {"conv1": (255.0, 1.0, 1)}
    for name in CONVS:
        cell, node, k = net.cells[name], fused.nodes[name], fused.constants[name]
        assert node.type_name == "Conv" and node.source == name and fused.alias[name] == name
        q = cell.qweight
        wq = asnumpy(cell.quantized_weights()[0].data).astype(numpy.float64)
        s = float(q.scaling[0]) if q.apply_scaling else 1.0
        R_in, a_in, den = codes_in[name]
        R_out, a_out = int(q_range(cell.qact)), abs(float(cell.qact.alpha))
        R_w = int(q.range)
        r = R_w // 2 if q.quant_mode == "Symmetric" else R_w
        if rnd == "RINTF":
            wsf = 15 if (q.quant_mode, R_w) == ("Default", 15) else R_w // 2
            s_w, D = s, 1.0
            W = rintf(wq * wsf * s)
        else:
            wsf, s_w, D = 1, 1.0, r * s
            W = wq
        b = asnumpy(cell.bias.data).astype(numpy.float64)
        numpy.testing.assert_allclose(k["S"], (a_in / R_in) * (R_out / a_out) / (wsf * s_w),
                                      rtol=1e-6)
        numpy.testing.assert_allclose(k["B"], b * (R_in / a_in) * wsf * s_w, rtol=1e-6,
                                      atol=1e-6)
        numpy.testing.assert_allclose(k["C"], a_out * (R_in / a_in) * wsf * s_w, rtol=1e-6)
        assert k["D"] == pytest.approx(D * den, rel=1e-12)
        assert numpy.array_equal(node.W_int, numpy.rint(W * D).astype(numpy.int64))
        assert (k["wsf"], k["sat_scaling"]) == (wsf, s_w)
        assert (node.R, node.alpha) == (R_out, a_out)
        nxt = {"conv1": "conv2", "conv2": "conv3"}.get(name)
        if nxt:
            codes_in[nxt] = (float(R_out), a_out, 4 if nxt == "conv3" else 1)
    assert s != 1.0 and numpy.abs(b).max() > 0     # the scale and the bias are exercised


def q_range(quantizer):
    return quantizer.grid().hi


# -- codes equal the fake-quantized network's ---------------------------------------------------
@pytest.mark.parametrize("compat", [False, True], ids=["default", "n2d2-compat"])
def test_fused_codes_equal_fake_quantized_codes(trained, compat):
    """Each fused Conv fed the fake-quantized codes of its input gives the fake-quantized
    network's codes, except on rounding ties (qat_agreement.py); the classes are the same but
    for one image at most (--n2d2-compat rounds the last Fc's logits to 1/R_in)."""
    net, x, labels = trained
    fused = fuse_qat(net, n2d2_compat=compat)
    fake, integer, report = agreement(net, fused, x)
    assert set(CONVS) <= set(report)
    for name in CONVS:
        r = report[name]
        assert r["off_tie"] == 0 and r["mismatches"] <= r["ties"], (name, r)
        assert r["mismatches"] <= r["size"] // 100000, (name, r)
    assert (fake != integer).sum() <= (1 if compat else 0)
    fake_acc, fused_acc = (fake == labels).mean(), (integer == labels).mean()
    assert fake_acc > 0.85 and abs(fused_acc - fake_acc) <= 1 / DIGITS + 1e-12
    print(f"fake-quantized {100 * fake_acc:.1f} %, fused ({'compat' if compat else 'default'}) "
          f"{100 * fused_acc:.1f} %")


@pytest.mark.parametrize("mode, compat", [(m, c) for m in INTEGER_MODES for c in (False, True)
                                          if not (c and m in ("Single-shift", "Double-shift"))])
def test_integer_modes_give_the_floating_point_codes(trained, mode, compat):
    """The fixed-point modes give the Floating-point codes but where the multiplier's rounding
    moves a value across a boundary (by one code); the shift modes approximate the scales by
    powers of two: the accuracy stays within two points of Floating-point's (which is
    the fake-quantized network's, test above)."""
    net, x, labels = trained
    reference = fuse_qat(net, n2d2_compat=compat)
    codes = reference.input_codes(x)
    base = reference.forward(codes, keep="all")
    fused = fuse_qat(net, mode, n2d2_compat=compat)
    out = fused.forward(codes, keep="all")
    floating = (classes(base["softmax"]) == labels).mean()
    accuracy = (classes(out["softmax"]) == labels).mean()
    for name in CONVS:
        got, want = (numpy.asarray(v[name]).astype(numpy.int64) for v in (out, base))
        if mode.startswith("Fixed-point"):
            assert numpy.abs(got - want).max() <= 1 and (got == want).mean() >= 0.99, name
    assert abs(accuracy - floating) <= (0.01 if mode.startswith("Fixed-point") else 0.02)
    print(f"{mode}{' compat' if compat else ''}: {100 * accuracy:.1f} %")


# -- exports ------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode, rnd", [(m, ("NONE", "RINTF")[k % 2])
                                        for k, m in enumerate(INTEGER_MODES)], ids=INTEGER_MODES)
def test_c_export_equals_the_engine_layer_by_layer(trained, mode, rnd, tmp_path):
    from test_c_export_integer import check_layers
    net, x, labels = trained
    accuracy, program = check_layers(net, mode, rnd, x, labels, tmp_path, "conv_own_qact")
    assert {n.name for n in program.nodes} >= set(CONVS)
    assert accuracy > 85


@pytest.mark.parametrize("mode, rnd, compat", [("Floating-point", "NONE", False),
                                               ("Fixed-point32", "RINTF", False),
                                               ("Double-shift", "NONE", False),
                                               ("Fixed-point16", "NONE", True)])
def test_integer_onnx_export_equals_the_engine(trained, mode, rnd, compat):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from n2d2py.onnx.export_integer import export_integer_onnx
    net, x, labels = trained
    fused = fuse_qat(net, mode, rnd, rnd, rnd, n2d2_compat=compat)
    model = export_integer_onnx(fused, None, all_outputs=True)
    ops = {n.op_type for n in model.graph.node}
    assert "ConvInteger" in ops and "Conv" not in ops
    codes = fused.input_codes(x)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {"env": codes.astype(numpy.uint8)})
    names = [o.name for o in model.graph.output]
    expected = fused.forward(codes, keep=names)
    for name, got in zip(names, outputs):
        want = numpy.asarray(expected[name])
        if got.dtype.kind in "iu":
            assert numpy.array_equal(got.astype(numpy.int64), want.astype(numpy.int64)), name
        else:
            numpy.testing.assert_allclose(got, want, rtol=0, atol=1e-12, err_msg=name)
    assert set(CONVS) <= set(names)


def test_cli_tests_and_exports_the_fused_network(trained, tmp_path, monkeypatch, capsys):
    """A user's commands on the trained weights: ``--test --qat-sat`` scores what the fused
    network scores here; ``--qat-sat --export ONNX`` writes the integer model."""
    net, x, labels = trained
    net.export_weights(str(tmp_path / "weights"))
    (tmp_path / "net.ini").write_text(INI)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("N2D2_DATA", str(tmp_path))
    assert cli.main(["net.ini", "--test", "--qat-sat", "-w", "weights"]) == 0
    out = capsys.readouterr().out
    found = re.findall(r"Final recognition rate: ([0-9.]+)%", out)
    fused = fuse_qat(net)
    expected = 100 * (classes(fused.forward(fused.input_codes(x))) == labels).mean()
    assert found and float(found[-1]) == pytest.approx(expected, abs=1e-6), out[-2000:]
    assert cli.main(["net.ini", "--qat-sat", "-w", "weights", "--export", "ONNX"]) == 0
    assert (tmp_path / "net.int.onnx").is_file()


# -- refusals -----------------------------------------------------------------------------------
def with_cell(net, name, **changes):
    broken = copy.copy(net)
    broken.cells = dict(net.cells)
    cell = broken.cells[name] = copy.copy(net.cells[name])
    for key, value in changes.items():
        setattr(cell, key, value)
    return broken


def test_a_conv_without_batchnorm_or_qact_is_refused(trained):
    net, _, _ = trained
    with pytest.raises(N2D2Error, match=r"^\[conv2\] has no BatchNorm child with a SAT activation "
                                        r"quantizer and no QAct of its own: cannot fuse"):
        fuse_qat(with_cell(net, "conv2", qact=None))


def test_a_leaky_or_clipped_activation_is_refused(trained):
    net, _, _ = trained
    for attribute in ("leak_slope", "clipping"):
        act = copy.copy(net.cells["conv1"].activation)
        setattr(act, attribute, 0.5)
        with pytest.raises(N2D2Error, match=r"^\[conv1\] has ActivationFunction=Rectifier: the "
                                            r"QAT fusion of a Conv with its own QAct"):
            fuse_qat(with_cell(net, "conv1", activation=act))


def test_a_conv_with_qact_and_a_batchnorm_child_is_refused(tmp_path):
    import pathlib
    from n2d2py.deepnet import DeepNet
    from n2d2py.ini import parse_ini_text
    root = pathlib.Path(__file__).resolve().parents[2]
    text = (root / "ini_examples" / "LeNet_SAT4.ini").read_text()
    text = text.replace("[conv1] Conv_def\n", "[conv1] Conv_def\nQAct=SAT\nQAct.Range=15\n")
    net = DeepNet.from_ini(parse_ini_text(text, str(tmp_path / "net.ini")), load_data=False)
    assert net.cells["conv1"].qact is not None
    with pytest.raises(N2D2Error, match=r"^\[conv1\] has QAct=SAT and a BatchNorm child \[bn1\]: "
                                        r"cannot fuse"):
        fuse_qat(net)


def test_cli_refusal_is_one_line(tmp_path, monkeypatch, capsys):
    """conv2 without QAct (Conv_def's quantizer moved to conv1 and conv3): exit status 2, one
    ``n2d2py: error:`` line naming conv2, nothing written."""
    text = INI.replace("QAct=SAT                    ; the Conv carries the activation quantizer "
                       "itself\nQAct.Alpha=6.0\nQAct.Range=15\n", "")
    for name, extra in (("conv1", ""), ("conv3", "QAct.Range=15\n")):
        text = text.replace(f"[{name}] Conv_def\n", f"[{name}] Conv_def\nQAct=SAT\n"
                            f"QAct.Alpha=6.0\n{extra}")
    assert text.count("QAct=SAT") == 2
    (tmp_path / "net.ini").write_text(text)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("N2D2_DATA", str(tmp_path))
    import os
    status = cli.main([str(tmp_path / "net.ini"), "--test", "--qat-sat", "-w", os.devnull,
                       "--nb-test", "10"])
    captured = capsys.readouterr()
    errors = [line for line in (captured.out + captured.err).splitlines()
              if line.startswith("n2d2py: error:")]
    assert status == 2 and len(errors) == 1, errors
    assert re.search(r"\[conv2\] has no BatchNorm child .* and no QAct of its own", errors[0])
    assert not (work / "weights_quantized").exists()
