"""``n2d2py MODEL.onnx|NET.ini --infer IN.npy -o OUT``, ``--build-only`` and ``--test`` on an
.onnx, ``--export ONNX``: the command run in a subprocess, checked against onnx's
ReferenceEvaluator and the DeepNet."""
import pathlib
import subprocess
import sys

import numpy
import onnx
import pytest
from onnx import helper
from onnx.reference import ReferenceEvaluator

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "onnx"))
from _builders import GraphBuilder  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "onnx" / "data"
ATOL = 1e-5


def n2d2py(*args, cwd):
    return subprocess.run([sys.executable, "-c", "import sys; from n2d2py.cli import main; "
                           "sys.exit(main())", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": ""})


def small_model(rng, two_outputs=False):
    b = GraphBuilder(rng)
    x = b.node("Relu", [b.bn(b.conv("x", 3, 4, 3), 4)], "relu")
    y = b.node("Gemm", [b.node("Flatten", [b.node("GlobalAveragePool", [x], "gap")], "flat"),
                        b.const(rng.standard_normal((5, 4))), b.const(rng.standard_normal(5))],
               "fc", transB=1)
    model = b.model([2, 3, 8, 8], b.node("Softmax", [y], "prob", axis=1))
    if two_outputs:
        model.graph.output.append(helper.make_tensor_value_info("gap", onnx.TensorProto.FLOAT, None))
    return model


@pytest.mark.parametrize("two", [False, True])
def test_infer_onnx_matches_reference_evaluator(tmp_path, rng, two):
    model = small_model(rng, two)
    onnx.save(model, tmp_path / "m.onnx")
    x = rng.standard_normal((2, 3, 8, 8)).astype(numpy.float32)
    numpy.save(tmp_path / "in.npy", x)
    done = n2d2py("m.onnx", "--infer", "in.npy", "-o", "out.npy", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    expected = ReferenceEvaluator(model).run(None, {"x": x})
    if not two:
        numpy.testing.assert_allclose(numpy.load(tmp_path / "out.npy"), expected[0], atol=ATOL)
    else:
        with numpy.load(tmp_path / "out.npz") as out:
            assert sorted(out.files) == ["gap", "prob"]
            numpy.testing.assert_allclose(out["prob"], expected[0], atol=ATOL)
            numpy.testing.assert_allclose(out["gap"], expected[1], atol=ATOL)
    assert not (tmp_path / "seed.dat").exists()


def test_onnx_build_only_and_test_needs_a_database(tmp_path, rng):
    onnx.save(small_model(rng), tmp_path / "m.onnx")
    built = n2d2py("m.onnx", "--build-only", cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    assert "Layer: fc [Fc(Frame)]" in built.stdout and "Target: prob " in built.stdout
    tested = n2d2py("m.onnx", "--test", cwd=tmp_path)
    assert tested.returncode == 2
    lines = tested.stderr.strip().splitlines()
    assert len(lines) == 1 and "--test needs a database" in lines[0]


def test_infer_ini_with_weights_then_export_onnx(tmp_path, rng):
    from n2d2py.autograd import no_grad
    from n2d2py.deepnet import DeepNet
    ini = tmp_path / "net.ini"
    ini.write_text((DATA / "export_float.ini").read_text())
    net = DeepNet.from_ini(ini, device="cpu", seed=5, load_data=False)
    for p in net.parameters():           # weights unlike any filler's
        p.data[...] = rng.standard_normal(p.data.shape).astype(numpy.float32) * 0.3
    net.export_weights(tmp_path / "w", histograms=False)
    x = rng.standard_normal((2, 3, 12, 12)).astype(numpy.float32)
    with no_grad():
        expected = net.forward(x)["soft"].data
    numpy.save(tmp_path / "in.npy", x)
    done = n2d2py("net.ini", "--infer", "in.npy", "-w", "w", "-o", "y", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    numpy.testing.assert_allclose(numpy.load(tmp_path / "y.npy"), expected, atol=ATOL)
    exported = n2d2py("net.ini", "--build-only", cwd=tmp_path)      # sanity: builds
    assert exported.returncode == 0
    exported = n2d2py("net.ini", "--export", "ONNX", "-w", "w", "--seed", "1", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    model = onnx.load(tmp_path / "net.onnx")
    y = ReferenceEvaluator(model).run(None, {"env": x})[0]
    numpy.testing.assert_allclose(y, expected, atol=ATOL)
