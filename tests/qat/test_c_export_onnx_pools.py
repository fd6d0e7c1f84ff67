"""Max pools imported from ONNX with geometry N2D2's ``Type=Pool`` cannot express (ceil mode,
asymmetric pads, dilation) in ``--qat-sat`` and its integer exports, and N2D2's plain geometry as
the regression case.

Each case imports a small ONNX network (Conv -> BatchNorm -> Relu -> MaxPool -> Conv ->
BatchNorm -> Relu -> Gemm, random weights, 12x12 input) with 4-bit SAT overrides, fuses it and
checks, on a few random images:

* the fused pool is an ``IntegerPool`` (not a gather of moved codes); its codes are ONNX's
  ``MaxPool`` (onnx.reference, the original attributes) of its input codes, and on the
  fake-quantized network's own codes it gives the fake-quantized pool's codes exactly; the
  Conv/Fc layers agree with the fake-quantized network up to rounding ties (``qat_agreement``);
* the integer ONNX export gives the engine's codes on every node (onnx.reference, and
  onnxruntime when installed: ``Pad`` with the lowest code, then ``MaxPool``);
* the C export (Fixed-point16) has no floating-point type, compiles with ``-mgeneral-regs-only``
  and its every layer's codes and classes equal the engine's (``c_helpers.check_c_layers``).

A max pool with a window over padding only (possible with dilation) is refused by the fusion and
by the C export, naming the cell; an average pool with ONNX geometry stays refused.
"""
import pathlib
import re

import numpy
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

from n2d2py import functions as F  # noqa: E402
from n2d2py.deepnet import DeepNet  # noqa: E402
from n2d2py.errors import N2D2Error  # noqa: E402
from n2d2py.ini import parse_ini_text  # noqa: E402
from n2d2py.onnx.export_integer import export_integer_onnx  # noqa: E402
from n2d2py.qat import fuse_qat  # noqa: E402
from n2d2py.qat.engine import IntegerPool  # noqa: E402
from n2d2py.qat.export_c import CProgram  # noqa: E402

from c_helpers import check_c_layers  # noqa: E402
from qat_agreement import agreement, tie_summary  # noqa: E402

SIZE = 12
SAT4 = """
[onnx:Conv_def]
QWeight=SAT
QWeight.Range=15
QWeight.ApplyScaling=0
[onnx:Fc_def]
QWeight=SAT
QWeight.Range=15
QWeight.ApplyScaling=1
[onnx:BatchNorm_def]
ActivationFunction=Linear
QAct=SAT
QAct.Range=15
QAct.Alpha=4
"""

#: ONNX MaxPool attributes (pads: top, left, bottom, right) and the cell the importer makes
CASES = {
    "ceil_mode": (dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1), "OnnxPoolCell"),
    "asymmetric_pads": (dict(kernel_shape=[2, 2], strides=[2, 2], pads=[1, 0, 0, 1]),
                        "OnnxPoolCell"),
    "dilation_2": (dict(kernel_shape=[2, 2], strides=[2, 1], dilations=[2, 2],
                        pads=[1, 0, 0, 1], ceil_mode=1), "OnnxPoolCell"),
    "n2d2_geometry": (dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]), "PoolCell"),
}


def pool_out_size(attrs, size=SIZE):
    k, s = attrs["kernel_shape"][0], attrs["strides"]
    d = attrs.get("dilations", [1, 1])
    t, l, b, r = attrs.get("pads", [0, 0, 0, 0])
    return F.pool_output_size((size, size), [(k - 1) * d[0] + 1, (k - 1) * d[1] + 1], s,
                              (t, b, l, r), bool(attrs.get("ceil_mode", 0)))


