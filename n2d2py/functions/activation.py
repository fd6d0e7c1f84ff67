"""N2D2 activation functions (``ActivationFunction=``, docs/INI.md §6), one fused pass each.

Every activation is a single ``Function`` (forward and backward side by side) rather than a chain
of arithmetic ops, so a Conv + ReLU costs one extra array, not five. Where N2D2's gradient at a
kink differs from a textbook choice, the N2D2 rule is kept and said so.

=================  ===========================================  =================================
N2D2 name           forward                                      function
=================  ===========================================  =================================
Rectifier           x>0: x (capped at c if c>0); x<=0: leak·x     ``relu(x, leak_slope, clipping)``
Linear              x, clamped to [-c, c] if c != 0               ``linear_clip(x, clipping)``
Tanh / TanhLeCun    tanh(alpha·x) (LeCun: alpha=1.7159·2/3)       ``tanh(x, alpha)``
Logistic            1 / (1 + exp(-x))                            ``sigmoid(x)``
Saturation          clamp to [-T, T]                             ``saturation(x, threshold)``
Softplus            log(1 + exp(x))                              ``softplus(x)``
Swish               x·sigmoid(x)                                 ``swish(x)``
=================  ===========================================  =================================
``LogisticWithLoss`` is ``sigmoid`` here; its skipped Jacobian lives in ``loss.sigmoid_cross_entropy``.
"""
from ..autograd.function import Function
from ..parallel import elementwise
from ._im2col import scratch

__all__ = ["relu", "linear_clip", "tanh", "sigmoid", "saturation", "softplus", "swish",
           "TANH_LECUN_ALPHA"]

TANH_LECUN_ALPHA = 1.7159 * 2.0 / 3.0  # N2D2's TanhLeCun: tanh(1.1439 x), no 1.7159 gain


def _split(xp, a, body):
    """``body(index)`` over batch ranges ``slice(lo, hi)`` of ``a`` (threads,
    ``parallel.py``); a 0-d ``a`` in one call with ``...``."""
    if a.ndim == 0:
        return body(...)
    return elementwise(xp, a, lambda lo, hi: body(slice(lo, hi)))


def sigmoid_array(xp, x):
    """Overflow-free logistic on a raw array (exp of non-positive numbers only); shared with loss.py."""
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def relu_top(clipping):
    """N2D2's Rectifier ``Clipping`` as the top of ``rectify``: inf for 0 (no cap); None
    stays None (no ReLU: the ``relu_clipping=`` of functions that fuse one)."""
    if clipping is None:
        return None
    return float(clipping) if clipping > 0 else float("inf")


def rectify(xp, x, top, out):
    """``out = min(max(x, 0), top)`` for ``top > 0`` (``inf``: no cap), +0.0 where x is -0.0.

    clip is a SIMD loop, maximum/minimum against a scalar were not (3x slower); clip keeps
    -0.0 as -0.0 where maximum gave +0.0: ``+= 0`` makes it +0.0 and changes nothing else
    (NaN stays NaN as with maximum). Shared with ``batchnorm`` (a fused BatchNorm + ReLU).
    """
    zero = x.dtype.type(0)
    xp.clip(x, zero, x.dtype.type(top), out=out)
    out += zero
    return out


def rectified_gradient(xp, y, gy, top, out):
    """``out = gy`` where ``0 < y < top``, else 0: the gradient through ``rectify`` from its
    output ``y`` (y > 0 and y < top exactly where x > 0 and x < top), the mask in a reused
    per-thread buffer: call on cache-sized parts (``parallel.elementwise``)."""
    mask = xp.greater(y, y.dtype.type(0), out=scratch(xp, "relu_mask", y.shape, bool))
    if top != float("inf"):
        mask &= xp.less(y, y.dtype.type(top), out=scratch(xp, "relu_mask2", y.shape, bool))
    return xp.multiply(gy, mask, out=out)


def rectify_all(xp, x, top, out):
    """``rectify`` over a whole array (cache-sized parts, threads); returns ``out``."""
    _split(xp, x, lambda part: rectify(xp, x[part], top, out[part]))
    return out


def rectified_gradient_all(xp, y, gy, top):
    """``rectified_gradient`` over a whole array, into a fresh one (``gy`` is not altered)."""
    gx = xp.empty_like(gy)
    _split(xp, y, lambda part: rectified_gradient(xp, y[part], gy[part], top, gx[part]))
    return gx


