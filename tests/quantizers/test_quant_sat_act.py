"""SAT activation quantizer (CG-PACT): N2D2's unit tests regenerated,
gradients, rounding options, α state file."""
import numpy
import pytest

from mt19937 import uniform_pair, uniform_tensor
from n2d2py.autograd import Variable, check_backward, no_grad
from n2d2py.errors import WeightsError
from n2d2py.quantizers import ACT_QUANTIZERS, SATActQuantizer, make_act_quantizer
from n2d2py.quantizers.sat import SATActQuantize

N2D2_ATOL = 1e-3      # N2D2's assertion tolerance
GALPHA_RTOL = 1e-5    # g_α sums ~6000-25000 float32 terms: our pairwise sum vs a float64 reference

# (nbOutputs, nbChannel, nbBits): a spread of N2D2's tuples, α = 1.5
N2D2_ACT_CASES = [(10, 4, 8), (4, 1, 8), (1, 4, 6), (4, 16, 4), (16, 8, 3), (16, 8, 2), (16, 8, 1)]


def c_round(x):
    return numpy.sign(x) * numpy.floor(numpy.abs(x) + 0.5)


@pytest.mark.parametrize("O, C, nb_bits", N2D2_ACT_CASES)
def test_n2d2_activation_propagate(O, C, nb_bits):
    x = uniform_tensor(28 * 28 * O * C * nb_bits, -3.0, 3.0, (1, O, 28, 28))
    R, alpha = 2 ** nb_bits, 1.5
    q = SATActQuantizer(range=R, alpha_init=alpha)
    y = q(Variable(x), training=True).data
    xc = numpy.clip(x.astype(numpy.float64), 0, alpha)
    ref = alpha * (1 / R) * c_round(R * (xc / alpha))  # N2D2's test formula (std::round)
    numpy.testing.assert_allclose(y, ref, atol=N2D2_ATOL, rtol=0)
    assert len(numpy.unique(y)) <= R + 1 and y.min() == 0 and y.max() == numpy.float32(alpha)


@pytest.mark.parametrize("O, C, nb_bits", N2D2_ACT_CASES)
def test_n2d2_activation_backpropagate(O, C, nb_bits):
    x, g = uniform_pair(28 * 28 * O * C * nb_bits, -3.0, 3.0, -1.0, 1.0, (1, O, 28, 28))
    R, alpha = 2 ** nb_bits, 1.5
    q = SATActQuantizer(range=R, alpha_init=alpha)
    X = Variable(x, requires_grad=True)
    q(X, training=True).backward(g)
    x64, g64 = x.astype(numpy.float64), g.astype(numpy.float64)
    ref_gx = g64 * ((x64 > 0) & (x64 <= alpha))
    qn = numpy.clip(x64, 0, alpha) / alpha
    d = numpy.where(x64 >= alpha, 1.0, numpy.rint(R * qn) / R - qn)
    numpy.testing.assert_allclose(X.grad, ref_gx, atol=N2D2_ATOL, rtol=0)
    (alpha_param,) = q.parameters()
    assert alpha_param.grad.shape == (1,)
    assert alpha_param.grad[0] == pytest.approx((g64 * d).sum(), abs=N2D2_ATOL, rel=GALPHA_RTOL)


def test_kernel_operation_order_bit_for_bit():
    # N2D2 CPU: x_c, q = x_c/a, q = round(R·q)/R, y = q·a, all float32
    x = uniform_tensor(1234, -1.0, 9.0, (2, 3, 4, 5))
    a, R = numpy.float32(6.0), numpy.float32(15)
    q = numpy.where(x < 0, 0, numpy.where(x < a, x, a)).astype(numpy.float32) / a
    expected = (c_round(R * q).astype(numpy.float32) / R) * a
    y = SATActQuantizer(range=15, alpha_init=6.0)(Variable(x)).data
    assert numpy.array_equal(y, expected)


def test_ties_round_half_away_on_cpu_half_even_for_cuda():
    x = Variable(numpy.asarray([0.5, 1.5, 2.5, 3.0, -1.0, 7.0], dtype=numpy.float32) / 15 * 6)
    R, a = 15, 6.0
    away = SATActQuantizer(range=R, alpha_init=a)(x).data * 15 / 6
    even = SATActQuantizer(range=R, alpha_init=a, rounding="half_even")(x).data * 15 / 6
    numpy.testing.assert_allclose(away, [1, 2, 3, 3, 0, 7], atol=1e-5)
    numpy.testing.assert_allclose(even, [0, 2, 2, 3, 0, 7], atol=1e-5)


