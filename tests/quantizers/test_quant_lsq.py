"""LSQ weight and activation quantizers: N2D2's unit tests regenerated,
step-size init, gradient scale, the update sign, PyTorch's learnable fake-quant as an oracle,
and the step-size state files."""
import math

import numpy
import pytest

from mt19937 import uniform_pair, uniform_tensor
from n2d2py.autograd import Variable, check_backward
from n2d2py.errors import IniError, WeightsError
from n2d2py.build import build_cells_from
from n2d2py.ini import parse_ini_text
from n2d2py.quantizers import LSQActQuantizer, LSQWeightQuantizer, make_weight_quantizer
from n2d2py.quantizers.lsq import LSQQuantize, lsq_weight_range

N2D2_ATOL = 1e-3   # N2D2's assertion tolerance
GS_RTOL = 1e-5     # step gradient: a float32 sum of up to 25000 terms vs a float64 reference
TORCH_RTOL = 1e-5  # PyTorch sums in a different order
LR = 0.01          # the default SGD rate of N2D2's quantizer solver

# activations: (nbOutputs, nbChannel, R, s); weights: (O, C, kH, kW, R, s) — from N2D2's tuples
ACT_CASES = [(10, 4, 255, 0.2), (16, 8, 3, 0.2), (1, 4, 127, 0.05), (4, 1, 31, 0.01),
             (4, 16, 1023, 0.05), (16, 8, 16383, 0.2)]
CELL_CASES = [(4, 4, 1, 1, 255, 0.2), (4, 4, 1, 1, 15, 0.2), (4, 4, 3, 3, 15, 0.2),
              (4, 4, 5, 5, 255, 0.05), (4, 4, 7, 7, 255, 0.01), (4, 4, 7, 7, 127, 1.0),
              (16, 8, 3, 3, 3, 2.0)]


def c_round(x):
    return numpy.sign(x) * numpy.floor(numpy.abs(x) + 0.5)


def reference_lsq(x, s, qn, qp, g):
    """N2D2's test formulas in float64: y, g_x, g_s (g the incoming gradient)."""
    v = x.astype(numpy.float64) / s
    y = c_round(numpy.clip(v, qn, qp)) * s
    gx = g * ((v > qn) & (v < qp))
    e = numpy.where(v <= qn, qn, numpy.where(v >= qp, qp, c_round(v) - v))
    return y, gx, (g.astype(numpy.float64) * e).sum()


@pytest.mark.parametrize("O, C, R, s", ACT_CASES)
def test_n2d2_lsq_activation_propagate(O, C, R, s):
    x = uniform_tensor(28 * 28 * O * C * 8, -3.0, 3.0, (1, O, 28, 28))
    q = LSQActQuantizer(range=R, step_size_init=s, set_opt_init_step_size=False)
    y = q(Variable(x)).data
    numpy.testing.assert_allclose(y, reference_lsq(x, s, 0, R, x)[0], atol=N2D2_ATOL, rtol=0)


@pytest.mark.parametrize("O, C, R, s", ACT_CASES)
def test_n2d2_lsq_activation_backpropagate(O, C, R, s):
    x, g = uniform_pair(28 * 28 * O * C * 8, -3.0, 3.0, -1.0, 1.0, (1, O, 28, 28))
    q = LSQActQuantizer(range=R, step_size_init=s, set_opt_init_step_size=False)
    X = Variable(x, requires_grad=True)
    q(X).backward(g)
    _, gx, sum_ge = reference_lsq(x, numpy.float32(s), 0, R, g)
    numpy.testing.assert_allclose(X.grad, gx, atol=N2D2_ATOL, rtol=0)
    G = 1 / math.sqrt(x.size * R)  # numel of the batch tensor
    assert q.step_param.grad[0] == pytest.approx(G * sum_ge, abs=N2D2_ATOL, rel=GS_RTOL)


