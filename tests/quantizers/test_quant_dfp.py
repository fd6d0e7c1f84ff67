"""DFP and Po2 with QR/WQR (Wess et al. 2018, eq. 1-12): levels against the formulas,
QR/WQR values and finite-difference gradients, λ schedules, and the train/test forward switch."""
import math

import numpy
import pytest

from n2d2py.autograd import Parameter, Variable, check_backward, no_grad
from n2d2py.errors import IniError
from n2d2py.quantizers import make_weight_quantizer
from n2d2py.quantizers.dfp import QRTerm, dfp_quantize, exponent_n1, po2_quantize


def nearest(W, levels):
    levels = numpy.asarray(sorted(levels))
    return levels[numpy.abs(W[..., None] - levels).argmin(axis=-1)]


@pytest.mark.parametrize("bits", [2, 3, 4, 6])
def test_dfp_levels(rng, bits):
    W = rng.standard_normal(500).astype(numpy.float32) * 0.2
    s = numpy.abs(W).max()
    n1 = math.floor(math.log2(4 * s / 3))
    assert exponent_n1(numpy, W) == n1
    B = numpy.arange(-(2 ** (bits - 1) - 1), 2 ** (bits - 1))          # eq. 5
    levels = B / 2 ** (bits - 1) * 2.0 ** n1                            # eq. 6
    numpy.testing.assert_allclose(dfp_quantize(numpy, W, bits, n1), nearest(W, levels), atol=1e-7)
    assert len(levels) == 2 ** bits - 1


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_po2_levels(rng, bits):
    W = rng.standard_normal(500).astype(numpy.float32) * 0.2
    n1 = exponent_n1(numpy, W)
    n2 = n1 - (2 ** (bits - 1) - 2)
    pos = [2.0 ** e for e in range(n2, n1 + 1)]
    levels = [0.0] + pos + [-p for p in pos]
    assert len(levels) == 2 ** bits - 1                                  # b bits, 0 included
    numpy.testing.assert_allclose(po2_quantize(numpy, W, bits, n1), nearest(W, levels), atol=1e-7)


def test_qr_and_wqr_values_and_gradients(rng):
    W = rng.standard_normal(50) * 0.3
    Wq = dfp_quantize(numpy, W, 3, exponent_n1(numpy, W))
    maxq = 3 / 4 * 2.0 ** exponent_n1(numpy, W)
    qr = QRTerm(Wq, maxq, W.size, False).apply(W).data
    wqr = QRTerm(Wq, maxq, W.size, True).apply(W).data
    assert qr == pytest.approx(numpy.abs(W - Wq).sum() / (maxq * W.size))                 # eq. 9
    assert wqr == pytest.approx((numpy.abs(W - Wq) * numpy.abs(W)).sum() / (maxq ** 2 * W.size))
    for weighted in (False, True):
        check_backward(lambda w: QRTerm(Wq, maxq, W.size, weighted).apply(w), [W])


def test_lambda_schedules():
    dfp = make_weight_quantizer("DFP", {"Range": "15"})
    po2 = make_weight_quantizer("Po2", {"Range": "15"})
    for e in (1, 10, 149, 150, 200):
        dfp.on_epoch(e)
        po2.on_epoch(e)
        assert dfp.lambdas() == (100.0 if e >= 150 else 0.0, 10.0 * e)  # Wess et al., §III-C
        assert po2.lambdas() == (0.0, 10.0 * e)
    qr = make_weight_quantizer("DFP", {"Range": "7", "Regularization": "QR", "Lambda1": "1",
                                       "Lambda1Slope": "10", "Lambda1StartEpoch": "0"})
    qr.on_epoch(3)
    assert qr.lambdas() == (31.0, 0.0)   # λ1 = 1 + 10·e; no WQR term


def test_forward_is_float_in_training_and_quantized_in_test(rng):
    W = Parameter(rng.standard_normal((4, 5)).astype(numpy.float32) * 0.3)
    q = make_weight_quantizer("DFP", {"Range": "7"})
    assert q([W])[0] is W
    with no_grad():
        Wq = q([W])[0].data
    numpy.testing.assert_allclose(Wq, dfp_quantize(numpy, W.data, 3, exponent_n1(numpy, W.data)))
    q.on_epoch(200)
    q([W])
    p = q.penalty()
    expected = 100 * QRTerm(Wq, 0.75 * 2.0 ** exponent_n1(numpy, W.data), 20, False).apply(W.data).data \
        + 2000 * QRTerm(Wq, 0.75 * 2.0 ** exponent_n1(numpy, W.data), 20, True).apply(W.data).data
    assert float(p.data) == pytest.approx(float(expected), rel=1e-5)
    p.backward()
    assert W.grad is not None and numpy.abs(W.grad).sum() > 0


def test_direct_mode_ste_and_range_check(rng):
    W = Parameter(rng.standard_normal(10).astype(numpy.float32))
    q = make_weight_quantizer("Po2", {"Range": "15", "Regularization": "None"})
    y = q([W])[0]
    y.backward(numpy.ones(10, numpy.float32))
    numpy.testing.assert_array_equal(W.grad, numpy.ones(10))
    assert q.penalty() is None
    with pytest.raises(IniError, match="Range must be 2\\^b - 1"):
        make_weight_quantizer("DFP", {"Range": "10"})([W])