def test_negative_alpha_uses_its_absolute_value_and_gets_no_sign_factor():
    x = Variable(numpy.asarray([-1.0, 0.3, 1.0, 2.0, 5.0], dtype=numpy.float32), requires_grad=True)
    q = SATActQuantizer(range=3, alpha_init=-2.0)
    y = q(x)
    numpy.testing.assert_allclose(y.data, [0, 0, 4 / 3, 2, 2], atol=1e-6)  # rnd(0.45) = 0
    y.backward(numpy.ones(5, dtype=numpy.float32))
    assert x.grad.tolist() == [0, 1, 1, 1, 0]  # x == a passes, x ≤ 0 and x > a block
    # d: 0 (x<0), rnd(0.45)/3 − 0.15 = −0.15, rnd(1.5)/3 − 0.5 = 1/6, 1 (x ≥ a), 1
    assert q.parameters()[0].grad[0] == pytest.approx(-0.15 + 1 / 6 + 2, abs=1e-6)
    assert q.alpha == -2.0  # stored signed, for the fusion pass (N2D2 uses it as is)


def test_alpha_gradient_where_smooth(rng):
    # Outside (0, a) the map is smooth in α (y = 0 or y = a), and the STE d is its derivative
    # (0 or 1). Inside, d = rnd(Rq)/R − q is the STE's value, not the true k/R (tested above).
    x = numpy.concatenate([rng.uniform(-3, -0.1, 7), rng.uniform(2.1, 5, 9)])
    check_backward(lambda v, a: SATActQuantize(255, "half_away").apply(v, a),
                   [x, numpy.asarray([2.0])], atol=1e-6, rtol=1e-6)


def test_input_gradient_is_the_clip_ste(rng):
    x = rng.uniform(-2, 8, (64,)).astype(numpy.float32)
    g = rng.standard_normal(64).astype(numpy.float32)
    X = Variable(x, requires_grad=True)
    SATActQuantizer(range=15, alpha_init=6.0)(X).backward(g)
    numpy.testing.assert_array_equal(X.grad, g * ((x > 0) & (x <= 6)))


def test_inference_records_nothing():
    q = SATActQuantizer(range=15, alpha_init=6.0)
    with no_grad():
        y = q(Variable(numpy.ones((1, 2), numpy.float32), requires_grad=True), training=False)
    assert y.creator is None


def test_registry_keys_and_defaults():
    q = ACT_QUANTIZERS.get("SAT")()
    assert (q.range, q.alpha_init, q.alpha) == (255, 1.0, 1.0)  # Alpha defaults to 1.0 in the code
    q = make_act_quantizer("SAT", {"Range": "15", "Alpha": "6.0"})
    assert (q.range, q.alpha) == (15, 6.0)
    p = q.parameters()[0]
    assert p.group == "quantizer" and p.shape == (1,) and p.dtype == numpy.float32


def test_alpha_state_file_roundtrip(tmp_path, n2d2_ini):
    q = SATActQuantizer(range=255, alpha_init=6.0)
    q.parameters()[0].data[0] = numpy.float32(5.988358498)
    q.export_state(str(tmp_path), "bn1")
    text = (tmp_path / "bn1_QAct_SAT_Alpha.syntxt").read_text()
    folder = n2d2_ini / "tests_data" / "mnist_model" / "weights_LeNet_w4_a8"
    assert text == (folder / "bn1_QAct_SAT_Alpha.syntxt").read_text() == "5.988358498"
    r = SATActQuantizer()
    r.import_state(str(folder), "fc1")
    assert r.alpha == numpy.float32(5.972333431)


def test_alpha_state_errors(tmp_path):
    q = SATActQuantizer(alpha_init=3.0)
    with pytest.raises(WeightsError, match="cellX_QAct_SAT_Alpha.syntxt"):
        q.import_state(str(tmp_path), "cellX")
    q.import_state(str(tmp_path), "cellX", ignore_missing=True)
    assert q.alpha == 3.0
    (tmp_path / "bad_QAct_SAT_Alpha.syntxt").write_text("abc")
    with pytest.raises(WeightsError, match="bad_QAct_SAT_Alpha"):
        q.import_state(str(tmp_path), "bad")
    (tmp_path / "two_QAct_SAT_Alpha.syntxt").write_text("1 2")
    with pytest.raises(WeightsError, match="larger than expected"):
        q.import_state(str(tmp_path), "two")