def pool_model(attrs, seed=0, op="MaxPool"):
    """The ONNX network of the module docstring with ``op`` of ``attrs`` as ``pool1``."""
    rng = numpy.random.default_rng(seed)
    nodes, inits = [], []

    def const(name, array):
        inits.append(numpy_helper.from_array(numpy.asarray(array, numpy.float32), name))
        return name

    def conv_bn_relu(x, cin, cout, pads, n):
        nodes.append(helper.make_node(
            "Conv", [x, const(f"w{n}", rng.standard_normal((cout, cin, 3, 3)) / (3 * cin ** .5))],
            [f"conv{n}"], kernel_shape=[3, 3], pads=pads))
        nodes.append(helper.make_node(
            "BatchNormalization", [f"conv{n}", const(f"g{n}", 1 + 0.2 * rng.random(cout)),
                                   const(f"b{n}", 1 + 0.5 * rng.standard_normal(cout)),
                                   const(f"m{n}", 0.1 * rng.standard_normal(cout)),
                                   const(f"v{n}", 0.05 + 0.05 * rng.random(cout))],
            [f"bn{n}"], epsilon=1e-5))
        nodes.append(helper.make_node("Relu", [f"bn{n}"], [f"relu{n}"]))
        return f"relu{n}"

    x = conv_bn_relu("x", 1, 4, [1, 1, 1, 1], 1)
    nodes.append(helper.make_node(op, [x], ["pool1"], **attrs))
    x = conv_bn_relu("pool1", 4, 6, [1, 1, 1, 1], 2)
    oh, ow = pool_out_size(attrs)
    nodes.append(helper.make_node("Flatten", [x], ["flat"], axis=1))
    nodes.append(helper.make_node("Gemm", ["flat", const("wf", rng.standard_normal(
        (3, 6 * oh * ow)) * 0.2), const("bf", numpy.zeros(3))], ["fc"], transB=1))
    graph = helper.make_graph(
        nodes, "pools", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, SIZE, SIZE])],
        [helper.make_tensor_value_info("fc", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15)])


def import_sat(tmp_path, model):
    """The user's INI: the ONNX file with 4-bit SAT overrides."""
    onnx.save(model, tmp_path / "m.onnx")
    text = (f"DefaultModel=Frame\n[sp]\nSizeX={SIZE}\nSizeY={SIZE}\nNbChannels=1\nBatchSize=4\n"
            f"[onnx]\nInput=sp\nType=ONNX\nFile={tmp_path / 'm.onnx'}\n{SAT4}\n[fc.Target]\n")
    return DeepNet.from_ini(parse_ini_text(text, str(tmp_path / "net.ini")), load_data=False)


def images(count=6, seed=1):
    """Stimuli in [0, 1] that are integers after x255 (as the fused network needs)."""
    rng = numpy.random.default_rng(seed)
    return rng.integers(0, 256, (count, 1, SIZE, SIZE)).astype(numpy.float32) / 255


def fake_codes(net, fused, x):
    """{node: the fake-quantized network's output of that node's cell, as integer codes}."""
    from n2d2py.autograd import no_grad
    with no_grad():
        outs = {k: numpy.asarray(v.data) for k, v in net.forward(x, keep="all").items()}
    return {name: numpy.rint(outs[node.source] * node.R / node.alpha).astype(numpy.int64)
            for name, node in fused.nodes.items()}


def fused_case(case, tmp_path):
    """(attrs, net, Fixed-point16 fused network, images, their codes, every node's codes)."""
    attrs, cell_type = CASES[case]
    net = import_sat(tmp_path, pool_model(attrs))
    assert type(net.cells["pool1"]).__name__ == cell_type
    assert tuple(net.cells["pool1"].out_shape[1:]) == pool_out_size(attrs)
    fused = fuse_qat(net, "Fixed-point16", "NONE")
    x = images()
    codes = fused.input_codes(x)
    return attrs, net, fused, x, codes, fused.forward(codes, keep="all")


def check_integer_onnx(fused, codes, engine, run):
    """``run(model, feeds)`` of the integer ONNX export gives every node's engine codes."""
    model = export_integer_onnx(fused, None, all_outputs=True)
    outputs = run(model, {"env": codes.astype(numpy.uint8)})
    for output, got in zip(model.graph.output, outputs):
        want = numpy.asarray(engine[output.name])
        assert numpy.array_equal(got.reshape(want.shape), want), output.name


