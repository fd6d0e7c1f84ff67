"""N2D2's ``Random`` generator, regenerated to rebuild the tensors of its unit tests
(N2D2's quantizer tests): MT19937 seeded with ``init_genrand`` (``Random::mtSeed``), and
``randUniform(a, b) = a + u32 / 4294967295.0 · (b − a)`` (closed interval, double).
"""
import numpy

MT_RAND_MAX = 4294967295.0


class N2D2Random:
    """``Random::mtSeed(seed)`` then successive ``mtRand()`` / ``randUniform`` draws."""

    def __init__(self, seed):
        self._bg = numpy.random.MT19937(0)
        self._bg._legacy_seeding(int(seed) & 0xFFFFFFFF)

    def mt_rand(self, n):
        return self._bg.random_raw(n).astype(numpy.uint64)

    def uniform(self, a, b, n):
        """n draws of randUniform(a, b) in float64 (cast them to the tensor type)."""
        return a + self.mt_rand(n).astype(numpy.float64) / MT_RAND_MAX * (b - a)


def uniform_tensor(seed, a, b, shape, dtype=numpy.float32):
    """A tensor filled index by index (N2D2 linear order = C order on our NCHW/OCHW shapes)."""
    n = int(numpy.prod(shape))
    return N2D2Random(seed).uniform(a, b, n).astype(dtype).reshape(shape)


def uniform_pair(seed, a1, b1, a2, b2, shape, dtype=numpy.float32):
    """Two tensors drawn alternately per index (x_0, g_0, x_1, g_1, ...), as N2D2's backprop tests."""
    n = int(numpy.prod(shape))
    rng = N2D2Random(seed)
    raw = rng.mt_rand(2 * n).astype(numpy.float64) / MT_RAND_MAX
    x = (a1 + raw[0::2] * (b1 - a1)).astype(dtype).reshape(shape)
    g = (a2 + raw[1::2] * (b2 - a2)).astype(dtype).reshape(shape)
    return x, g
