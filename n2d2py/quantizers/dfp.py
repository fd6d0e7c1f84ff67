"""Dynamic Fixed Point and Power-of-two weights with QR/WQR regularisation (Wess et al.,
IEEE TCAD 2018, eq. 1-12; docs/QUANTIZERS.md).

``QWeight=DFP`` / ``QWeight=Po2``, ``QWeight.Range=R`` (R = 2^b − 1, as N2D2's Range), per cell
(layer n), s = max|W_n|, n1 = floor(log2(4s/3)) (eq. 2-3):

    DFP  levels B/2^(b−1)·2^n1, B = {0, ±1, …, ±(2^(b−1) − 1)}              (eq. 5-6)
    Po2  levels {0, ±2^n1, …, ±2^n2}, 2^(b−1) − 1 exponents per sign          (eq. 1, 4)

Every weight goes to the nearest level. Seed 001 states 2^b − 1 symmetric levels; its eq. 4
(n2 = n1 − (2^(b−1) − 1)) would give 2^(b−1) exponents, i.e. 2^b + 1 levels, which do not fit
b bits: we keep the level count (1 sign bit, one code for 0), so n2 = n1 − (2^(b−1) − 2).

Training (Algorithm 2): the weights stay full precision in the forward while
``Regularization=QR|WQR`` adds, through ``penalty()`` (collected by constraints.constraint_loss):

    QR_n  = Σ_i |W_i − Wq_i| / (max(Q_n)·card(W_n))                          (eq. 9)
    WQR_n = Σ_i |W_i − Wq_i|·|W_i| / (max(Q_n)²·card(W_n))                  (eq. 11)
    loss  = L + λ1·QR + λ2·WQR                                               (eq. 12)

Wq is recomputed every mini-batch and is a constant. λ schedules (epoch e, set by
the training loop's ``on_epoch``): λ_i(e) = (Lambda_i + Lambda_iSlope·e) for e ≥ Lambda_iStartEpoch, else
0 — the paper's λ2 = 10·e and λ1 = 100 from epoch 150 (DFP; Po2 needs WQR only). Under
``no_grad()`` (validation, test, LPS) the forward uses the directly quantized weights, the
paper's acc_Mq. ``Regularization=None`` quantizes in every forward with a straight-through
gradient instead.
"""
import math

from ..autograd import Function, Variable, grad_enabled
from ..backend import DTYPE, get_xp
from ..ini.convert import enum, to_float, to_uint
from ..params import Key
from .base import WEIGHT_QUANTIZERS, WeightQuantizer

F32 = DTYPE


def exponent_n1(xp, W):
    """n1 = floor(log2(4s/3)), s = max|W| (eq. 2-3); a Python int (s = 0 gives 0)."""
    s = float(xp.abs(W).max())
    return math.floor(math.log2(4.0 * s / 3.0)) if s > 0 else 0


def dfp_quantize(xp, W, bits, n1):
    """Nearest DFP level: step 2^(n1 − b + 1), integer codes clipped to ±(2^(b−1) − 1)."""
    step = F32(2.0 ** (n1 - bits + 1))
    top = F32(2.0 ** (bits - 1) - 1)
    return xp.clip(xp.rint(W / step), -top, top) * step


def po2_quantize(xp, W, bits, n1):
    """Nearest level of {0, ±2^n2, …, ±2^n1}, n2 = n1 − (2^(b−1) − 2) (distance, not log)."""
    n2 = n1 - (2 ** (bits - 1) - 2)
    a = xp.abs(W)
    e = xp.floor(xp.log2(xp.maximum(a, F32(2.0 ** -126))))
    p = xp.exp2(e).astype(W.dtype)
    level = xp.where(a >= F32(1.5) * p, p * F32(2.0), p)      # midpoint of [2^e, 2^(e+1)]
    level = xp.clip(level, F32(2.0 ** n2), F32(2.0 ** n1))
    level = xp.where(a < F32(2.0 ** (n2 - 1)), F32(0.0), level)  # midpoint of [0, 2^n2]
    return xp.sign(W) * level


class DirectQuantize(Function):
    """Wq = Q(W) with a straight-through gradient (``Regularization=None``)."""

    def __init__(self, quantizer):
        self.quantizer = quantizer

    def forward(self, xp, W):
        return self.quantizer.levels(xp, W)[0]

    def backward(self, xp, gy, needs_grad):
        return (gy,)


class QRTerm(Function):
    """QR_n (``weighted=False``, eq. 9) or WQR_n (eq. 11) of one tensor, Wq a constant:

    forward   Σ |W − Wq|·(|W| if weighted) / (maxQ^p·card),  p = 2 if weighted else 1
    backward  g·[sign(W − Wq)·|W| + |W − Wq|·sign(W)] / (maxQ²·card)   (weighted)
              g·sign(W − Wq) / (maxQ·card)                            (QR)
    """

    def __init__(self, Wq, max_q, card, weighted):
        self.Wq, self.max_q, self.card, self.weighted = Wq, max_q, card, weighted

    def norm(self):
        return self.max_q ** (2 if self.weighted else 1) * self.card

    def forward(self, xp, W):
        dist = xp.abs(W - self.Wq)
        if self.weighted:
            dist = dist * xp.abs(W)
        if self.needs_backward:
            self.saved = W
        return (xp.sum(dist, dtype=xp.float64) / self.norm()).astype(W.dtype)

    def backward(self, xp, gy, needs_grad):
        W = self.saved
        diff = W - self.Wq
        g = xp.sign(diff)
        if self.weighted:
            g = g * xp.abs(W) + xp.abs(diff) * xp.sign(W)
        return (gy * g / W.dtype.type(self.norm()),)


