"""Batch-split threads (``n2d2py/parallel.py``): every kernel that splits the batch gives the
one-thread result (bit for bit where each output element is computed by one thread; within
float rounding where per-thread partial sums are added), and one thread runs inline."""
import threading

import numpy
import pytest

import n2d2py.functions as F
from n2d2py import parallel
from n2d2py.autograd import Variable
from n2d2py.quantizers.sat import SATActQuantize


@pytest.fixture
def two_threads():
    before = parallel.threads()
    parallel.set_threads(2)
    yield
    parallel.set_threads(before)


def run(fn, arrays, gy_seed=1):
    vs = [Variable(a, requires_grad=True) for a in arrays]
    y = fn(*vs)
    gy = numpy.random.default_rng(gy_seed).standard_normal(y.shape).astype(numpy.float32)
    y.backward(gy)
    return [y.data] + [v.grad for v in vs]


CONVS = [  # x shape, W shape, stride, padding, groups
    ((8, 4, 12, 12), (6, 4, 3, 3), 1, 1, 1),
    ((8, 4, 12, 12), (6, 4, 3, 3), 2, 1, 1),            # col2im route
    ((8, 6, 10, 10), (6, 1, 3, 3), 1, 1, 6),             # depthwise
    ((8, 6, 10, 10), (6, 1, 3, 3), 2, (0, 1, 1, 2), 6),  # depthwise, stride 2, uneven pads
    ((8, 16, 5, 5), (30, 16, 5, 5), 1, 0, 1),            # 1x1 output (LeNet conv3)
    ((8, 1, 16, 16), (6, 1, 5, 5), 1, 0, 1),             # tiny K: per-item weight gradient
]


@pytest.mark.parametrize("case", CONVS)
def test_conv_two_threads_equal_one(rng, case, monkeypatch):
    x_shape, w_shape, stride, padding, groups = case
    x = rng.standard_normal(x_shape).astype(numpy.float32)
    W = rng.standard_normal(w_shape).astype(numpy.float32)

    def conv(x, W):
        return F.conv2d(x, W, stride=stride, padding=padding, groups=groups)
    before = parallel.threads()
    parallel.set_threads(1)
    one = run(conv, (x, W))
    parallel.set_threads(2)
    try:
        two = run(conv, (x, W))
    finally:
        parallel.set_threads(before)
    assert numpy.array_equal(one[0], two[0])            # y: each item by one thread
    assert numpy.array_equal(one[1], two[1])            # gx: likewise
    # gW: partial sums in another order; float32 tolerance relative to the largest value
    numpy.testing.assert_allclose(two[2], one[2], rtol=0, atol=1e-5 * abs(one[2]).max())


ELEMENTWISE = {  # name -> a function of (x, scale, bias) with element-wise split passes inside
    "batchnorm+relu6": lambda x, scale, bias: F.relu(F.batch_norm(
        x, scale, bias, numpy.zeros(5, numpy.float32), numpy.ones(5, numpy.float32)),
        clipping=1.0),
    "max_pool": lambda x, scale, bias: F.max_pool2d(x, (2, 2)),
    "max_pool_3x3_overlapping": lambda x, scale, bias: F.max_pool2d(x + x, (3, 3), (1, 1)),
    "sat_activation": lambda x, scale, bias: SATActQuantize(15, "half_away").apply(
        x, numpy.float32([1.5])),
}


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_chains_two_threads_equal_one(rng, monkeypatch, name):
    """Batch ranges across threads and cache-sized chunks within them: the same bits (sums of
    per-thread parts, BatchNorm's statistics, within float rounding)."""
    monkeypatch.setattr(parallel, "MIN_ELEMENTS_PER_THREAD", 16)
    monkeypatch.setattr(parallel, "CHUNK_ELEMENTS", 100)
    x = rng.standard_normal((8, 5, 6, 6)).astype(numpy.float32) + 0.5
    scale = rng.standard_normal(5).astype(numpy.float32)
    bias = rng.standard_normal(5).astype(numpy.float32)
    before = parallel.threads()
    parallel.set_threads(1)
    monkeypatch.setattr(parallel, "CHUNK_ELEMENTS", 1 << 30)
    one = run(ELEMENTWISE[name], (x, scale, bias))
    monkeypatch.setattr(parallel, "CHUNK_ELEMENTS", 100)
    parallel.set_threads(2)
    try:
        two = run(ELEMENTWISE[name], (x, scale, bias))
    finally:
        parallel.set_threads(before)
    for a, b in zip(one, two):
        if name == "batchnorm+relu6":
            numpy.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
        else:
            assert numpy.array_equal(a, b)


