"""Dropout (N2D2 ``Type=Dropout``, key ``Dropout`` = drop probability p; N2D2's CPU
model does not rescale, its CUDA model does).

    training:  y = x · mask · s      mask ~ Bernoulli(1 - p) per element
    inference: y = x

N2D2's CPU ``Frame`` does **not** rescale (s = 1, at training and at test), which is the default
here; ``rescale=True`` gives inverted dropout s = 1/(1-p), what ``Frame_CUDA`` (cuDNN) does.
"""
from ..autograd.function import Function
from ..errors import N2D2Error, expect
from .activation import Identity

__all__ = ["dropout"]


def _uniform(xp, rng, shape, dtype):
    """U[0, 1) of ``shape`` on the backend of the data; ``rng`` (a NumPy Generator) drives both
    backends so that a seeded run is reproducible: on CuPy it seeds a device generator.

    A data-parallel replica (``distributed.shard.current()``) draws for the global batch and
    keeps its rows: the masks of one process, and the replicas' generators stay equal."""
    from ..distributed.shard import current
    part = current()
    if part is not None and part.count == shape[0] != part.total:
        return _draw(xp, rng, (part.total,) + tuple(shape[1:]), dtype)[part.lo:part.hi]
    return _draw(xp, rng, shape, dtype)


def _draw(xp, rng, shape, dtype):
    if xp.__name__ == "numpy":
        return rng.random(shape, dtype=dtype)
    seed = int(rng.integers(0, 2 ** 63 - 1))
    return xp.random.RandomState(seed).random_sample(shape, dtype=dtype)


class Dropout(Function):
    """y = x·mask·scale with a fresh mask per call; gradient gy·mask·scale."""

    def __init__(self, ratio, rng, rescale=False):
        expect(0.0 <= ratio < 1.0, f"dropout: ratio must be in [0, 1), got {ratio}",
               N2D2Error)
        self.ratio, self.rng, self.rescale = float(ratio), rng, bool(rescale)

    def forward(self, xp, x):
        keep = _uniform(xp, self.rng, x.shape, x.dtype) >= x.dtype.type(self.ratio)
        scale = 1.0 / (1.0 - self.ratio) if self.rescale else 1.0
        mask = keep.astype(x.dtype) * x.dtype.type(scale)
        if self.needs_backward:
            self.saved = mask
        return x * mask

    def backward(self, xp, gy, needs_grad):
        return (gy * self.saved,)


def dropout(x, ratio, training, rng, rescale=False):
    """Drop each element with probability ``ratio`` when ``training``; identity otherwise.

    ``rng`` is a ``numpy.random.Generator`` (the cell's); ``rescale`` selects inverted dropout.
    """
    if not training or ratio == 0:
        return Identity().apply(x)
    return Dropout(ratio, rng, rescale).apply(x)
