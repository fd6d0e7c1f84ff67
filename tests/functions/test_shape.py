"""pad2d, reshape, flatten, transpose, resize: forward against NumPy/naive references, torch and
onnxruntime; gradients against finite differences."""
import math

import numpy
import pytest

import n2d2py.functions as F
from n2d2py.autograd import Variable, check_backward
from n2d2py.backend import asnumpy
from n2d2py.errors import N2D2Error, ShapeError

RTOL_F32 = 1e-5
ATOL_F32 = 1e-5
ATOL_ONNX = 1e-5


# -- pad2d -----------------------------------------------------------------------------------
def _naive_pad(x, top, bottom, left, right, value):
    n, c, h, w = x.shape
    out = numpy.full((n, c, h + top + bottom, w + left + right), value, dtype=numpy.float64)
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            si, sj = i - top, j - left
            if 0 <= si < h and 0 <= sj < w:
                out[:, :, i, j] = x[:, :, si, sj]
    return out


PADS = [(1, 2, 0, 3), (0, 0, 0, 0), (-1, -2, -1, 0), (2, -1, -2, 1)]


@pytest.mark.parametrize("pads", PADS, ids=["pad", "none", "crop", "mixed"])
def test_pad2d(xp, rng, pads):
    x = rng.standard_normal((2, 3, 5, 4)).astype(numpy.float32)
    y = F.pad2d(xp.asarray(x), *pads, value=0.5)
    numpy.testing.assert_array_equal(asnumpy(y.data), _naive_pad(x, *pads, 0.5))
    check_backward(lambda v: F.pad2d(v, *pads, value=0.5), (x.astype(numpy.float64),), rng=rng)


def test_pad2d_against_torch(torch, rng):
    x = rng.standard_normal((2, 3, 5, 4)).astype(numpy.float32)
    for top, bottom, left, right in PADS:
        ours = F.pad2d(x, top, bottom, left, right).data
        theirs = torch.nn.functional.pad(torch.tensor(x), (left, right, top, bottom)).numpy()
        numpy.testing.assert_array_equal(ours, theirs)


def test_pad2d_crop_everything_is_an_error():
    with pytest.raises(ShapeError, match="leaves nothing"):
        F.pad2d(numpy.zeros((1, 1, 3, 3), numpy.float32), -2, -1, 0, 0)


# -- reshape, flatten, transpose ---------------------------------------------------------------
def test_reshape_flatten_transpose(xp, rng):
    x = rng.standard_normal((2, 3, 4, 5)).astype(numpy.float32)
    d = xp.asarray(x)
    numpy.testing.assert_array_equal(asnumpy(F.reshape(d, (2, -1, 10)).data), x.reshape(2, 6, 10))
    flat = asnumpy(F.flatten(d).data)
    assert flat.shape == (2, 60)
    # N2D2's Fc order: c·H·W + y·W + x
    assert flat[1, 2 * 20 + 3 * 5 + 4] == x[1, 2, 3, 4]
    numpy.testing.assert_array_equal(asnumpy(F.transpose(d, (0, 1, 3, 2)).data),
                                     x.swapaxes(2, 3))
    x64 = x.astype(numpy.float64)
    check_backward(lambda v: F.reshape(v, (4, 30)), (x64,), rng=rng)
    check_backward(F.flatten, (x64,), rng=rng)
    check_backward(lambda v: F.transpose(v, (2, 0, 3, 1)), (x64,), rng=rng)


def test_reshape_transpose_errors():
    x = numpy.zeros((2, 3, 4), numpy.float32)
    with pytest.raises(ShapeError, match="cannot reshape"):
        F.reshape(x, (5, -1))
    with pytest.raises(ShapeError, match="not a permutation"):
        F.transpose(x, (0, 0, 1))


# -- resize -----------------------------------------------------------------------------------
def _naive_resize(x, out_h, out_w, mode, align_corners):
    """Per output pixel, the textbook coordinate maps (float64), mode by mode."""
    n, c, h, w = x.shape

    def src(o, size_in, size_out):
        if mode == "nearest":
            return min(math.floor(o * size_in / size_out), size_in - 1)
        if mode == "nearest_onnx":
            v = o * size_in / size_out
            return min(math.floor(v) if v - math.floor(v) <= 0.5 else math.ceil(v), size_in - 1)
        if align_corners:
            return o * (size_in - 1) / (size_out - 1) if size_out > 1 else 0.0
        if mode == "bilinear":
            return max((o + 0.5) * size_in / size_out - 0.5, 0.0)
        return o * size_in / size_out

    out = numpy.zeros((n, c, out_h, out_w))
    for oy in range(out_h):
        for ox in range(out_w):
            sy, sx = src(oy, h, out_h), src(ox, w, out_w)
            y0, x0 = int(sy), int(sx)
            y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
            fy, fx = sy - y0, sx - x0
            out[:, :, oy, ox] = ((1 - fy) * ((1 - fx) * x[:, :, y0, x0] + fx * x[:, :, y0, x1])
                                 + fy * ((1 - fx) * x[:, :, y1, x0] + fx * x[:, :, y1, x1]))
    return out


