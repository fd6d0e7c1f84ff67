"""SAT weight quantizer: N2D2's unit tests regenerated, level sets, STE gradients, the float32
trap (float64 gives other weights than N2D2's) and the registry/INI surface."""
import numpy
import pytest

from mt19937 import uniform_tensor
from n2d2py.autograd import Variable, no_grad
from n2d2py.errors import IniError
from n2d2py.quantizers import WEIGHT_QUANTIZERS, SATWeightQuantizer, make_weight_quantizer
from n2d2py.quantizers.sat import SATWeightQuantize, sat_scale_count

N2D2_ATOL = 1e-3  # the tolerance of N2D2's own assertions
F32_RTOL = 1e-6   # float32 reference vs our float32 kernel: a few ulps (tanh/cosh libm differences)

# (nbOutputs, nbChannel, kH, kW, nbBits): a spread of N2D2's 41 tuples (class_SATQuantizerCell_*)
N2D2_SAT_CASES = [(10, 4, 1, 1, 8), (4, 16, 1, 1, 4), (16, 8, 3, 3, 3), (4, 16, 5, 5, 2),
                  (1, 4, 7, 7, 7), (4, 16, 7, 7, 10), (16, 8, 7, 7, 14)]


def n2d2_weights(O, C, kH, kW, nb_bits):
    """w ~ U(−1, 1) with N2D2's seed H·W·O·C·kH·kW·nbBits (H = W = 28), dims {kW,kH,C,O}."""
    return uniform_tensor(28 * 28 * O * C * kH * kW * nb_bits, -1.0, 1.0, (O, C, kH, kW))


def reference_sat(w, R, quantize, scale):
    """The formulas of N2D2's test, in float64 (an independent oracle)."""
    w = w.astype(numpy.float64)
    t = numpy.tanh(w)
    m = numpy.abs(t).max()
    wq = 2.0 * (numpy.rint(0.5 * (t / m + 1.0) * R) / R) - 1.0 if quantize else t / m
    s = numpy.sqrt(wq.var(ddof=1) * w.shape[0] * w.shape[2] * w.shape[3]) if scale else 1.0
    gw = w * (1.0 / numpy.cosh(w)) ** 2 / (m * s)  # diff = w, as addWeights(w, w)
    return wq / s, gw


def run(q, w):
    W = Variable(w.copy(), requires_grad=True)
    (Wq,) = q([W])
    Wq.backward(w)  # the incoming gradient equals w, as N2D2's test
    return Wq.data, W.grad


@pytest.mark.parametrize("quantize, scale", [(True, True), (False, True), (False, False)],
                         ids=["quantization_scaling", "clamping", "clamping_no_scaling"])
@pytest.mark.parametrize("case", N2D2_SAT_CASES)
def test_n2d2_sat_cell_unit_tests(case, quantize, scale):
    *shape, nb_bits = case
    w = n2d2_weights(*shape, nb_bits)
    R = 2 ** nb_bits
    q = SATWeightQuantizer(range=R, apply_quantization=quantize, apply_scaling=scale)
    wq, gw = run(q, w)
    ref_wq, ref_gw = reference_sat(w, R, quantize, scale)
    assert wq.dtype == numpy.float32 and gw.dtype == numpy.float32
    numpy.testing.assert_allclose(wq, ref_wq, atol=N2D2_ATOL, rtol=0)
    numpy.testing.assert_allclose(gw, ref_gw, atol=N2D2_ATOL, rtol=0)
    assert q.tanh_max[0] == pytest.approx(numpy.abs(numpy.tanh(w.astype(numpy.float64))).max(), rel=1e-6)


def test_default_forward_is_n2d2_float32_kernel_bit_for_bit():
    # N2D2's CPU kernel, transcribed as float32 numpy operations in its order.
    w = n2d2_weights(16, 8, 3, 3, 4)
    R = numpy.float32(15)
    t = numpy.tanh(w)
    m = numpy.float32(max(abs(t.min()), abs(t.max())))
    q = numpy.float32(0.5) * ((t / m) + numpy.float32(1.0))
    q = numpy.float32(1.0 / 15) * numpy.rint(q * R)
    expected = q * numpy.float32(2.0) - numpy.float32(1.0)
    wq, _ = run(SATWeightQuantizer(range=15), w)
    assert numpy.array_equal(wq, expected)


