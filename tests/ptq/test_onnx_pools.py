"""Post-training quantization (``--calib``) of max pools imported from ONNX with geometry N2D2's
``Type=Pool`` cannot express (ceil mode, asymmetric pads, dilation), and N2D2's plain geometry as
the regression case, down to the integer exports.

Each case imports a small ONNX network (Conv -> BatchNorm -> Relu -> MaxPool -> Conv ->
BatchNorm -> Relu -> GlobalAveragePool -> Gemm, seeded random weights, 12x12 RGB inputs, a
NumPy_Database of random images: ``onnx_models``), calibrates it at 8 bits (Single-shift) and
checks, on the test images:

* the pool is an integer pool node carrying the geometry (not a gather of moved codes); its
  codes are ONNX's ``MaxPool`` (onnx.reference, the original attributes) of its input codes; the
  fake-quantized twin (N2D2's simulator: the float pool on the codes) gives the same codes on
  every node;
* the integer ONNX export gives the engine's codes on every node (onnx.reference, and
  onnxruntime when installed);
* the C export has no floating-point type, compiles with ``-mgeneral-regs-only`` and its every
  layer's codes and classes equal the engine's (``c_helpers.check_c_layers``).

The command (``--calib -1 --export C``) writes that C program for the ceil-mode network; a max
pool whose window reads padding only is refused by ``--calib`` naming the cell; an average pool
with ONNX geometry stays refused.
"""
import pathlib
import re

import numpy
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

from n2d2py.deepnet import DeepNet  # noqa: E402
from n2d2py.errors import N2D2Error  # noqa: E402
from n2d2py.onnx.export_integer import export_integer_onnx  # noqa: E402
from n2d2py.ptq import PTQOptions, calibrate  # noqa: E402
from n2d2py.qat.engine import IntegerPool, MoveNode  # noqa: E402

from c_helpers import INTEGER_FLAGS, check_c_layers, compile_program, run_program  # noqa: E402
from cli_runner import assert_error, error_line, run_subprocess  # noqa: E402
from onnx_models import Graph, calibration_ini  # noqa: E402

SIZE, CLASSES, MODE = 12, 4, "Single-shift"

#: ONNX MaxPool attributes (pads: top, left, bottom, right) and the cell the importer makes
CASES = {
    "ceil_mode": (dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1), "OnnxPoolCell"),
    "asymmetric_pads": (dict(kernel_shape=[3, 2], strides=[2, 2], pads=[2, 0, 0, 1]),
                        "OnnxPoolCell"),
    "dilation_2": (dict(kernel_shape=[2, 2], strides=[2, 1], dilations=[2, 2],
                        pads=[1, 0, 0, 1], ceil_mode=1), "OnnxPoolCell"),
    "n2d2_geometry": (dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]), "PoolCell"),
}


def pool_model(attrs, op="MaxPool", seed=0):
    """The ONNX network of the module docstring with ``op`` of ``attrs`` as ``pool1``."""
    g = Graph(numpy.random.default_rng(seed))
    x = g.node("Relu", [g.bn(g.conv("input", 3, 4, 3, prefix="conv1"), 4, "bn1")], "relu1")
    g.nodes.append(helper.make_node(op, [x], ["pool1"], name="pool1", **attrs))
    x = g.node("Relu", [g.bn(g.conv("pool1", 4, 6, 3, prefix="conv2"), 6, "bn2")], "relu2")
    return g.model(SIZE, g.head(x, 6, CLASSES))


def imported_net(folder, monkeypatch, attrs, op="MaxPool"):
    """(ini path, the DeepNet, the Test images) with the database in ``folder``."""
    ini = calibration_ini(folder, pool_model(attrs, op), size=SIZE, count=24, classes=CLASSES)
    monkeypatch.chdir(folder)
    net = DeepNet.from_ini(ini)
    x = numpy.concatenate([x for x, _, _ in net.sp.batches("Test", False, None, 16)])
    return ini, net, x