@pytest.mark.parametrize("O, C, kH, kW, R, s", CELL_CASES)
def test_n2d2_lsq_cell_propagate_backpropagate_update(O, C, kH, kW, R, s):
    w = uniform_tensor(28 * 28 * O * C * kH * kW * 8, -1.0, 1.0, (O, C, kH, kW))
    q = LSQWeightQuantizer(range=R, step_size_init=s, set_opt_init_step_size=False)
    qn, qp = lsq_weight_range(R)
    W = Variable(w, requires_grad=True)
    (Wq,) = q([W])
    # N2D2's test feeds diff = w, a negative gradient: our ordinary gradient is −w
    Wq.backward(-w)
    y, diff_w, sum_we = reference_lsq(w, numpy.float32(s), qn, qp, w)
    diff_s = sum_we / math.sqrt(w.size * qp)
    numpy.testing.assert_allclose(Wq.data, y, atol=N2D2_ATOL, rtol=0)
    numpy.testing.assert_allclose(-W.grad, diff_w, atol=N2D2_ATOL, rtol=0)
    step = q.step_param
    assert -step.grad[0] == pytest.approx(diff_s, abs=N2D2_ATOL, rel=GS_RTOL)
    # update: N2D2's s_new = s + 0.01·diff_s is our s − lr·grad (the CUDA test's sign check)
    s_new = step.data[0] - numpy.float32(LR) * step.grad[0]
    assert s_new == pytest.approx(numpy.float32(s) + LR * diff_s, rel=1e-6)


def test_weight_range_integer_division():
    assert [lsq_weight_range(R) for R in (255, 15, 3, 1)] == [(-128, 127), (-8, 7), (-2, 1), (-1, 0)]
    with pytest.raises(IniError, match="Range: must be at least 2, got 1"):
        LSQWeightQuantizer(range=1)          # refused where the value is given, not at a step
    text = "[c]\nInput=sp\nType=Fc\nNbOutputs=2\nQWeight=LSQ\nQWeight.Range=1\n"
    with pytest.raises(IniError, match=r"n\.ini:6 \[c\] QWeight\.Range: must be at least 2"):
        build_cells_from(parse_ini_text(text, "n.ini"), (1, 2, 2))


def test_weight_step_init_from_first_tensor_and_grad_scale_from_all():
    w0 = uniform_tensor(7, -1.0, 1.0, (4, 3, 3, 3))
    w1 = uniform_tensor(8, -2.0, 2.0, (4, 5, 3, 3))
    q = LSQWeightQuantizer(range=15)
    W0, W1 = Variable(w0, requires_grad=True), Variable(w1, requires_grad=True)
    out = q([W0, W1])
    expected = numpy.float32(2.0) * numpy.float32(numpy.abs(w0.astype(numpy.float64)).mean() / math.sqrt(7))
    assert q.step_size == expected  # tensor k = 0 only, float64 mean, float32 product
    g0 = numpy.ones_like(w0)
    out[0].backward(g0)
    out[1].backward(numpy.zeros_like(w1))
    _, _, sum_ge = reference_lsq(w0, numpy.float32(expected), -8, 7, g0)
    assert q.step_param.grad[0] == pytest.approx(sum_ge / math.sqrt((w0.size + w1.size) * 7), rel=GS_RTOL)
    # the init happens once: later forwards keep the (learned) step
    q.step_param.data[0] = 0.5
    q([W0, W1])
    assert q.step_size == 0.5


def test_activation_step_init_and_batch_dependent_grad_scale():
    x = uniform_tensor(3, -1.0, 4.0, (2, 3, 4, 4))
    q = LSQActQuantizer(range=15)
    X = Variable(x, requires_grad=True)
    q(X).backward(numpy.ones_like(x))
    s0 = numpy.float32(2.0) * numpy.float32(numpy.abs(x.astype(numpy.float64)).mean() / math.sqrt(15))
    assert q.step_size == s0
    _, _, sum_ge = reference_lsq(x, s0, 0, 15, numpy.ones_like(x))
    assert q.step_param.grad[0] == pytest.approx(sum_ge / math.sqrt(x.size * 15), rel=GS_RTOL)
    q.step_param.clear_grad()
    half = x[:1]
    q(Variable(half)).backward(numpy.ones_like(half))  # G follows numel of this batch
    _, _, sum_half = reference_lsq(half, s0, 0, 15, numpy.ones_like(half))
    assert q.step_param.grad[0] == pytest.approx(sum_half / math.sqrt(half.size * 15), rel=GS_RTOL)


