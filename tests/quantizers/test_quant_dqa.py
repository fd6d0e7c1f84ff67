"""DQA (Boukli Hacene et al., eq. 1-14): the quantizers against their formulas, the
attention mix and its finite-difference gradients, the temperature schedule, the α
normalisation and initialisation, the regulariser, and the end state (one-hot attention)."""
import math

import numpy
import pytest

from n2d2py.autograd import Parameter, Variable, check_backward, no_grad
from n2d2py.errors import IniError
from n2d2py.quantizers import make_weight_quantizer
from n2d2py.quantizers.dqa import (AttentionMix, TemperedSoftmax, apply_quantizer, initial_alpha,
                                   temperature)


def test_minmax_sawb_bwn_twn(rng):
    w = rng.standard_normal(300)
    q = apply_quantizer(numpy, w, "MinMax", 2)
    levels = w.min() + numpy.arange(4) * (w.max() - w.min()) / 3           # eq. 8
    numpy.testing.assert_allclose(q, levels[numpy.abs(w[:, None] - levels).argmin(1)], atol=1e-12)
    beta = numpy.abs(w).mean()
    numpy.testing.assert_allclose(apply_quantizer(numpy, w, "BWN", 1), numpy.where(w >= 0, beta, -beta))
    delta = 0.7 * numpy.abs(w).mean()
    b2 = numpy.abs(w)[numpy.abs(w) > delta].mean()                          # eq. 13
    numpy.testing.assert_allclose(apply_quantizer(numpy, w, "TWN", 2),
                                  numpy.sign(w) * (numpy.abs(w) > delta) * b2)
    s = apply_quantizer(numpy, w, "SAWB", 2)
    assert len(numpy.unique(numpy.round(s, 9))) <= 4
    # SAWB's α* beats min-max's range on the MSE (what eq. 10 minimises)
    mm = apply_quantizer(numpy, numpy.clip(w, -numpy.abs(w).max(), numpy.abs(w).max()), "MinMax", 2)
    assert ((w - s) ** 2).mean() <= ((w - mm) ** 2).mean() + 1e-12


def test_temperature_schedule_and_init():
    assert temperature(100, 0.03, 1000, 0) == 100
    assert temperature(100, 0.03, 1000, 1000) == pytest.approx(0.03)
    psi = math.exp(math.log(0.03 / 100) / 1000)                               # Algorithm 1
    assert temperature(100, 0.03, 1000, 250) == pytest.approx(100 * psi ** 250)
    assert initial_alpha([2, 4, 8]) == pytest.approx([12 / 14, 10 / 14, 6 / 14])  # eq. 14


def test_mix_gradients_by_finite_differences(rng):
    w = rng.standard_normal((5, 4))
    specs = [("MinMax", 2), ("MinMax", 4), ("MinMax", 8)]
    check_backward(lambda al: AttentionMix(specs, 64).apply(Variable(w),
                                                            TemperedSoftmax(0.7).apply(al)),
                   [numpy.array([0.3, -0.2, 0.5])])
    a = numpy.array([0.2, 0.3, 0.5])
    y = AttentionMix(specs, 64).apply(w, a).data
    ref = sum(ak * apply_quantizer(numpy, w, k, n) for ak, (k, n) in zip(a, specs))
    numpy.testing.assert_allclose(y, ref, atol=1e-12)                         # eq. 1-3
    W = Variable(w, requires_grad=True)
    AttentionMix(specs, 64).apply(W, a / 2).backward(numpy.ones_like(w))
    numpy.testing.assert_allclose(W.grad, numpy.full_like(w, 0.5))           # STE: g·Σa


def test_training_steps_normalise_and_cool_down(rng):
    q = make_weight_quantizer("DQA", {"TemperatureSteps": "50", "Lambda": "5"})
    W = Parameter(rng.standard_normal((6, 6)).astype(numpy.float32))
    y = q([W])[0]
    alpha = q.alpha_param.data
    assert alpha.std() == pytest.approx(1.0, rel=1e-5)                       # α ← α/sd(α)
    assert q.temperature() == pytest.approx(100 * math.exp(math.log(0.03 / 100) / 50))
    r = q.penalty(total_weights=36)
    a = numpy.exp(alpha / q.temperature()) / numpy.exp(alpha / q.temperature()).sum()
    assert float(r.data) == pytest.approx(5 * (a * [1, 4, 16]).sum() / 36, rel=1e-5)  # eq. 6
    (r + y.data.sum() * 0).backward()
    assert q.alpha_param.grad is not None
    with pytest.raises(IniError, match="TemperatureSteps"):
        make_weight_quantizer("DQA", {})([W])


def test_ends_one_hot_on_the_lowest_bits(rng):
    q = make_weight_quantizer("DQA", {"TemperatureSteps": "40"})
    W = Parameter(rng.standard_normal((8, 8)).astype(numpy.float32))
    for _ in range(40):
        q([W])
        q.penalty(64).backward()
        q.alpha_param.data -= numpy.float32(0.1) * q.alpha_param.grad
        q.alpha_param.grad = None
    assert q.bits() == 2 and max(q.attention_values()) > 0.999
    with no_grad():
        numpy.testing.assert_allclose(q([W])[0].data, apply_quantizer(numpy, W.data, "MinMax", 2),
                                      atol=1e-5)


def test_state_round_trip(tmp_path):
    q = make_weight_quantizer("DQA", {"Quantizers": "BWN TWN MinMax8", "TemperatureSteps": "10"})
    assert q.nbits == [1, 2, 8]
    q.alpha_param.data[...] = [0.5, -1.0, 2.0]
    q.step = 7
    q.export_state(str(tmp_path), "conv2")
    r = make_weight_quantizer("DQA", {"Quantizers": "BWN TWN MinMax8", "TemperatureSteps": "10"})
    r.import_state(str(tmp_path), "conv2")
    numpy.testing.assert_allclose(r.alpha_param.data, [0.5, -1.0, 2.0])
    assert r.step == 7
    with pytest.raises(IniError, match="sorted"):
        make_weight_quantizer("DQA", {"Quantizers": "MinMax8 MinMax2"}).nbits
