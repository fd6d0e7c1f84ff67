"""Start-up: the command imports a heavy package (onnx, OpenCV, matplotlib, PyTorch) only when
the work asked for needs it. Each check runs in a fresh interpreter and reads ``sys.modules``
(timings are in the README's table, measured with ``python -X importtime``, not here)."""
import json
import subprocess
import sys

import numpy
import pytest
from cli_runner import ROOT, environment

HEAVY = ("onnx", "cv2", "matplotlib", "torch", "ml_dtypes")


def imported_after(tmp_path, code):
    """Top-level packages in ``sys.modules`` after ``code`` ran in a new interpreter in ``tmp_path``."""
    script = (f"import sys\n{code}\n"
              "import json; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=environment(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_importing_the_command_loads_no_heavy_package(tmp_path):
    loaded = imported_after(tmp_path, "import n2d2py.cli\nn2d2py.cli.parse_args(['net.ini'])")
    assert "n2d2py" in loaded and "argparse" in loaded      # the probe does see imports
    assert loaded.isdisjoint(HEAVY), loaded & set(HEAVY)


def test_build_only_loads_no_heavy_package(tmp_path):
    loaded = imported_after(tmp_path, "import n2d2py.cli\n"
                            f"assert n2d2py.cli.main([{str(ROOT / 'models' / 'LeNet.ini')!r}, "
                            "'--build-only']) == 0")
    assert "numpy" in loaded
    assert loaded.isdisjoint(HEAVY), loaded & set(HEAVY)


def test_n2d2s_python_api_loads_no_heavy_package(tmp_path):
    """``import n2d2py as n2d2`` and every namespace of N2D2's API, a cell built: numpy only."""
    loaded = imported_after(tmp_path, "import n2d2py as n2d2\nfrom n2d2py import n2d2_ip\n"
                            "from n2d2py.cells.nn import Conv, Fc, Pool2d, BatchNorm2d, Dropout\n"
                            "n2d2.database, n2d2.provider, n2d2.transform, n2d2.activation\n"
                            "n2d2.solver, n2d2.filler, n2d2.target.Score, n2d2.export, n2d2.Tensor\n"
                            "n2d2.cells.Sequence, n2d2.cells.DeepNetCell, n2d2.global_variables\n"
                            "Conv(1, 2, [3, 3], quantizer=n2d2_ip.quantizer.SATCell())")
    assert "n2d2py" in loaded and "numpy" in loaded
    assert loaded.isdisjoint(HEAVY), loaded & set(HEAVY)


def test_infer_of_an_onnx_model_loads_onnx_only(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    weights = numpy_helper.from_array(numpy.eye(3, dtype=numpy.float32), "W")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
                              [weights])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]),
              tmp_path / "m.onnx")
    numpy.save(tmp_path / "x.npy", numpy.array([[1, 2, 3]], numpy.float32))
    loaded = imported_after(tmp_path, "import n2d2py.cli\nassert n2d2py.cli.main(['m.onnx', "
                            "'--infer', 'x.npy', '-o', 'y.npy']) == 0")
    assert numpy.array_equal(numpy.load(tmp_path / "y.npy"), [[1, 2, 3]])
    assert "onnx" in loaded
    assert loaded.isdisjoint({"cv2", "matplotlib", "torch"}), loaded & {"cv2", "matplotlib", "torch"}


def test_help_lists_the_files_a_run_writes(capsys):
    from n2d2py import cli
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    files = out[out.index("files a run writes"):]
    for name in ("seed.dat", "weights/", "weights_validation/", "net_state/",
                 "net_state_validation/", "Success_validation", "ConfusionMatrix_test",
                 "<NET.ini>.png", "weights_quantized/", "export_C_int8/"):
        assert name in files, name


@pytest.mark.parametrize("argv, expected", [
    (["net.ini", "--valid-metric", "Acuracy"], "did you mean 'Accuracy'?"),
    (["net.ini", "-tset"], "unrecognized option '--tset' (did you mean '--test'?)"),
    (["net.ini", "--learn-epochs=3"], "did you mean '--learn-epoch'?"),
    (["net.ini", "other.ini"], "unexpected argument 'other.ini'"),
])
def test_a_mistyped_option_is_one_line_with_the_closest_match(argv, expected, capsys):
    from n2d2py import cli
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("n2d2py: error: "), captured.err
    assert expected in lines[0]
