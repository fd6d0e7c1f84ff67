"""Numerical gradient checks (public: for tests and for users writing their own functions).

``check_backward`` compares autograd with central finite differences in float64 along a random
direction of the output (Chainer's trick): one backward and 2 forwards per input element.
"""
import numpy

from .variable import Variable


def numerical_grad(f, inputs, direction, eps=1e-6):
    """d<direction, f(inputs)>/d inputs by central differences; inputs are float64 arrays."""
    grads = []
    for x in inputs:
        g = numpy.zeros_like(x)
        flat, gflat = x.reshape(-1), g.reshape(-1)
        for i in range(flat.size):
            keep = flat[i]
            flat[i] = keep + eps
            plus = float(numpy.sum(_asarray(f(*inputs)) * direction))
            flat[i] = keep - eps
            minus = float(numpy.sum(_asarray(f(*inputs)) * direction))
            flat[i] = keep
            gflat[i] = (plus - minus) / (2 * eps)
        grads.append(g)
    return grads


def _asarray(y):
    return numpy.asarray(y.data if isinstance(y, Variable) else y, dtype=numpy.float64)


def check_backward(f, inputs, rng=None, eps=1e-6, atol=1e-5, rtol=1e-4, wrt=None):
    """Assert autograd gradients of ``f`` equal finite differences.

    ``f`` takes Variables (or arrays) and returns a Variable; ``inputs`` are arrays, converted
    to float64. ``wrt`` lists the indices to check (default: all). Raises AssertionError with
    both gradients on mismatch.
    """
    rng = rng or numpy.random.default_rng(0)
    arrays = [numpy.array(x, dtype=numpy.float64) for x in inputs]
    wrt = range(len(arrays)) if wrt is None else wrt
    variables = [Variable(a.copy(), requires_grad=(i in wrt)) for i, a in enumerate(arrays)]
    y = f(*variables)
    direction = rng.standard_normal(y.shape)
    y.backward(direction.astype(y.dtype))
    checked = [arrays[i] for i in wrt]

    def f_on(*xs):
        full = list(arrays)
        for i, x in zip(wrt, xs):
            full[i] = x
        return f(*[Variable(x) for x in full])

    numeric = numerical_grad(f_on, checked, direction, eps)
    for i, num in zip(wrt, numeric):
        analytic = variables[i].grad
        analytic = numpy.zeros_like(num) if analytic is None else numpy.asarray(analytic)
        if not numpy.allclose(analytic, num, atol=atol, rtol=rtol):
            raise AssertionError(
                f"gradient of input {i} differs from finite differences "
                f"(max abs diff {numpy.max(numpy.abs(analytic - num)):.3g})\n"
                f"analytic:\n{analytic}\nnumeric:\n{num}")
