"""conv2d / deconv2d on oneDNN (float32 NumPy) against the GEMM kernels and the naive loops.

The oneDNN route and the GEMM route must give the same numbers up to float32 summation order;
float64, CuPy, negative pads and zero-upsampling must never reach oneDNN.
"""
import subprocess
import sys

import numpy
import pytest

import n2d2py.functions as F
from n2d2py import parallel
from n2d2py.autograd import Variable
from n2d2py.functions import _onednn, conv

import _reference_conv as ref  # tests/functions is on sys.path (no __init__.py, rootdir mode)
from test_conv import CONV_CASES, _case_id

pytestmark = pytest.mark.skipif(not _onednn.available(),
                                reason="oneDNN (onednn-cpu-gomp, x86-64 Linux) not loaded")

RTOL_F32 = 2e-5   # relative to the largest magnitude: float32 sums in another order
NON_NEGATIVE = [c for c in CONV_CASES if min(c[3]) >= 0]


def _gradients(x, W, b, stride, pads, dilation, groups, deconv=False):
    fn = F.deconv2d if deconv else F.conv2d
    xv, Wv, bv = (Variable(a, True) for a in (x, W, b))
    y = fn(xv, Wv, bv, stride, pads, dilation, groups)
    gy = numpy.cos(numpy.arange(y.size)).reshape(y.shape).astype(y.dtype)
    y.backward(gy)
    return y.data, xv.grad, Wv.grad


def _both_routes(monkeypatch, *args, **kwargs):
    fast = _gradients(*args, **kwargs)
    with monkeypatch.context() as m:
        m.setattr(_onednn, "available", lambda: False)
        gemm = _gradients(*args, **kwargs)
    return fast, gemm


def _assert_close(ours, theirs, names=("y", "gx", "gW")):
    for name, a, t in zip(names, ours, theirs):
        assert a.dtype == numpy.float32 and a.shape == t.shape, name
        numpy.testing.assert_allclose(a, t, rtol=0, atol=RTOL_F32 * max(abs(t).max(), 1.0),
                                      err_msg=name)


def _arrays(rng, x_shape, w_shape, n_out, dtype=numpy.float32):
    return tuple(rng.standard_normal(s).astype(dtype) for s in (x_shape, w_shape, (n_out,)))


@pytest.mark.parametrize("case", NON_NEGATIVE, ids=_case_id)
def test_conv2d_onednn_equals_gemm_route_and_naive_loops(rng, monkeypatch, case):
    x_shape, w_shape, stride, pads, dilation, groups = case
    x, W, b = _arrays(rng, (3,) + x_shape[1:], w_shape, w_shape[0])
    y_shape = (3, w_shape[0]) + conv.conv_output_size(x_shape[2:], w_shape[2:], stride, pads,
                                                       dilation)
    assert _onednn.implementation("forward", x.shape, W.shape, y_shape, stride, pads, dilation,
                                  groups) is not None, "oneDNN declined a supported case"
    fast, gemm = _both_routes(monkeypatch, x, W, b, stride, pads, dilation, groups)
    _assert_close(fast, gemm)
    want = ref.conv2d(x.astype(float), W.astype(float), b.astype(float), stride, pads, dilation,
                      groups)
    _assert_close(fast[:1], [want.astype(numpy.float32)])