def test_strict_pass_through_at_bounds():
    s = numpy.float32(0.5)
    x = numpy.asarray([-4.0, -3.9, 0.0, 3.4, 3.5, 4.0], dtype=numpy.float32)  # v = −8, −7.8, 0, 6.8, 7, 8
    X = Variable(x, requires_grad=True)
    q = LSQWeightQuantizer(range=15, step_size_init=float(s), set_opt_init_step_size=False)
    q([X])[0].backward(numpy.ones_like(x))
    assert X.grad.tolist() == [0, 1, 1, 1, 0, 0]


def test_rounding_cpu_half_away_and_cuda_half_even():
    x = Variable(numpy.asarray([0.25, 0.75, -0.25], dtype=numpy.float32))
    away = LSQWeightQuantizer(range=15, step_size_init=0.5, set_opt_init_step_size=False)
    even = LSQWeightQuantizer(range=15, step_size_init=0.5, set_opt_init_step_size=False,
                              rounding="half_even")
    assert away([x])[0].data.tolist() == [0.5, 1.0, -0.5]
    assert even([x])[0].data.tolist() == [0.0, 1.0, -0.0]


def test_input_gradient_where_smooth(rng):
    # clamp regions: y = Qn·s or Qp·s, smooth in s; inside, the STE is not the true derivative
    x = numpy.concatenate([rng.uniform(-9, -4.1, 5), rng.uniform(3.6, 9, 5)])
    check_backward(lambda v, s: LSQQuantize(-8, 7, 1.0).apply(v, s),
                   [x, numpy.asarray([0.5])], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("qn, qp", [(-8, 7), (0, 255), (-128, 127)])
def test_against_torch_learnable_fake_quant(torch, rng, qn, qp):
    s = 0.05
    v = rng.uniform(qn - 3, qp + 3, 3000)
    v = v[(numpy.abs(v - qn) > 0.5) & (numpy.abs(v - qp) > 0.5)]  # torch gates on round(v)
    x = (v * s).astype(numpy.float32)
    g = rng.standard_normal(x.shape).astype(numpy.float32)
    G = 1 / math.sqrt(x.size * max(qp, 1))
    X, S = Variable(x, requires_grad=True), Variable(numpy.asarray([s], numpy.float32), requires_grad=True)
    y = LSQQuantize(qn, qp, G, rounding="half_even").apply(X, S)
    y.backward(g)
    tx = torch.tensor(x, requires_grad=True)
    ts = torch.tensor([s], dtype=torch.float32, requires_grad=True)
    ty = torch._fake_quantize_learnable_per_tensor_affine(tx, ts, torch.tensor([0.0]), qn, qp, G)
    ty.backward(torch.tensor(g))
    numpy.testing.assert_allclose(y.data, ty.detach().numpy(), atol=1e-7)
    numpy.testing.assert_allclose(X.grad, tx.grad.numpy(), atol=0)
    assert S.grad[0] == pytest.approx(float(ts.grad[0]), rel=TORCH_RTOL)


def test_step_state_files(tmp_path):
    q = make_weight_quantizer("LSQ", {"Range": "15", "StepSize": "0.1", "SetOptInitStepSize": "0"})
    assert (q.range, q.step_size, q.set_opt_init_step_size) == (15, numpy.float32(0.1), False)
    q.export_state(str(tmp_path), "conv1")
    assert (tmp_path / "conv1_alphaW_LSQ.syntxt").read_text() == "0.1000000015 "
    a = LSQActQuantizer(step_size_init=0.25, set_opt_init_step_size=False)
    a.export_state(str(tmp_path), "bn1")
    assert (tmp_path / "bn1_QAct_LSQ_StepSize.syntxt").read_text() == "0.25"
    # import: the imported step is kept (no re-initialisation at the first forward)
    r = LSQWeightQuantizer(range=15)
    r.import_state(str(tmp_path), "conv1")
    r([Variable(numpy.ones((2, 2), numpy.float32))])
    assert r.step_size == numpy.float32(0.1)
    ra = LSQActQuantizer()
    ra.import_state(str(tmp_path), "bn1")
    ra(Variable(numpy.ones((2, 2), numpy.float32)))
    assert ra.step_size == 0.25
    with pytest.raises(WeightsError, match="missing_alphaW_LSQ.syntxt"):
        r.import_state(str(tmp_path), "missing")
    r.import_state(str(tmp_path), "missing", ignore_missing=True)
    assert r.parameters()[0].group == "quantizer"
