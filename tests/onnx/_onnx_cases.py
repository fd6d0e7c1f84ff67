"""Helpers for the ONNX tests: the backend test data shipped in the onnx wheel
and tensor loading."""
import glob
import os

import numpy
import onnx
from onnx import numpy_helper

DATA = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")


def case_dirs(kind):
    folder = os.path.join(DATA, kind)
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def load_tensor(path):
    return numpy_helper.to_array(onnx.load_tensor(path))


def stored_case(kind, case):
    """(model path, inputs, outputs) of ``test_data_set_0``."""
    folder = os.path.join(DATA, kind, case)
    ins = [load_tensor(p) for p in sorted(glob.glob(f"{folder}/test_data_set_0/input_*.pb"))]
    outs = [load_tensor(p) for p in sorted(glob.glob(f"{folder}/test_data_set_0/output_*.pb"))]
    return os.path.join(folder, "model.onnx"), ins, outs


def as_array(value):
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    return numpy.asarray(value)