@pytest.mark.parametrize("rounding", ["half_away", "half_even"])
def test_batch_chunks_give_the_whole_array_bits(rng, monkeypatch, rounding):
    """The forward passes run per cache-sized batch chunk: the same bits (y, g_x, g_α) as one
    chunk holding the whole batch, with NaN, ±inf, ±0 and exact ties among the inputs."""
    from n2d2py.quantizers import sat
    x = (rng.standard_normal((9, 3, 7, 5)) * 4).astype(numpy.float32)
    x.flat[::17] = numpy.round(x.flat[::17] * 3.75) / 3.75      # ties of R=15 on α=4
    x.flat[5], x.flat[50], x.flat[77], x.flat[78] = numpy.nan, numpy.inf, -0.0, -numpy.inf
    g = rng.standard_normal(x.shape).astype(numpy.float32)

    def run(chunk_elements):
        monkeypatch.setattr(sat, "CHUNK_ELEMENTS", chunk_elements)
        X, A = Variable(x, requires_grad=True), Variable(numpy.float32([4.0]), requires_grad=True)
        y = sat.SATActQuantize(15, rounding).apply(X, A)
        y.backward(g)
        return y.data, X.grad, A.grad
    whole, chunked = run(1 << 30), run(100)
    for a, b in zip(whole, chunked):
        assert numpy.array_equal(a, b, equal_nan=True)


def test_two_threads_give_the_one_thread_bits(rng, monkeypatch):
    """Forward leaves shared between two threads, backward batch chunks too: the same y,
    g_x and g_α."""
    from n2d2py import parallel
    from n2d2py.quantizers import sat
    monkeypatch.setattr(sat, "CHUNK_ELEMENTS", 256)
    monkeypatch.setattr(parallel, "MIN_ELEMENTS_PER_THREAD", 16)
    x = (rng.standard_normal((16, 3, 9, 9)) * 3).astype(numpy.float32)
    g = rng.standard_normal(x.shape).astype(numpy.float32)

    def run(threads):
        before = parallel.threads()
        parallel.set_threads(threads)
        try:
            X, A = Variable(x, requires_grad=True), Variable(numpy.float32([2.5]), requires_grad=True)
            y = sat.SATActQuantize(15, "half_away").apply(X, A)
            y.backward(g)
        finally:
            parallel.set_threads(before)
        return y.data, X.grad, A.grad
    one, two = run(1), run(2)
    for a, b in zip(one, two):
        assert numpy.array_equal(a, b)
    qn = numpy.clip(x, 0, numpy.float32(2.5)) / numpy.float32(2.5)
    d = numpy.where(x >= 2.5, 1.0, numpy.floor(15 * qn + 0.5) / 15 - qn)
    assert one[2][0] == pytest.approx(float((g.astype(numpy.float64) * d).sum()), rel=1e-5)


def test_backward_writes_the_input_gradient_over_its_own_saved_array():
    """g_x takes the memory of the saved d (private to the Function): the right values, and
    a second backward through the same graph says why it cannot run."""
    x = numpy.asarray([-1.0, 0.3, 1.0, 2.0, 5.0], dtype=numpy.float32)
    g = numpy.asarray([1.0, 2.0, 3.0, 4.0, 5.0], dtype=numpy.float32)
    X, A = Variable(x, requires_grad=True), Variable(numpy.float32([2.0]), requires_grad=True)
    y = SATActQuantize(3, "half_away").apply(X, A)
    y.backward(g)
    assert X.grad.tolist() == [0, 2, 3, 4, 0] and g.tolist() == [1, 2, 3, 4, 5]
    assert A.grad[0] == pytest.approx(2 * -0.15 + 3 / 6 + 4 + 5, abs=1e-6)
    with pytest.raises(RuntimeError, match="backward already ran"):
        y.backward(g)
    X2 = Variable(x)   # no gradient for x: only g_α
    A2 = Variable(numpy.float32([2.0]), requires_grad=True)
    SATActQuantize(3, "half_away").apply(X2, A2).backward(g)
    assert A2.grad[0] == A.grad[0] and X2.grad is None