class Rectifier(Function):
    """N2D2 Rectifier: y = min(x, c) if x > 0 (c > 0 only), else leak·x.

    Gradient (N2D2's rule, evaluated on x): 1 where 0 < x (and x < c when clipping), 0 where
    x >= c (clipped), ``leak`` where x <= 0.

    Speed: no ``where`` (a data-dependent select is several times slower than arithmetic on
    random signs); forward is ``clip(x, 0, c or inf)`` (``max(x, 0) + leak·min(x, 0)`` with a
    leak), backward multiplies by a boolean mask: recomputed from the output y (no leak) or
    saved (1 byte per element instead of keeping x).
    """

    def __init__(self, leak_slope=0.0, clipping=0.0):
        self.leak, self.clipping = float(leak_slope), float(clipping)
        self.top = relu_top(self.clipping)

    def forward(self, xp, x):
        zero = x.dtype.type(0)
        if self.leak == 0:
            y = rectify_all(xp, x, self.top, xp.empty_like(x))
        else:
            y = xp.maximum(x, zero)
            y += xp.minimum(x, zero) * x.dtype.type(self.leak)
            if self.clipping > 0:
                xp.minimum(y, x.dtype.type(self.clipping), out=y)
        if self.needs_backward:
            if self.leak == 0:
                # the output (kept by the graph anyway) gives the same mask: y > 0 (and
                # y < c) exactly where x > 0 (and x < c), NaN nowhere; no mask array kept
                self.saved = (y, None)
            else:
                ones = x > zero
                if self.clipping > 0:
                    ones &= x < x.dtype.type(self.clipping)
                self.saved = (ones, ~(x > zero))
        return y

    def backward(self, xp, gy, needs_grad):
        ones, leaky = self.saved
        if ones.dtype != bool:  # the output y: its mask
            return (rectified_gradient_all(xp, ones, gy, self.top),)
        gx = xp.multiply(gy, ones)
        if leaky is not None:
            gx += (gy * gy.dtype.type(self.leak)) * leaky
        return (gx,)


class Clamp(Function):
    """y = clamp(x, -c, c) (N2D2 Linear with Clipping, and Saturation); gradient 1 on |x| < c."""

    def __init__(self, bound):
        self.bound = float(bound)

    def forward(self, xp, x):
        if self.needs_backward:
            self.saved = x
        return xp.clip(x, -self.bound, self.bound).astype(x.dtype, copy=False)

    def backward(self, xp, gy, needs_grad):
        return (xp.where(xp.abs(self.saved) < self.bound, gy, gy.dtype.type(0)),)


class Identity(Function):
    """N2D2 Linear without clipping: y = x (kept as a node so the graph shape is uniform)."""

    def forward(self, xp, x):
        return x.copy()

    def backward(self, xp, gy, needs_grad):
        return (gy,)


class Tanh(Function):
    """y = tanh(alpha·x); dy/dx = alpha·(1 - y²) (computed from the output, as N2D2 does)."""

    def __init__(self, alpha=1.0):
        self.alpha = float(alpha)

    def forward(self, xp, x):
        y = xp.tanh(x * x.dtype.type(self.alpha))
        if self.needs_backward:
            self.saved = y
        return y

    def backward(self, xp, gy, needs_grad):
        y = self.saved
        return (gy * (self.alpha * (1 - y * y)),)


class Logistic(Function):
    """N2D2 Logistic: y = 1 / (1 + exp(-x)); dy/dx = y·(1 - y)."""

    def forward(self, xp, x):
        y = sigmoid_array(xp, x)
        if self.needs_backward:
            self.saved = y
        return y

    def backward(self, xp, gy, needs_grad):
        y = self.saved
        return (gy * y * (1 - y),)


class Softplus(Function):
    """y = log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)); dy/dx = sigmoid(x)."""

    def forward(self, xp, x):
        if self.needs_backward:
            self.saved = x
        return (xp.maximum(x, 0) + xp.log1p(xp.exp(-xp.abs(x)))).astype(x.dtype, copy=False)

    def backward(self, xp, gy, needs_grad):
        return (gy * sigmoid_array(xp, self.saved),)


class Swish(Function):
    """y = x·sigmoid(x); dy/dx = s + x·s·(1 - s) with s = sigmoid(x)."""

    def forward(self, xp, x):
        s = sigmoid_array(xp, x)
        if self.needs_backward:
            self.saved = (x, s)
        return x * s

    def backward(self, xp, gy, needs_grad):
        x, s = self.saved
        return (gy * (s * (1 + x * (1 - s))),)


def relu(x, leak_slope=0.0, clipping=0.0):
    """N2D2 ``Rectifier`` (``LeakSlope``, ``Clipping``; ReLU6 is ``clipping=6``)."""
    return Rectifier(leak_slope, clipping).apply(x)


def linear_clip(x, clipping=0.0):
    """N2D2 ``Linear``: identity, clamped to [-c, c] when c != 0 (the sign of c is ignored)."""
    if clipping == 0:
        return Identity().apply(x)
    return Clamp(abs(clipping)).apply(x)


def tanh(x, alpha=1.0):
    """N2D2 ``Tanh`` (``Alpha``); ``TanhLeCun`` is ``tanh(x, TANH_LECUN_ALPHA)``."""
    return Tanh(alpha).apply(x)


def sigmoid(x):
    """N2D2 ``Logistic`` (also the forward of ``LogisticWithLoss``)."""
    return Logistic().apply(x)


def saturation(x, threshold=1.0):
    """N2D2 ``Saturation``: clamp to [-T, T]; gradient 1 strictly inside, 0 outside."""
    return Clamp(abs(threshold)).apply(x)


def softplus(x):
    """N2D2 ``Softplus``: log(1 + exp(x)), overflow-free."""
    return Softplus().apply(x)


def swish(x):
    """N2D2 ``Swish``: x·sigmoid(x)."""
    return Swish().apply(x)
