"""Fillers: distributions, N2D2's keys and defaults, the fan rule."""
import math

import numpy
import pytest

from n2d2py.errors import IniError
from n2d2py.fillers import FILLERS, HeFiller, XavierFiller, default_filler, fans

SHAPE = (64, 32, 5, 5)   # 51200 draws: moments within a few 1e-2 relative
STAT_RTOL = 0.03         # sampling noise of a std estimate over 51200 values is ~0.3 %
MEAN_ATOL = 0.01         # in units of the std: the standard error over 51200 draws is 0.0044


def to_np(a):
    return a.get() if hasattr(a, "get") else numpy.asarray(a)


def test_fans_per_parent_tensor():
    assert fans((16, 6, 5, 5)) == (150, 400)     # conv: kW*kH*C', kW*kH*O
    assert fans((16, 3, 5, 5)) == (75, 400)      # groups=2 of 6 channels: weight stores C/groups
    assert fans((84, 120)) == (120, 84)          # fc: inputs, outputs


def test_registry_and_defaults():
    assert FILLERS.names() == ["ConstantFiller", "HeFiller", "NormalFiller", "UniformFiller",
                               "XavierFiller"]
    assert FILLERS.get("NormalFiller")().parameters_dict() == {"Mean": 0.0, "StdDev": 1.0}
    assert FILLERS.get("UniformFiller")().parameters_dict() == {"Min": 0.0, "Max": 1.0}
    assert XavierFiller().parameters_dict() == {"VarianceNorm": "FanIn", "Distribution": "Uniform",
                                                "Scaling": 1.0}
    assert HeFiller().parameters_dict() == {"VarianceNorm": "FanIn", "MeanNorm": 0.0,
                                            "Scaling": 1.0}
    assert default_filler().parameters_dict() == {"Mean": 0.0, "StdDev": 0.05}


def test_constant_filler_needs_value(xp):
    f = FILLERS.get("ConstantFiller")()
    assert f.missing_required() == ["Value"]
    f.set_parameter("Value", "0.25")
    w = f.fill((3, 2), xp=xp)
    assert w.dtype == numpy.float32 and numpy.all(to_np(w) == 0.25)


def test_normal_and_uniform_moments(xp, rng):
    w = to_np(default_filler().fill(SHAPE, rng=rng, xp=xp))
    assert w.dtype == numpy.float32 and w.shape == SHAPE
    assert abs(w.mean()) < MEAN_ATOL * 0.05 * 4 and w.std() == pytest.approx(0.05, rel=STAT_RTOL)
    u = FILLERS.get("UniformFiller")(min=-2.0, max=4.0)
    w = to_np(u.fill(SHAPE, rng=rng, xp=xp))
    assert w.min() >= -2.0 and w.max() <= 4.0
    assert w.mean() == pytest.approx(1.0, abs=0.05)
    assert w.std() == pytest.approx(6 / math.sqrt(12), rel=STAT_RTOL)


@pytest.mark.parametrize("norm, n", [("FanIn", 800), ("FanOut", 1600), ("Average", 1200)])
def test_xavier_uniform_bound_and_std(rng, norm, n):
    f = XavierFiller(variance_norm=norm, scaling=2.0)
    w = f.fill(SHAPE, *fans(SHAPE), rng=rng)
    bound = 2.0 * math.sqrt(3.0 / n)
    assert numpy.abs(w).max() <= bound * (1 + 1e-6)
    assert w.std() == pytest.approx(2.0 * math.sqrt(1.0 / n), rel=STAT_RTOL)


def test_xavier_normal_and_he(rng):
    w = XavierFiller(distribution="Normal").fill(SHAPE, 800, 1600, rng)
    assert w.std() == pytest.approx(math.sqrt(1 / 800), rel=STAT_RTOL)
    he = HeFiller(mean_norm=8.0, scaling=0.5)
    w = he.fill(SHAPE, 800, 1600, rng)
    # Scaling * N(MeanNorm/n, sqrt(2/n)): mean 0.5*8/800, std 0.5*sqrt(2/800)
    assert w.mean() == pytest.approx(0.5 * 0.01, abs=3e-4)
    assert w.std() == pytest.approx(0.5 * math.sqrt(2 / 800), rel=STAT_RTOL)


def test_scaling_zero_gives_zeros(rng):
    assert not numpy.any(HeFiller(scaling=0.0).fill((4, 3, 3, 3), rng=rng))


def test_same_seed_same_weights_on_every_backend(xp):
    a = XavierFiller().fill((8, 4), rng=numpy.random.default_rng(7), xp=xp)
    b = XavierFiller().fill((8, 4), rng=numpy.random.default_rng(7))
    numpy.testing.assert_array_equal(to_np(a), b)


def test_ini_keys_are_checked():
    f = FILLERS.get("XavierFiller")()
    f.set_parameters({"VarianceNorm": "Average", "Distribution": "Normal", "Scaling": "0.5"})
    assert (f.variance_norm, f.distribution, f.scaling) == ("Average", "Normal", 0.5)
    with pytest.raises(IniError, match="FanIn"):
        f.set_parameter("VarianceNorm", "fanin")
    with pytest.raises(IniError, match="Distribution"):
        HeFiller().set_parameter("Distribution", "Normal")   # He is always normal: no such key
