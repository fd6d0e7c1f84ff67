"""Acceptance 1: the ONNX models shipped in the onnx wheel (``pytorch-converted``,
``pytorch-operator``, ``light``) import as n2d2py cells and reproduce their stored outputs
(docs/ONNX.md).

``RTOL`` 1e-4 relative with ``ATOL`` 1e-6 absolute (float32 sums of a few hundred terms); the
float64 cases are cast to float32 (relative error <= 6e-8 per input, within RTOL; tiny
subnormal float64 values become 0, within ATOL). Beyond N2D2's own set, the n2d2py extensions
of ``n2d2py/onnx/ops_extension.py`` (ConvTranspose, LogSoftmax, Elu/Selu/Exp/Neg/Abs/Sqrt...,
PRelu, Min, broadcasting arithmetic, ReduceSum/ReduceMean over non-batch axes) and
``ops_layout.py`` (Split: GLU; Tile: repeat; the 6-D Transpose of PixelShuffle) and dilated
pools are exercised.
Cases outside both are in ``SKIPS`` with the reason;
``test_skipped_cases_are_refused`` checks that each of them is refused with an ``OnnxError``,
so a case that starts to import must leave the list, and the list cannot grow silently.
"""
import os
import time

import numpy
import onnx
import pytest
from onnx.backend.test.runner import Runner

from n2d2py.errors import OnnxError
from n2d2py.onnx import OnnxModel, import_onnx

from _onnx_cases import DATA, case_dirs, load_tensor, stored_case

RTOL, ATOL = 1e-4, 1e-6

_3D = "3-D spatial input (N, C, D, H, W): N2D2 cells are 2-D"
_OP = "operator outside N2D2's ONNX set and n2d2py's extensions: "
_TYPE = "non-float graph input: N2D2 computes in Float32"
_BIG = ("float64 input with values beyond float32's range (the stored input is uninitialised "
        "memory, up to 1e+228)")
_BATCH = "constant operand varying along the batch axis (tied to one batch size)"
SKIPS = {
    "test_AvgPool3d": _3D, "test_AvgPool3d_stride": _3D,
    "test_AvgPool3d_stride1_pad0_gpu_input": _3D, "test_Conv3d": _3D,
    "test_Conv3d_dilated": _3D, "test_Conv3d_dilated_strided": _3D, "test_Conv3d_groups": _3D,
    "test_Conv3d_no_bias": _3D, "test_Conv3d_stride": _3D, "test_Conv3d_stride_padding": _3D,
    "test_MaxPool3d": _3D, "test_MaxPool3d_stride": _3D, "test_MaxPool3d_stride_padding": _3D,
    "test_Embedding": _TYPE + " (Gather of int64 indices)",
    "test_Embedding_sparse": _TYPE + " (Gather of int64 indices)",
    "test_operator_chunk": "Split along the batch axis of a 1-D tensor (n2d2py computes "
                           "sample by sample)",
    "test_operator_pow": "Pow of two computed tensors: the exponent must be a constant",
    "test_operator_symbolic_override": _OP + "InstanceNormalization",
    "test_ConstantPad2d": "Pad value 2: N2D2's Padding cell pads with zeros",
    "test_ReflectionPad2d": "Pad mode reflect: N2D2 pads with zeros",
    "test_ReplicationPad2d": "Pad mode edge: N2D2 pads with zeros",
    "test_operator_pad": "Pad mode reflect: N2D2 pads with zeros",
    "test_operator_add_broadcast": _BIG, "test_operator_add_size1_right_broadcast": _BIG,
    "test_operator_add_size1_singleton_broadcast": _BIG, "test_operator_addconstant": _BIG,
    "test_operator_non_float_params": _TYPE,
    "test_operator_addmm": "Gemm with a computed second operand: N2D2's Fc needs constant weights",
    "test_operator_mm": "Gemm with a computed second operand: N2D2's Fc needs constant weights",
    "test_operator_params": _BATCH, "test_PoissonNLLLLoss_no_reduce": _BATCH,
}
EXPECTED_SKIPS = 31   # change together with SKIPS, on purpose

CASES = [(kind, case) for kind in ("pytorch-converted", "pytorch-operator")
         for case in case_dirs(kind)]


def test_skip_list_is_exact():
    names = {case for _, case in CASES}
    assert len(SKIPS) == EXPECTED_SKIPS
    assert set(SKIPS) <= names, set(SKIPS) - names


@pytest.mark.parametrize("kind, case", [c for c in CASES if c[1] not in SKIPS],
                         ids=[c[1] for c in CASES if c[1] not in SKIPS])
def test_stored_case(kind, case):
    path, ins, outs = stored_case(kind, case)
    got = OnnxModel(path).run(ins)
    assert len(got) == len(outs)
    for y, ref in zip(got.values(), outs):
        assert y.shape == ref.shape
        numpy.testing.assert_allclose(y, ref, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("kind, case", [c for c in CASES if c[1] in SKIPS],
                         ids=[c[1] for c in CASES if c[1] in SKIPS])
def test_skipped_cases_are_refused(kind, case):
    path, ins, _ = stored_case(kind, case)
    with pytest.raises(OnnxError):
        OnnxModel(path).run(ins)


# -- light zoo models: dummy input as onnx/backend/test/runner generate_dummy_data ------------
LIGHT = sorted(f[:-5] for f in case_dirs("light") if f.endswith(".onnx"))
SLOW_LIGHT = {"light_vgg19"}   # ~27 s on one core here; the others take 1-7 s


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_LIGHT
                                  else n for n in LIGHT])
def test_light_model(name):
    path = os.path.join(DATA, "light", name + ".onnx")
    model = onnx.load(path)
    inits = {t.name for t in model.graph.initializer}
    feeds = {i.name: Runner.generate_dummy_data(i, seed=0, random=False)
             for i in model.graph.input if i.name not in inits}
    ref = load_tensor(os.path.join(DATA, "light", name + "_output_0.pb"))
    start = time.perf_counter()
    got = OnnxModel(path).run(feeds)
    elapsed = time.perf_counter() - start
    y = next(iter(got.values()))
    assert y.shape == ref.shape
    numpy.testing.assert_allclose(y, ref, rtol=RTOL, atol=ATOL)
    print(f"{name}: {elapsed:.1f} s")


def test_light_resnet50_cells():
    """The import itself: N2D2 names, one cell per Conv/BN/Pool/Fc/Sum/Softmax, ReLUs attached."""
    graph = import_onnx(os.path.join(DATA, "light", "light_resnet50.onnx"))
    types = [type(c).__name__ for c in graph.cells.values()]
    assert types.count("ConvCell") == 53 and types.count("BatchNormCell") == 53
    assert types.count("ElemWiseCell") == 16 and types.count("FcCell") == 1
    assert "ActivationCell" not in types     # every Relu became the activation of its producer
    assert graph.auto_targets == [(f"{n}.Target", n) for n, c in graph.cells.items()
                                  if type(c).__name__ == "SoftmaxCell"]
