"""The shipped ``pytorch-converted``/``pytorch-operator`` cases through the command line,
``n2d2py model.onnx --infer input.npy -o out.npy`` in a subprocess (the Python API runs all of
them in ``test_backend_data.py``): a few representative ones, N2D2's operators and the n2d2py
extensions, with one and two graph inputs (``.npz`` named after the graph inputs)."""
import pathlib
import subprocess
import sys

import numpy
import onnx
import pytest

from _onnx_cases import stored_case
from test_backend_data import ATOL, RTOL, SKIPS

ROOT = pathlib.Path(__file__).resolve().parents[2]
CASES = [("pytorch-converted", "test_Conv2d_depthwise_padded"),
         ("pytorch-converted", "test_ConvTranspose2d"),
         ("pytorch-converted", "test_PReLU_2d_multiparam"),
         ("pytorch-converted", "test_log_softmax_dim3"),
         ("pytorch-operator", "test_operator_reduced_mean_keepdim"),
         ("pytorch-operator", "test_operator_add_size1_broadcast")]


@pytest.mark.parametrize("kind, case", CASES, ids=[c for _, c in CASES])
def test_infer_command(kind, case, tmp_path):
    assert case not in SKIPS
    path, ins, outs = stored_case(kind, case)
    model = onnx.load(path)
    inits = {t.name for t in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in inits]
    if len(ins) == 1:
        feed = tmp_path / "input.npy"
        numpy.save(feed, ins[0])
    else:
        feed = tmp_path / "input.npz"
        numpy.savez(feed, **dict(zip(names, ins)))
    done = subprocess.run([sys.executable, "-c", "import sys; from n2d2py.cli import main; "
                           "sys.exit(main())", path, "--infer", str(feed), "-o", "out.npy"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(outs) == 1
    y = numpy.load(tmp_path / "out.npy")
    assert y.shape == outs[0].shape
    numpy.testing.assert_allclose(y, outs[0], rtol=RTOL, atol=ATOL)