RESIZE_CASES = [
    ("nearest", False, (8, 6)), ("nearest", False, (3, 2)), ("nearest", False, (9, 7)),
    ("nearest_onnx", False, (12, 7)), ("nearest_onnx", False, (3, 2)),
    ("bilinear", True, (8, 6)), ("bilinear", False, (8, 6)), ("bilinear", False, (3, 5)),
    ("bilinear", True, (1, 2)),
    ("bilinear_tf", False, (8, 6)), ("bilinear_tf", True, (7, 5)), ("bilinear_tf", False, (2, 3)),
]
RESIZE_IDS = [f"{m}-ac{int(a)}-{o[0]}x{o[1]}" for m, a, o in RESIZE_CASES]


@pytest.mark.parametrize("mode, align_corners, out_hw", RESIZE_CASES, ids=RESIZE_IDS)
def test_resize_forward_and_backward(xp, rng, mode, align_corners, out_hw):
    x = rng.standard_normal((2, 2, 4, 3)).astype(numpy.float32)
    y = F.resize(xp.asarray(x), *out_hw, mode=mode, align_corners=align_corners)
    assert y.shape == (2, 2) + out_hw
    numpy.testing.assert_allclose(asnumpy(y.data), _naive_resize(x, *out_hw, mode, align_corners),
                                  rtol=RTOL_F32, atol=ATOL_F32)
    check_backward(lambda v: F.resize(v, *out_hw, mode=mode, align_corners=align_corners),
                   (x.astype(numpy.float64),), rng=rng)


TORCH_RESIZE = [("nearest", False, {"mode": "nearest"}),
                ("bilinear", True, {"mode": "bilinear", "align_corners": True}),
                ("bilinear", False, {"mode": "bilinear", "align_corners": False})]


@pytest.mark.parametrize("mode, align_corners, torch_kw", TORCH_RESIZE, ids=lambda v: str(v))
@pytest.mark.parametrize("out_hw", [(10, 7), (3, 2), (15, 12)])
def test_resize_against_torch(torch, rng, mode, align_corners, torch_kw, out_hw):
    x = rng.standard_normal((2, 3, 5, 4)).astype(numpy.float32)
    gy = rng.standard_normal((2, 3) + out_hw).astype(numpy.float32)
    v = Variable(x, requires_grad=True)
    y = F.resize(v, *out_hw, mode=mode, align_corners=align_corners)
    y.backward(gy)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.interpolate(tx, size=out_hw, **torch_kw)
    ty.backward(torch.tensor(gy))
    numpy.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=RTOL_F32, atol=ATOL_F32)
    numpy.testing.assert_allclose(v.grad, tx.grad.numpy(), rtol=RTOL_F32, atol=ATOL_F32)


ONNX_RESIZE = [("nearest_onnx", False, "nearest", "asymmetric", "round_prefer_floor"),
               ("nearest", False, "nearest", "asymmetric", "floor"),
               ("bilinear", False, "linear", "half_pixel", None),
               ("bilinear", True, "linear", "align_corners", None),
               ("bilinear_tf", False, "linear", "asymmetric", None)]


def _onnx_resize(x, out_hw, mode, coordinate_mode, nearest_mode):
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    h = onnx.helper
    attrs = {"mode": mode, "coordinate_transformation_mode": coordinate_mode}
    if nearest_mode:
        attrs["nearest_mode"] = nearest_mode
    sizes = numpy.array(x.shape[:2] + out_hw, dtype=numpy.int64)
    graph = h.make_graph(
        [h.make_node("Resize", ["x", "", "", "sizes"], ["y"], **attrs)], "resize",
        [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, list(x.shape))],
        [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        initializer=[onnx.numpy_helper.from_array(sizes, "sizes")])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 13)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.mark.parametrize("ours, align, onnx_mode, coord, nearest", ONNX_RESIZE,
                         ids=[c[0] + "-" + c[2] + "-" + c[3] for c in ONNX_RESIZE])
@pytest.mark.parametrize("out_hw", [(12, 7), (3, 2), (8, 8)])
def test_resize_against_onnxruntime(rng, ours, align, onnx_mode, coord, nearest, out_hw):
    x = rng.standard_normal((1, 2, 4, 3)).astype(numpy.float32)
    expected = _onnx_resize(x, out_hw, onnx_mode, coord, nearest)
    y = F.resize(x, *out_hw, mode=ours, align_corners=align)
    numpy.testing.assert_allclose(y.data, expected, rtol=RTOL_F32, atol=ATOL_ONNX)


def test_resize_bad_mode():
    with pytest.raises(N2D2Error, match="unknown mode 'cubic'"):
        F.resize(numpy.zeros((1, 1, 2, 2), numpy.float32), 4, 4, mode="cubic")