def test_scaling_uses_unbiased_variance_and_fan_out_count():
    w = n2d2_weights(4, 16, 5, 5, 4)
    q = SATWeightQuantizer(range=15, apply_scaling=True)
    wq, _ = run(q, w)
    n = 4 * 5 * 5  # O·kH·kW, not the fan-in C·kH·kW
    assert wq.astype(numpy.float64).var(ddof=1) * n == pytest.approx(1.0, rel=1e-5)
    assert q.scaling[0] == pytest.approx(numpy.sqrt(run(SATWeightQuantizer(range=15), w)[0]
                                                    .astype(numpy.float64).var(ddof=1) * n), rel=1e-5)


def test_scale_count_sums_over_the_cells_tensors():
    assert sat_scale_count((6, 1, 5, 5)) == 150
    assert sat_scale_count((84, 120)) == 84
    w1, w2 = n2d2_weights(4, 3, 3, 3, 8), n2d2_weights(4, 5, 3, 3, 8)
    q = SATWeightQuantizer(range=255, apply_scaling=True)
    out = q([Variable(w1), Variable(w2)])
    n = 2 * 4 * 3 * 3  # Σ_k O·kH·kW
    for o in out:
        assert o.data.astype(numpy.float64).var(ddof=1) * n == pytest.approx(1.0, rel=1e-5)
    assert len(q.tanh_max) == 2 and len(q.scaling) == 2


@pytest.mark.parametrize("mode, R, levels", [
    ("Default", 15, numpy.arange(-15, 16, 2) / 15),
    ("Symmetric", 15, numpy.arange(-7, 8) / 7),
    ("Asymmetric", 15, numpy.arange(-8, 8) / 7),
    ("FullRange", 15, numpy.arange(-15, 16, 2) / 15),
    ("Default", 1, numpy.array([-1.0, 1.0])),
    ("Symmetric", 255, numpy.arange(-127, 128) / 127),
])
def test_level_sets_of_each_quant_mode(mode, R, levels):
    w = numpy.linspace(-3, 3, 20001, dtype=numpy.float32)
    wq, _ = run(SATWeightQuantizer(range=R, quant_mode=mode), w.reshape(1, 1, 1, -1))
    found = numpy.unique(wq)
    numpy.testing.assert_allclose(found, levels, atol=1e-6)  # every level reached, no other


def test_fullrange_gives_equal_width_bins():
    # u uniform in [0, 1] -> each of the R+1 levels gets the same share, unlike Default.
    R = 3
    u = numpy.linspace(0, 1, 300001)
    tn = (2 * u - 1).astype(numpy.float32)
    fn = SATWeightQuantize(R, "FullRange", True, False, 1)
    counts = numpy.unique(fn._levels(numpy, tn), return_counts=True)[1]
    assert counts.min() / counts.max() > 0.999
    default = numpy.unique(SATWeightQuantize(R, "Default", True, False, 1)._levels(numpy, tn),
                           return_counts=True)[1]
    assert default.min() / default.max() == pytest.approx(0.5, abs=1e-3)  # end bins half-width


@pytest.mark.parametrize("mode, factor", [("Default", 1.0), ("Symmetric", 1.0),
                                          ("FullRange", 1 + 0.9998 / 15),
                                          ("Asymmetric", 1 + 1 / 14)])
@pytest.mark.parametrize("quantize", [True, False])
def test_backward_mode_factor(mode, factor, quantize):
    w = n2d2_weights(4, 4, 3, 3, 4)
    q = SATWeightQuantizer(range=15, quant_mode=mode, apply_quantization=quantize)
    _, gw = run(q, w)
    w64 = w.astype(numpy.float64)
    m = numpy.abs(numpy.tanh(w64)).max()
    numpy.testing.assert_allclose(gw, w64 / numpy.cosh(w64) ** 2 / m * factor, rtol=F32_RTOL * 10)


