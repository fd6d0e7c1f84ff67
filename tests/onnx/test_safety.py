"""External-data files are read only from the model's own folder (no ``..``, no absolute
path, no symbolic link out); unsupported operators name the node and list the supported ones."""
import os

import numpy
import onnx
import pytest
from onnx import helper, numpy_helper

from n2d2py.errors import OnnxError
from n2d2py.onnx import OnnxModel, SUPPORTED


def model_with_external(tmp_path, location):
    W = numpy_helper.from_array(numpy.ones((2, 3), numpy.float32), "W")
    W.data_location = onnx.TensorProto.EXTERNAL
    W.ClearField("raw_data")
    for key, value in (("location", location), ("offset", "0"), ("length", "24")):
        W.external_data.add(key=key, value=value)
    graph = helper.make_graph([helper.make_node("Gemm", ["x", "W"], ["y"], transB=1)], "g",
                              [helper.make_tensor_value_info("x", 1, [1, 3])],
                              [helper.make_tensor_value_info("y", 1, [1, 2])], [W])
    path = tmp_path / "m" / "model.onnx"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(helper.make_model(graph).SerializeToString())
    return path


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd", "link.bin"])
def test_external_data_escape_is_refused(tmp_path, location):
    (tmp_path / "secret.bin").write_bytes(numpy.ones(6, numpy.float32).tobytes())
    path = model_with_external(tmp_path, location)
    os.symlink(tmp_path / "secret.bin", path.parent / "link.bin")
    with pytest.raises(OnnxError, match="outside|relative path"):
        OnnxModel(path)


def test_external_data_inside_folder_is_read(tmp_path):
    path = model_with_external(tmp_path, "w.bin")
    (path.parent / "w.bin").write_bytes(numpy.arange(6, dtype=numpy.float32).tobytes())
    y = OnnxModel(path).run({"x": numpy.ones((1, 3), numpy.float32)})["y"]
    numpy.testing.assert_allclose(y, [[3.0, 12.0]])


def test_unsupported_operator_lists_supported_ones():
    graph = helper.make_graph([helper.make_node("Round", ["x"], ["round_out"])], "g",
                              [helper.make_tensor_value_info("x", 1, [1, 3])],
                              [helper.make_tensor_value_info("round_out", 1, [1, 3])])
    with pytest.raises(OnnxError, match=r"node 'round_out' \(Round\): Unsupported ONNX operator: "
                                        r"Round; supported: .*Conv"):
        OnnxModel(helper.make_model(graph)).run({"x": numpy.ones((1, 3), numpy.float32)})
    assert "Conv" in SUPPORTED and "Gemm" in SUPPORTED
