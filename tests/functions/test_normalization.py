"""lrn (across channels, cuDNN/ONNX window) and normalize (L2/L1 over channels): forward against
naive float64 loops, torch and onnxruntime; gradients against finite differences."""
import numpy
import pytest

import n2d2py.functions as F
from n2d2py.autograd import Variable, check_backward
from n2d2py.backend import asnumpy
from n2d2py.errors import N2D2Error

RTOL_F32 = 1e-5
ATOL_F32 = 1e-6
RTOL_TORCH = 1e-5


def _naive_lrn(x, n, alpha, beta, k):
    """ONNX's LRN definition, one channel at a time (float64)."""
    x = x.astype(numpy.float64)
    C = x.shape[1]
    out = numpy.empty_like(x)
    for c in range(C):
        lo, hi = max(0, c - (n - 1) // 2), min(C - 1, c + -(-(n - 1) // 2))
        square_sum = (x[:, lo:hi + 1] ** 2).sum(axis=1)
        out[:, c] = x[:, c] / (k + alpha / n * square_sum) ** beta
    return out


LRN_CASES = [dict(n=5, alpha=1e-4, beta=0.75, k=2.0),   # N2D2 defaults
             dict(n=3, alpha=0.5, beta=0.6, k=1.0),
             dict(n=4, alpha=0.8, beta=0.75, k=1.5),    # even window: ONNX/cuDNN placement
             dict(n=1, alpha=0.3, beta=1.0, k=0.5),
             dict(n=9, alpha=0.2, beta=0.5, k=1.0)]     # window wider than the 6 channels


@pytest.mark.parametrize("kw", LRN_CASES, ids=lambda kw: f"n{kw['n']}")
def test_lrn_forward_backward(xp, rng, kw):
    x = rng.standard_normal((2, 6, 3, 2)).astype(numpy.float32) * 2
    y = F.lrn(xp.asarray(x), **kw)
    numpy.testing.assert_allclose(asnumpy(y.data), _naive_lrn(x, **kw), rtol=RTOL_F32, atol=ATOL_F32)
    check_backward(lambda v: F.lrn(v, **kw), (x.astype(numpy.float64),), rng=rng)


@pytest.mark.parametrize("n", [3, 5])
def test_lrn_against_torch(torch, rng, n):
    """torch divides alpha by n too; for odd n its window is the same centred one."""
    x = rng.standard_normal((2, 7, 4, 3)).astype(numpy.float32) * 3
    gy = rng.standard_normal(x.shape).astype(numpy.float32)
    v = Variable(x, requires_grad=True)
    y = F.lrn(v, n=n, alpha=0.3, beta=0.75, k=1.0)
    y.backward(gy)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.local_response_norm(tx, n, alpha=0.3, beta=0.75, k=1.0)
    ty.backward(torch.tensor(gy))
    numpy.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=RTOL_TORCH, atol=ATOL_F32)
    numpy.testing.assert_allclose(v.grad, tx.grad.numpy(), rtol=RTOL_TORCH, atol=1e-5)


@pytest.mark.parametrize("n", [3, 5, 7])  # onnxruntime rejects even sizes
def test_lrn_against_onnxruntime(rng, n):
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    h = onnx.helper
    x = rng.standard_normal((1, 6, 3, 3)).astype(numpy.float32) * 2
    graph = h.make_graph(
        [h.make_node("LRN", ["x"], ["y"], size=n, alpha=0.6, beta=0.75, bias=1.5)], "lrn",
        [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, list(x.shape))],
        [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)])
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 13)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"x": x})[0]
    numpy.testing.assert_allclose(F.lrn(x, n=n, alpha=0.6, beta=0.75, k=1.5).data, expected,
                                  rtol=RTOL_F32, atol=ATOL_F32)


def test_lrn_bad_window():
    with pytest.raises(N2D2Error, match="window size"):
        F.lrn(numpy.ones((1, 3, 2, 2), numpy.float32), n=0)


def _naive_normalize(x, norm):
    x = x.astype(numpy.float64)
    out = numpy.empty_like(x)
    for idx in numpy.ndindex(x.shape[0], *x.shape[2:]):
        v = x[(idx[0], slice(None)) + idx[1:]]
        scale = numpy.sqrt((v ** 2).sum() + 1e-6) if norm == "L2" else numpy.abs(v).sum() + 1e-6
        out[(idx[0], slice(None)) + idx[1:]] = v / scale
    return out


@pytest.mark.parametrize("norm", ["L2", "L1"])
@pytest.mark.parametrize("shape", [(2, 5, 3, 2), (3, 4)], ids=["NCHW", "NC"])
def test_normalize_forward_backward(xp, rng, norm, shape):
    x = rng.standard_normal(shape).astype(numpy.float32)
    if norm == "L1":
        x = numpy.where(numpy.abs(x) < 0.05, 0.2, x)   # |x| has a kink at 0
    y = F.normalize(xp.asarray(x), norm)
    numpy.testing.assert_allclose(asnumpy(y.data), _naive_normalize(x, norm),
                                  rtol=RTOL_F32, atol=ATOL_F32)
    check_backward(lambda v: F.normalize(v, norm), (x.astype(numpy.float64),), rng=rng)


@pytest.mark.parametrize("norm, p", [("L2", 2), ("L1", 1)])
def test_normalize_against_torch(torch, rng, norm, p):
    # torch divides by max(‖x‖, eps) and N2D2 by ‖x‖ with eps inside: equal for ‖x‖ ≫ eps
    x = rng.standard_normal((2, 8, 3, 3)).astype(numpy.float32)
    ours = F.normalize(x, norm).data
    theirs = torch.nn.functional.normalize(torch.tensor(x), p=p, dim=1).numpy()
    numpy.testing.assert_allclose(ours, theirs, rtol=RTOL_TORCH, atol=ATOL_F32)


def test_normalize_bad_norm():
    with pytest.raises(N2D2Error, match="Norm must be L1 or L2"):
        F.normalize(numpy.ones((1, 3), numpy.float32), "Linf")