@pytest.mark.parametrize("case", [((2, 3, 5, 4), (3, 2, 3, 3), (2, 2), (1, 1, 0, 1), (1, 1), 1),
                                  ((2, 4, 5, 5), (4, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 4),
                                  ((2, 2, 4, 4), (2, 3, 2, 2), (2, 2), (0, 0, 0, 0), (2, 1), 1)])
def test_deconv2d_onednn_equals_gemm_route(rng, monkeypatch, case):
    x_shape, w_shape, stride, pads, dilation, groups = case
    x, W, b = _arrays(rng, x_shape, w_shape, w_shape[1] * groups)
    fast, gemm = _both_routes(monkeypatch, x, W, b, stride, pads, dilation, groups, deconv=True)
    _assert_close(fast, gemm)


def test_resnet_layers_run_a_jit_kernel():
    """The fast path is really taken on ResNet-20's shapes (not oneDNN's reference loops)."""
    for kind in ("forward", "data", "weights"):
        for x_shape, o, stride in (((8, 16, 32, 32), 16, 1), ((8, 16, 32, 32), 32, 2)):
            oh = x_shape[2] // stride
            name = _onednn.implementation(kind, x_shape, (o, x_shape[1], 3, 3),
                                          (8, o, oh, oh), (stride, stride), (1, 1, 1, 1))
            assert name and not name.startswith("ref"), (kind, name)


def test_what_never_reaches_onednn(rng):
    x64, W64, _ = _arrays(rng, (2, 3, 6, 6), (4, 3, 3, 3), 4, numpy.float64)
    x32, W32 = x64.astype(numpy.float32), W64.astype(numpy.float32)
    pads = (1, 1, 1, 1)
    assert _onednn.forward(x64, W64, (6, 6), (1, 1), pads, (1, 1), 1) is None   # float64
    assert _onednn.forward(x32, W64, (6, 6), (1, 1), pads, (1, 1), 1) is None   # mixed
    assert _onednn.forward(x32, W32, (5, 5), (1, 1), (-1, 0, 0, -1), (1, 1), 1) is None
    assert _onednn.forward(x32, W32, (13, 13), (1, 1), pads, (1, 1), 1, upsample=(2, 2)) is None
    y = _onednn.forward(x32, W32, (6, 6), (1, 1), pads, (1, 1), 1)
    want = ref.conv2d(x64, W64, numpy.zeros(4), (1, 1), pads, (1, 1), 1)
    numpy.testing.assert_allclose(y, want, rtol=0, atol=1e-5 * abs(want).max())


@pytest.mark.parametrize("batch", [1, 7, 16])
def test_thread_split_equals_one_thread(rng, batch):
    """Two threads split the batch (7: ranges of 3 and 4, two plans); weight gradients of the
    ranges are added; batch 1 runs whole."""
    x, W, b = _arrays(rng, (batch, 8, 9, 9), (16, 8, 3, 3), 16)
    opts = ((2, 2), (1, 1, 1, 1), (1, 1), 1)
    try:
        parallel.set_threads(1)
        one = _gradients(x, W, b, *opts)
        parallel.set_threads(2)
        two = _gradients(x, W, b, *opts)
    finally:
        parallel.set_threads(parallel._from_environment())
    _assert_close(two, one)


def test_plan_cache_is_bounded(rng, monkeypatch):
    monkeypatch.setattr(_onednn, "MAX_PLANS", 2)
    monkeypatch.setattr(_onednn, "_plans", _onednn.OrderedDict())
    for _ in range(2):
        for size in (5, 6, 7):
            x, W, _ = _arrays(rng, (2, 3, size, size), (4, 3, 3, 3), 4)
            y = _onednn.forward(x, W, (size, size), (1, 1), (1, 1, 1, 1), (1, 1), 1)
            want = ref.conv2d(x.astype(float), W.astype(float), numpy.zeros(4), (1, 1),
                              (1, 1, 1, 1), (1, 1), 1)
            numpy.testing.assert_allclose(y, want, rtol=0, atol=1e-5 * abs(want).max())
            assert len(_onednn._plans) <= 2


def test_environment_switch_turns_it_off():
    code = ("from n2d2py.functions import _onednn; print(_onednn.available()); "
            "print(_onednn.describe())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**__import__("os").environ, "N2D2PY_ONEDNN": "0"}, check=True)
    assert out.stdout.splitlines() == ["False", "oneDNN off (N2D2PY_ONEDNN=0): GEMM kernels"]
    on = _onednn.describe()
    assert on.startswith("oneDNN 3.") and "kernel" in on and "None" not in on, on


def test_chunked_batch_equals_whole_batch(rng, monkeypatch):
    """A small chunk budget: 2 items per call and a short last chunk (7 = 2+2+2+1); the weight
    gradients of the chunks are summed."""
    x, W, b = _arrays(rng, (7, 4, 8, 8), (6, 4, 3, 3), 6)
    opts = ((1, 1), (1, 1, 1, 1), (1, 1), 1)
    whole = _gradients(x, W, b, *opts)
    monkeypatch.setattr(_onednn, "CHUNK_BYTES", 2 * 4 * (4 * 64 + 6 * 64))
    calls = []
    run = _onednn._Plan.run
    monkeypatch.setattr(_onednn._Plan, "run", lambda self, lib, a, *rest:
                        calls.append(len(a[0])) or run(self, lib, a, *rest))
    chunked = _gradients(x, W, b, *opts)
    assert max(calls) == 2 and 1 in calls
    _assert_close(chunked, whole)


@pytest.mark.parametrize("threads,chunk_items", [(1, None), (2, None), (1, 2), (2, 2)])
@pytest.mark.parametrize("stride", [1, 2])
def test_backward_in_one_pass_equals_data_then_weights(rng, monkeypatch, threads, chunk_items,
                                                       stride):
    """Conv2d's backward runs both gradients per batch chunk (gy reordered once): the same
    bits as the two separate passes, on 1 and 2 threads, whole and in chunks of 2 items."""
    x, W, _ = _arrays(rng, (7, 16, 8, 8), (16, 16, 3, 3), 16)
    opts = ((stride, stride), (1, 1, 1, 1), (1, 1), 1)
    y = _onednn.forward(x, W, conv.conv_output_size((8, 8), (3, 3), *opts[:3]), *opts)
    gy = rng.standard_normal(y.shape).astype(numpy.float32)
    if chunk_items:
        monkeypatch.setattr(_onednn, "CHUNK_BYTES", chunk_items * 4 * (x[0].size + y[0].size))
    reorders = []
    execute = _onednn._execute
    monkeypatch.setattr(_onednn, "_execute", lambda lib, p, s, args: reorders.append(
        tuple(a for a, _ in args) == (_onednn._ARG_FROM, _onednn._ARG_TO)) or
        execute(lib, p, s, args))
    try:
        parallel.set_threads(threads)
        gx = _onednn.backward_data(gy, W, (8, 8), *opts)
        gW = _onednn.backward_weights(x, gy, W.shape, *opts)
        separate = sum(reorders)
        reorders.clear()
        both = _onednn.backward(x, gy, W, *opts)
        together = sum(reorders)
    finally:
        parallel.set_threads(parallel._from_environment())
    assert numpy.array_equal(both[0], gx) and numpy.array_equal(both[1], gW)
    chunks = -(-7 // chunk_items) if chunk_items else min(threads, 7)
    data, weights = (_onednn._plan(k, x.shape, W.shape, y.shape, *opts)[1] for k in
                     ("data", "weights"))
    assert data.operands[0].reorder is not None   # gy: NCHW -> oneDNN's blocked layout
    same_layout = _onednn._state["quick"].dnnl_memory_desc_equal(data.operands[0].md,
                                                                 weights.operands[1].md)
    assert same_layout or stride == 2   # the strided input-gradient kernel takes another one
    assert together == separate - (chunks if same_layout else 0)   # gy reordered once a chunk

def test_conv2d_backward_takes_the_one_pass_route(rng, monkeypatch):
    calls = []
    backward = _onednn.backward
    monkeypatch.setattr(_onednn, "backward", lambda *a: calls.append(1) or backward(*a))
    x, W, b = _arrays(rng, (4, 8, 6, 6), (8, 8, 3, 3), 8)
    fast = _gradients(x, W, b, (1, 1), (1, 1, 1, 1), (1, 1), 1)
    assert calls == [1]
    monkeypatch.setattr(_onednn, "available", lambda: False)
    _assert_close(fast, _gradients(x, W, b, (1, 1), (1, 1, 1, 1), (1, 1), 1))