def test_split_ranges_cover_the_batch_once(two_threads):
    seen, names = [], set()

    def body(lo, hi):
        seen.append((lo, hi))
        names.add(threading.current_thread().name)
        return hi - lo
    assert parallel.split(numpy, 9, body) in ([4, 5],)
    assert sorted(seen) == [(0, 4), (4, 9)] and len(names) == 2
    seen.clear()
    assert parallel.split(numpy, 3, body, min_items=2) == [3]   # too small to share
    assert seen == [(0, 3)]


def test_one_thread_runs_inline():
    before = parallel.threads()
    parallel.set_threads(1)
    try:
        assert parallel.split(numpy, 100, lambda lo, hi: threading.current_thread().name) \
            == [threading.current_thread().name]
    finally:
        parallel.set_threads(before)


def test_errors_in_a_range_reach_the_caller(two_threads):
    def body(lo, hi):
        if lo:
            raise ValueError("second range")
        return 0
    with pytest.raises(ValueError, match="second range"):
        parallel.split(numpy, 8, body)


def test_thread_count_from_environment(monkeypatch):
    for name in ("N2D2PY_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    assert parallel._from_environment() == 3
    monkeypatch.setenv("N2D2PY_THREADS", "2")
    assert parallel._from_environment() == 2


def test_forked_child_gets_its_own_threads(two_threads):
    """A pool made before ``fork`` has no threads in the child (the data loader forks): the
    child must make its own instead of waiting forever on the parent's."""
    import multiprocessing
    parallel.split(numpy, 8, lambda lo, hi: hi - lo)    # the parent's pool exists
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        assert pool.apply_async(_split_in_child).get(timeout=20) == [4, 4]


def _split_in_child():
    return parallel.split(numpy, 8, lambda lo, hi: hi - lo)


def test_an_error_in_the_callers_range_waits_for_the_others(two_threads):
    """The caller's own range fails: the other range still ends before split raises (no
    range keeps running past the call), and the workers take the next split."""
    import time
    finished = []

    def body(lo, hi):
        if lo == 0:
            raise KeyError("first range")
        time.sleep(0.05)
        finished.append((lo, hi))
        return 1
    with pytest.raises(KeyError, match="first range"):
        parallel.split(numpy, 8, body)
    assert finished == [(4, 8)]
    assert parallel.split(numpy, 8, lambda lo, hi: hi - lo) == [4, 4]


def test_splits_from_two_threads_at_once_each_get_their_ranges(two_threads):
    """Two user threads splitting at the same time: each call gets its own ranges, whole."""
    results, errors = {}, []

    def user(tag):
        try:
            for i in range(200):
                got = parallel.split(numpy, 10 + i % 3, lambda lo, hi: (tag, lo, hi))
                n = 10 + i % 3
                assert got == [(tag, 0, n // 2), (tag, n // 2, n)], got
            results[tag] = True
        except BaseException as e:   # reported below, in the test's thread
            errors.append(e)
    users = [threading.Thread(target=user, args=(t,)) for t in "ab"]
    for t in users:
        t.start()
    for t in users:
        t.join(60)
    assert not errors and results == {"a": True, "b": True}


def test_set_threads_stops_the_workers():
    before = parallel.threads()
    parallel.set_threads(2)
    parallel.split(numpy, 4, lambda lo, hi: None)
    workers = [t for t in threading.enumerate() if t.name == "n2d2py-split"]
    assert workers
    parallel.set_threads(before)
    for t in workers:
        t.join(5)
        assert not t.is_alive()