@pytest.mark.parametrize("mode, c_mode", [("Default", 1.0), ("Symmetric", 1.0), ("Asymmetric", 1.0),
                                          ("FullRange", 1 + 0.9998 / 15)])
def test_clamp_only_gradient_is_finite_differences_with_m_constant(rng, mode, c_mode):
    """Without rounding the map is smooth; N2D2 holds m = max|tanh(w)| constant, so the
    check perturbs only elements that are not the max. FullRange keeps its factor c_mode although
    its clamp-only forward is plain t/m (pitfall 4): the gradient is c_mode times the true one."""
    w = rng.uniform(-0.8, 0.8, (3, 2, 2, 2))
    w[0, 0, 0, 0] = 2.0  # the max |tanh|, never perturbed
    fn = (15, mode, False, False, 1)
    W = Variable(w.copy(), requires_grad=True)
    direction = rng.standard_normal(w.shape)
    SATWeightQuantize(*fn).apply(W).backward(direction)
    eps = 1e-6
    numeric = numpy.zeros_like(w)
    for i in list(numpy.ndindex(w.shape))[1:]:
        plus, minus = w.copy(), w.copy()
        plus[i] += eps
        minus[i] -= eps
        fp = SATWeightQuantize(*fn).apply(Variable(plus)).data
        fm = SATWeightQuantize(*fn).apply(Variable(minus)).data
        numeric[i] = ((fp - fm) * direction).sum() / (2 * eps)
    numpy.testing.assert_allclose(W.grad.reshape(-1)[1:], c_mode * numeric.reshape(-1)[1:],
                                  atol=1e-6, rtol=1e-6)


def test_float32_trap_tiny_weight_with_binary_range():
    # N2D2's float32 kernels: u = 0.5·(tanh(1e-8)/m + 1) is exactly 0.5 in float32, rint -> 0 -> −1.
    w = numpy.asarray([[1e-8, 0.5, -0.7]], dtype=numpy.float32)
    wq, _ = run(SATWeightQuantizer(range=1), w)
    assert wq.tolist() == [[-1.0, 1.0, -1.0]]
    t = numpy.tanh(w.astype(numpy.float64))
    u64 = 0.5 * (t / numpy.abs(t).max() + 1)
    assert 2 * numpy.rint(u64[0, 0]) - 1 == 1.0  # float64 would give +1: a different network


def test_no_grad_forward_and_single_variable_call():
    w = n2d2_weights(4, 1, 3, 3, 8)
    q = SATWeightQuantizer(range=255)
    with no_grad():
        single = q(Variable(w))
    assert isinstance(single, Variable) and single.shape == w.shape
    assert q.parameters() == []


def test_registry_and_ini_keys():
    q = make_weight_quantizer("SAT", {"Range": "15", "QuantMode": "Symmetric",
                                      "ApplyScaling": "1", "ApplyQuantization": "0"})
    assert (q.range, q.quant_mode, q.apply_scaling, q.apply_quantization) == (15, "Symmetric", True, False)
    d = WEIGHT_QUANTIZERS.get("SAT")()
    assert (d.range, d.quant_mode, d.apply_quantization, d.apply_scaling) == (255, "Default", True, False)
    with pytest.raises(IniError, match="Integer"):
        make_weight_quantizer("SAT", {"QuantMode": "Integer"})  # the docs' mode does not exist
    with pytest.raises(IniError, match="Mode"):
        make_weight_quantizer("SAT", {"Mode": "Default"})
    with pytest.raises(IniError, match="SAT"):
        make_weight_quantizer("DoReFa")


def test_symmetric_needs_two_steps():
    with pytest.raises(IniError, match="Range: QuantMode=Symmetric needs Range >= 2"):
        SATWeightQuantizer(range=1, quant_mode="Symmetric")