@pytest.mark.parametrize("case", list(CASES))
def test_onnx_max_pool_fuses_and_exports_to_integer_c(case, tmp_path):
    attrs, net, fused, x, codes, engine = fused_case(case, tmp_path)
    pool = fused.nodes["pool1"]
    assert isinstance(pool, IntegerPool) and pool.pooling == "Max"
    bn1 = numpy.asarray(engine[fused.alias["bn1"]])
    pooled = numpy.asarray(engine["pool1"])
    assert len(numpy.unique(bn1)) > 8 and len(numpy.unique(pooled)) > 6   # codes spread out

    # the geometry is ONNX's: MaxPool with the original attributes on the engine's input codes
    graph = helper.make_graph([helper.make_node("MaxPool", ["x"], ["y"], **attrs)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    onnx_pool = ReferenceEvaluator(helper.make_model(graph)).run(
        None, {"x": bn1.astype(numpy.float32)})[0]
    assert numpy.array_equal(pooled, onnx_pool.astype(numpy.int64))

    # the fake-quantized network: the pool on its codes gives its pool's codes exactly, and
    # (in the Floating-point mode, its real arithmetic) the Conv/Fc layers agree with it up to
    # rounding ties
    fake = fake_codes(net, fused, x)
    assert numpy.array_equal(pool([fake[fused.alias["bn1"]]]), fake["pool1"])
    _, _, report = agreement(net, fuse_qat(net, "Floating-point"), x)
    *_, off_tie, size = tie_summary(report)
    assert off_tie == 0 and size > 0, report

    # integer ONNX (onnx.reference): every node's codes
    check_integer_onnx(fused, codes, engine, lambda m, f: ReferenceEvaluator(m).run(None, f))

    # integer-only C: no floating-point type, every layer's codes equal the engine's
    program, _ = check_c_layers(fused, codes, None, tmp_path / "c", name=case)
    assert "pool1" in [n.name for n in program.nodes]
    for source in ("network.c", "weights.h", "network.h"):
        text = (pathlib.Path(program.folder) / source).read_text()
        assert not re.search(r"\b(float|double)\b", text), source


@pytest.mark.parametrize("case", list(CASES))
def test_onnxruntime_runs_the_integer_onnx_pools(case, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    _, _, fused, _, codes, engine = fused_case(case, tmp_path)

    def run(model, feeds):
        session = ort.InferenceSession(model.SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        return session.run(None, feeds)
    check_integer_onnx(fused, codes, engine, run)


def test_window_over_padding_only_is_refused(tmp_path):
    """A kernel 2 wide dilated by 13 over the 12-wide input padded by 1 reads columns -1 and 12
    only: the float pool has no input to take the max of, so the fusion refuses the cell. The C
    export refuses such a node too (it would otherwise write INT32_MIN into a narrow type)."""
    attrs = dict(kernel_shape=[2, 2], strides=[1, 1], dilations=[1, 13], pads=[0, 1, 0, 1])
    net = import_sat(tmp_path, pool_model(attrs))
    assert type(net.cells["pool1"]).__name__ == "OnnxPoolCell"
    assert tuple(net.cells["pool1"].out_shape[1:]) == (11, 1)
    with pytest.raises(N2D2Error, match=r"\[pool1\] Pool: the windows of 11 output positions "
                       r"read only padding"):
        fuse_qat(net, "Fixed-point16", "NONE")
    fused = fuse_qat(import_sat(tmp_path, pool_model(CASES["dilation_2"][0])), "Fixed-point16")
    node = fused.nodes["pool1"]
    node.pads = (0, 0, 3, 3)              # kernel 2 dilated by 2 at column -3: -3 and -1
    assert node.empty_windows((4, SIZE, SIZE)) > 0
    with pytest.raises(N2D2Error, match=r"\[pool1\] C export: a max pool window holds only"):
        CProgram(fused)


def test_onnx_average_pool_stays_refused(tmp_path):
    """An average pool with ONNX geometry divides by a count that varies per window: refused,
    naming the cell, as before."""
    attrs = dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1, count_include_pad=0)
    net = import_sat(tmp_path, pool_model(attrs, op="AveragePool"))
    assert type(net.cells["pool1"]).__name__ == "OnnxPoolCell"
    with pytest.raises(N2D2Error, match=r"\[pool1\].*average pool with ONNX geometry"):
        fuse_qat(net, "Fixed-point16", "NONE")


def test_a_max_pool_run_as_moved_codes_is_refused_by_the_c_export(tmp_path):
    """The C export turns a node that moves codes into a gather found by probing it with
    indices; a max pool probed that way picks the last index of each window (not the largest
    code), so the probe also runs the indices reversed and refuses a node that selects by value
    (before this change, --qat-sat ran ONNX max pools that way and the C program silently
    disagreed with the engine)."""
    from n2d2py.qat.engine import MoveNode
    _, net, fused, _, _, _ = fused_case("ceil_mode", tmp_path)
    pool = fused.nodes["pool1"]
    fused.nodes["pool1"] = MoveNode("pool1", fused.nodes[pool.parents[0]], net.cells["pool1"])
    with pytest.raises(N2D2Error, match=r"\[pool1\] C export: Type=Pool does not only move"):
        CProgram(fused)