def range_is_power_of_two(R):
    """A ``Key`` check: Range = 2^b − 1 with b ≥ 2 (3, 7, 15, ...)."""
    b = round(math.log2(R + 1)) if R > 0 else 0
    if b < 2 or 2 ** b - 1 != R:
        return f"Range must be 2^b - 1 with b >= 2 (3, 7, 15, ...), got {R}"
    return None


def ramp(base, slope, start, epoch):
    """λ(e) = base + slope·e for e ≥ start, else 0 (the λ1, λ2 schedules)."""
    return base + slope * epoch if epoch >= start else 0.0


class _RegularizedQuantizer(WeightQuantizer):
    """Shared Range/bits, forward choice, QR/WQR penalty and λ schedules of DFP and Po2."""

    range = Key("Range", to_uint, default=255, doc="R = 2^b − 1 (b bits)",
                check=range_is_power_of_two)
    regularization = Key("Regularization", enum("QR", "WQR", "None"), default="WQR")
    lambda1 = Key("Lambda1", to_float, default=100.0, doc="QR scale λ1 (base)")
    lambda1_slope = Key("Lambda1Slope", to_float, default=0.0, doc="λ1 increase per epoch")
    lambda1_start = Key("Lambda1StartEpoch", to_float, default=150.0)
    lambda2 = Key("Lambda2", to_float, default=0.0, doc="WQR scale λ2 (base)")
    lambda2_slope = Key("Lambda2Slope", to_float, default=10.0, doc="λ2 increase per epoch")
    lambda2_start = Key("Lambda2StartEpoch", to_float, default=0.0)

    state_names = ("epoch",)

    def __init__(self, **values):
        self.epoch = 1
        self._last = []
        super().__init__(**values)

    def bits(self):
        """b = log2(Range + 1) (``range_is_power_of_two`` checked Range = 2^b − 1, b ≥ 2)."""
        return round(math.log2(self.range + 1))

    def on_epoch(self, epoch):
        self.epoch = epoch

    def lambdas(self):
        """(λ1, λ2) at the current epoch; λ2 is 0 unless Regularization=WQR."""
        if self.regularization == "None":
            return 0.0, 0.0
        l1 = ramp(self.lambda1, self.lambda1_slope, self.lambda1_start, self.epoch)
        l2 = ramp(self.lambda2, self.lambda2_slope, self.lambda2_start, self.epoch) \
            if self.regularization == "WQR" else 0.0
        return l1, l2

    def levels(self, xp, W):
        """(Wq, max(Q_n)) for one tensor (direct quantization)."""
        raise NotImplementedError

    def quantize(self, weights):
        self._last = list(weights)
        if self.regularization == "None":
            return [DirectQuantize(self).apply(w) for w in weights]
        if grad_enabled():
            return list(weights)  # full precision while fine-tuning (Algorithm 2)
        datas = [w.data if isinstance(w, Variable) else w for w in weights]
        return [Variable(self.levels(get_xp(d), d)[0]) for d in datas]

    def penalty(self, total_weights=None):
        """λ1·QR_n + λ2·WQR_n of the weights of the last forward (None when both λ are 0);
        ``total_weights`` is unused (QR/WQR are normalised per layer)."""
        l1, l2 = self.lambdas()
        total = None
        for W in self._last:
            data = W.data
            Wq, max_q = self.levels(get_xp(data), data)
            card = data.size
            for lam, weighted in ((l1, False), (l2, True)):
                if lam and max_q > 0:
                    term = QRTerm(Wq, max_q, card, weighted).apply(W) * float(lam)
                    total = term if total is None else total + term
        return total


@WEIGHT_QUANTIZERS.register("DFP")
class DFPWeightQuantizer(_RegularizedQuantizer):
    """``QWeight=DFP``: dynamic fixed point (eq. 5-6), default WQR with λ2 = 10·e and
    λ1 = 100 from epoch 150 (Wess et al., §III-C)."""

    def levels(self, xp, W):
        b = self.bits()
        n1 = exponent_n1(xp, W)
        return dfp_quantize(xp, W, b, n1), (2.0 ** (b - 1) - 1) / 2.0 ** (b - 1) * 2.0 ** n1


@WEIGHT_QUANTIZERS.register("Po2")
class Po2WeightQuantizer(_RegularizedQuantizer):
    """``QWeight=Po2``: power-of-two levels (eq. 1-4), default WQR only (λ1 = 0)."""

    lambda1 = Key("Lambda1", to_float, default=0.0, doc="QR scale λ1 (Po2 needs WQR only)")

    def levels(self, xp, W):
        n1 = exponent_n1(xp, W)
        return po2_quantize(xp, W, self.bits(), n1), 2.0 ** n1