def onnx_max_pool(attrs, x):
    """ONNX's MaxPool of ``attrs`` on ``x`` (onnx.reference): the pool's definition."""
    graph = helper.make_graph([helper.make_node("MaxPool", ["x"], ["y"], **attrs)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    y, = ReferenceEvaluator(helper.make_model(graph)).run(None, {"x": x.astype(numpy.float32)})
    return y.astype(numpy.int64)


def check_integer_onnx(fused, codes, engine, run):
    """``run(model, feeds)`` of the integer ONNX export gives every node's engine codes."""
    model = export_integer_onnx(fused, None, all_outputs=True)
    outputs = run(model, {"env": codes.astype(numpy.uint8)})
    names = [o.name for o in model.graph.output]
    assert set(names) == set(engine)
    for name, got in zip(names, outputs):
        want = numpy.asarray(engine[name])
        if name == "softmax":    # float probabilities of the codes
            assert numpy.allclose(got.reshape(want.shape), want, rtol=0, atol=1e-12)
        else:
            assert numpy.array_equal(got.reshape(want.shape), want), name


@pytest.fixture(params=list(CASES))
def calibrated(request, tmp_path, monkeypatch):
    attrs, cell_type = CASES[request.param]
    _, net, x = imported_net(tmp_path, monkeypatch, attrs)
    assert type(net.cells["pool1"]).__name__ == cell_type
    fused = calibrate(net, PTQOptions(8, act_scaling_mode=MODE))
    codes = fused.input_codes(x)
    return request.param, attrs, fused, codes, fused.forward(codes, keep="all")


def test_calibrated_pool_is_the_onnx_max_pool_of_its_codes(calibrated):
    case, attrs, fused, codes, engine = calibrated
    pool = fused.nodes["pool1"]
    assert isinstance(pool, IntegerPool) and not isinstance(pool, MoveNode)
    assert pool.pooling == "Max"
    before = numpy.asarray(engine[pool.parents[0]])
    pooled = numpy.asarray(engine["pool1"])
    assert len(numpy.unique(before)) > 20 and len(numpy.unique(pooled)) > 10   # codes spread
    assert numpy.array_equal(pooled, onnx_max_pool(attrs, before)), case
    fake = fused.fake_quantized().forward(codes, keep="all")
    for name, values in engine.items():
        assert numpy.array_equal(numpy.asarray(values), numpy.asarray(fake[name])), name


def test_integer_onnx_export_equals_the_engine(calibrated):
    _, _, fused, codes, engine = calibrated
    check_integer_onnx(fused, codes, engine, lambda m, f: ReferenceEvaluator(m).run(None, f))


def test_onnxruntime_runs_the_integer_onnx_export(calibrated):
    ort = pytest.importorskip("onnxruntime")
    _, _, fused, codes, engine = calibrated

    def run(model, feeds):
        session = ort.InferenceSession(model.SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        return session.run(None, feeds)
    check_integer_onnx(fused, codes, engine, run)


def test_integer_c_export_equals_the_engine(calibrated, tmp_path):
    case, _, fused, codes, _ = calibrated
    program, _ = check_c_layers(fused, codes, None, tmp_path / "c", name=case)
    assert "pool1" in [n.name for n in program.nodes]
    for source in ("network.c", "weights.h", "network.h"):
        text = (pathlib.Path(program.folder) / source).read_text()
        assert not re.search(r"\b(float|double)\b", text), source


def test_calib_export_c_through_the_command(tmp_path, monkeypatch):
    """``n2d2py net.ini --calib -1 --export C``: the C program of the ceil-mode network, run on
    the exported test stimuli, prints what the command expects (the integer engine's classes)."""
    ini, _, _ = imported_net(tmp_path, monkeypatch, CASES["ceil_mode"][0])
    status, out, err = run_subprocess(tmp_path, ini, "--calib", -1, "--export", "C",
                                      "--act-rescaling-mode", MODE, "--export-stimuli", 12)
    assert status == 0, err
    folder = tmp_path / "export_C_int8"
    assert "pool1" in (folder / "network.c").read_text()
    binary = compile_program(folder, tmp_path / "network", INTEGER_FLAGS)
    _, _, _, stdout = run_program(binary, folder / "stimuli.bin")
    assert stdout == (folder / "expected.txt").read_text()


def test_max_pool_window_over_padding_only_is_refused(tmp_path, monkeypatch):
    """A kernel 2 wide dilated by 13 over the 12-wide input padded by 1 reads columns -1 and 12
    only: no input to take the max of, refused before calibration, naming the cell."""
    attrs = dict(kernel_shape=[2, 2], strides=[1, 1], dilations=[1, 13], pads=[0, 1, 0, 1])
    _, net, _ = imported_net(tmp_path, monkeypatch, attrs)
    with pytest.raises(N2D2Error, match=r"\[pool1\] Type=Pool cannot be quantized by --calib.*"
                       r"the windows of 11 output positions read only padding"):
        calibrate(net, PTQOptions(8))


def test_onnx_average_pool_stays_refused(tmp_path, monkeypatch):
    """An average pool with ONNX geometry divides by a count that varies per window."""
    attrs = dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1, count_include_pad=0)
    ini, net, _ = imported_net(tmp_path, monkeypatch, attrs, op="AveragePool")
    assert type(net.cells["pool1"]).__name__ == "OnnxPoolCell"
    with pytest.raises(N2D2Error, match=r"\[pool1\] Type=Pool cannot be quantized by --calib.*"
                       r"average pool with ONNX geometry"):
        calibrate(net, PTQOptions(8))
    status, _, err = run_subprocess(tmp_path, ini, "--calib", -1, "--export", "C")
    assert status == 2
    assert_error(error_line(err), "[pool1]", "--calib", "average pool with ONNX geometry")
    assert not (tmp_path / "export_C_int8").exists()
