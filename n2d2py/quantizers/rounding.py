"""The two rounding rules N2D2 mixes: C's ``rintf`` (half to even) and
``round`` (half away from zero), chosen per quantizer and device.

* ``rint``: C ``rintf`` in the default FP mode, i.e. round half to even (= ``xp.rint``).
  SAT weights everywhere; SAT activations and LSQ on CUDA.
* ``round_half_away``: C ``round``/``std::round``, half away from zero. SAT activations and
  LSQ on the CPU.

Both keep the dtype of ``x`` (float32 stays float32) and are element-wise.
"""

__all__ = ["rint", "round_half_away", "ROUNDINGS", "rounding_function"]


def rint(xp, x):
    """Round half to even (C ``rintf``): rint(0.5) = 0, rint(1.5) = 2, rint(-2.5) = -2."""
    return xp.rint(x)


def round_half_away(xp, x):
    """Round half away from zero (C ``round``): 0.5 -> 1, -2.5 -> -3, 0.49999997 -> 0.

    Written as trunc(x) + copysign([|x - trunc(x)| >= 0.5], x): ``x - trunc(x)`` is exact in
    floating point, unlike the textbook ``floor(|x| + 0.5)`` whose addition rounds
    0.49999997 + 0.5 up to 1 in float32.
    """
    t = xp.trunc(x)
    up = (xp.abs(x - t) >= 0.5).astype(x.dtype)
    return t + xp.copysign(up, x)


ROUNDINGS = {"half_away": round_half_away, "half_even": rint}


def rounding_function(name):
    """``"half_away"`` (N2D2 CPU) or ``"half_even"`` (N2D2 CUDA) -> f(xp, x)."""
    try:
        return ROUNDINGS[name]
    except KeyError:
        raise ValueError(f"unknown rounding {name!r}: expected one of {', '.join(ROUNDINGS)}") from None
