"""DQA, DNN quantization with attention (Boukli Hacene et al., arXiv:2103.13322;
docs/QUANTIZERS.md).

``QWeight=DQA``: each cell holds K quantizers sorted by bit-width n_1 < … < n_K
(``Quantizers=MinMax2 MinMax4 MinMax8`` by default; also ``SAWB<n>``, ``BWN``, ``TWN``, ``FP``)
and a learnable attention vector α. The weights of the forward are (eq. 1-4)

    q = Σ_k a_k·Q_k(w; n_k),   a = softmax(α/T)

with, before every training step (Algorithm 1), α ← α/sd(α) and T(b) = T(0)·ψ^b,
ψ = exp(log(T(B)/T(0))/B) (eq. 5; T(0) = 100, T(B) = 0.03, B = ``TemperatureSteps``).
Each Q_k keeps a straight-through gradient (g_w = g, its range β/min/max a constant), so
g_w = g·Σ_k a_k; g_α follows the softmax. The regulariser r(α) = λ·gᵀa(α)/S (eq. 6, S = number of
weights in the network, g = ``Penalty`` = 1 4 16) comes out of ``penalty(S)`` and is added by
constraints.constraint_loss. Initialisation α_k = Σ_{j≠k} n_j / Σ_j n_j (eq. 14).

Quantizers (the paper's §3.1): min-max n bits (eq. 8, 11; levels from min(w) to max(w), the offset
q_1 restored so values fall on the levels of eq. 8), SAWB n bits (eq. 9-10; α* minimising the
MSE over a grid of ``SAWBGrid`` fractions of max|w|), BWN β·sign(w), β = E|w| (eq. 12), TWN with
δ = 0.7·E|w|, β = E[|w| : |w| > δ] (eq. 13), FP the identity (32 bits).
"""
import math
import re

from ..autograd import Function, Variable, grad_enabled
from ..backend import DTYPE, asnumpy, get_xp
from ..functions.arith import mul, sum_all
from ..errors import IniError, expect
from ..ini.convert import list_of, to_float, to_str, to_uint
from ..io.names import cell_file
from ..params import Key
from .constraints import ConstraintKeys
from .base import (WEIGHT_QUANTIZERS, LazyParameter, WeightQuantizer, follow_device,
                   load_state_values, write_syntxt_rows)

F32 = DTYPE
SPEC = re.compile(r"^(MinMax|SAWB)(\d+)$|^(BWN|TWN|FP)$")
FIXED_BITS = {"BWN": 1, "TWN": 2, "FP": 32}


def parse_quantizers(text):
    """``"MinMax2 MinMax4 MinMax8"`` -> [("MinMax", 2), ("MinMax", 4), ("MinMax", 8)]."""
    out = []
    for token in text.split():
        m = SPEC.match(token)
        if not m:
            raise ValueError(f"unknown DQA quantizer '{token}' (MinMax<n>, SAWB<n>, BWN, TWN, FP)")
        out.append((m.group(1), int(m.group(2))) if m.group(1) else (m.group(3), FIXED_BITS[m.group(3)]))
    if not out:
        raise ValueError("DQA needs at least one quantizer")
    return out


def quantizer_list_problem(text):
    """A ``Key`` check of ``Quantizers``: parsable and sorted by bit-width."""
    try:
        bits = [n for _, n in parse_quantizers(text)]
    except ValueError as exc:
        return str(exc)
    return None if bits == sorted(bits) else "DQA quantizers must be sorted by bit-width"


def minmax(xp, w, n):
    lo, hi = w.min(), w.max()
    delta = (hi - lo) / F32(2 ** n - 1)
    if float(delta) == 0.0:
        return w.copy()
    return lo + delta * xp.rint((w - lo) / delta)


def sawb_levels(xp, w, n, alpha):
    """Eq. 9, 11 on symmetric [−α, α] (α an array of candidates broadcasting against w)."""
    delta = F32(2.0) * alpha / F32(2 ** n - 1)
    return -alpha + delta * xp.rint((xp.clip(w, -alpha, alpha) + alpha) / delta)


def sawb(xp, w, n, grid):
    """α* = argmin_α mean (w − Q(w; n, α))² over α ∈ max|w|·(1..grid)/grid (eq. 10)."""
    m = xp.abs(w).max()
    if float(m) == 0.0:
        return w.copy()
    alphas = m * (xp.arange(1, grid + 1, dtype=F32) / F32(grid))
    flat = w.reshape(1, -1)
    err = ((flat - sawb_levels(xp, flat, n, alphas[:, None])) ** 2).mean(axis=1)
    best = alphas[int(xp.argmin(err))]
    return sawb_levels(xp, w, n, best)


def bwn(xp, w):
    beta = xp.abs(w).mean()
    return xp.where(w >= 0, beta, -beta).astype(w.dtype)


def twn(xp, w):
    a = xp.abs(w)
    delta = F32(0.7) * a.mean()
    big = a > delta
    count = int(big.sum())
    beta = (a * big).sum() / F32(max(count, 1))
    return (xp.sign(w) * big * beta).astype(w.dtype)


def apply_quantizer(xp, w, kind, n, grid=64):
    if kind == "MinMax":
        return minmax(xp, w, n)
    if kind == "SAWB":
        return sawb(xp, w, n, grid)
    if kind == "BWN":
        return bwn(xp, w)
    if kind == "TWN":
        return twn(xp, w)
    return w.copy()


def tempered_softmax(xp, alpha, T):
    z = alpha / F32(T)
    e = xp.exp(z - z.max())
    return e / e.sum()


class TemperedSoftmax(Function):
    """a = softmax(α/T) on a 1-D α; g_α = a⊙(g − Σ a·g)/T."""

    def __init__(self, T):
        self.T = T

    def forward(self, xp, alpha):
        a = tempered_softmax(xp, alpha, self.T)
        if self.needs_backward:
            self.saved = a
        return a

    def backward(self, xp, gy, needs_grad):
        a = self.saved
        return (a * (gy - (a * gy).sum()) / F32(self.T),)


class AttentionMix(Function):
    """q = Σ_k a_k·Q_k(w) on (w, a): g_w = g·Σ_k a_k (STE in every Q_k), g_a_k = Σ g·Q_k(w)."""

    def __init__(self, specs, grid):
        self.specs, self.grid = specs, grid

    def check_inputs(self, w, a):
        expect(a.shape == (len(self.specs),),
               f"DQA: attention of shape {a.shape} for {len(self.specs)} quantizers")

    def forward(self, xp, w, a):
        qs = xp.stack([apply_quantizer(xp, w, kind, n, self.grid) for kind, n in self.specs])
        y = xp.tensordot(a, qs, axes=1).astype(w.dtype)
        if self.needs_backward:
            self.saved = (qs, a)
        return y

    def backward(self, xp, gy, needs_grad):
        qs, a = self.saved
        gw = gy * a.sum() if needs_grad[0] else None
        ga = (qs * gy[None]).reshape(len(a), -1).sum(axis=1) if needs_grad[1] else None
        return gw, ga


def temperature(t0, t_end, steps, b):
    """T(b) = T(0)·ψ^b, ψ = exp(log(T(B)/T(0))/B) (eq. 5, Algorithm 1)."""
    psi = math.exp(math.log(t_end / t0) / steps)
    return t0 * psi ** b


def initial_alpha(bits):
    """α_k = Σ_{j≠k} n_j / Σ_j n_j (eq. 14): the lowest bit-width gets the largest value."""
    total = float(sum(bits))
    return [(total - n) / total for n in bits]


@WEIGHT_QUANTIZERS.register("DQA")
class DQAWeightQuantizer(ConstraintKeys, WeightQuantizer):
    """``QWeight=DQA``. State: ``<cell>_QWeight_DQA.syntxt`` = "α_1 … α_K step"."""

    quantizers = Key("Quantizers", to_str, default="MinMax2 MinMax4 MinMax8",
                     check=quantizer_list_problem)
    t0 = Key("Temperature", to_float, default=100.0, doc="T(0)")
    t_end = Key("FinalTemperature", to_float, default=0.03, doc="T(B)")
    steps = Key("TemperatureSteps", to_uint, default=0, doc="B: training batches of the schedule")
    lam = Key("Lambda", to_float, default=5.0, doc="regulariser weight λ (eq. 6)")
    penalty_vector = Key("Penalty", list_of(to_float), default=None, doc="g (default 1 4 16 ...)")
    sawb_grid = Key("SAWBGrid", to_uint, default=64)

    alpha_param = LazyParameter("dqa_alpha", lambda q: initial_alpha(q.nbits))
    state_names = ("step",)

    def __init__(self, **values):
        self.step = 0          # batches seen (b of eq. 5)
        self.planned_steps = 0  # B from the training loop when TemperatureSteps is unset
        self.attention = None  # the Variable a of the last forward
        super().__init__(**values)

    def check_keys(self):
        if self.penalty_vector is not None and len(self.penalty_vector) != len(self.specs):
            return "Penalty", (f"{len(self.penalty_vector)} values for {len(self.specs)} "
                               f"quantizers")
        return None

    @property
    def specs(self):
        return parse_quantizers(self.quantizers)

    @property
    def nbits(self):
        return [n for _, n in self.specs]

    def g(self):
        if self.penalty_vector is not None:
            return list(self.penalty_vector)
        return [4.0 ** k for k in range(len(self.specs))]  # 1 4 16 (the paper's §4.1)

    @property
    def schedule_length(self):
        """B: ``TemperatureSteps``, else the training run's batches (``begin_training``)."""
        return self.steps or self.planned_steps

    def begin_training(self, total_batches):
        self.planned_steps = int(total_batches)

    def temperature(self):
        B = self.schedule_length
        if B <= 0:
            return self.t0
        return temperature(self.t0, self.t_end, B, min(self.step, B))

    def quantize(self, weights):
        alpha = follow_device(self.alpha_param, weights[0])
        if grad_enabled():  # one training step (Algorithm 1)
            if self.schedule_length <= 0:
                raise IniError("DQA needs QWeight.TemperatureSteps (B, the number of training "
                               "batches of the temperature schedule)", key="QWeight.TemperatureSteps")
            self.step += 1
            sd = float(alpha.data.std())
            if sd > 0:
                alpha.data[...] = alpha.data / F32(sd)
        a = TemperedSoftmax(self.temperature()).apply(alpha)
        self.attention = a
        return [AttentionMix(self.specs, self.sawb_grid).apply(w, a) for w in weights]

    def _constant(self, values):
        """A constant Variable on the attention's device (g or the bit-widths)."""
        xp = get_xp(self.alpha_param.data)
        return Variable(xp.asarray(values, dtype=F32))

    def penalty(self, total_weights):
        """r(α) = λ·gᵀa/S (eq. 6) with the attention of the last forward; None before one."""
        if self.attention is None or not self.lam:
            return None
        return sum_all(mul(self.attention, self._constant(self.g()))) * float(self.lam / total_weights)

    def attention_values(self):
        """a = softmax(α/T) at the current temperature, as Python floats (for the report)."""
        data = self.alpha_param.data
        return [float(v) for v in asnumpy(tempered_softmax(get_xp(data), data, self.temperature()))]

    def bits(self):
        """Bit-width of the quantizer with the largest attention (one-hot at the end)."""
        a = self.attention_values()
        return self.nbits[a.index(max(a))]

    @property
    def range(self):
        """N2D2's Range R = 2^b − 1 of the chosen quantizer (the size/BitOps report reads it)."""
        return 2 ** self.bits() - 1

    def expected_bits(self):
        return sum(a * n for a, n in zip(self.attention_values(), self.nbits))

    def bits_variable(self):
        """Σ_k a_k·n_k (differentiable through the last forward's attention)."""
        if self.attention is None:
            return None
        return sum_all(mul(self.attention, self._constant(self.nbits)))

    @staticmethod
    def state_file(folder, cell_name):
        return cell_file(folder, cell_name, "_QWeight_DQA.syntxt")

    def export_state(self, folder, cell_name):
        from ..backend import asnumpy
        write_syntxt_rows(self.state_file(folder, cell_name),
                          [asnumpy(self.alpha_param.data).tolist() + [self.step]])

    def import_state(self, folder, cell_name, ignore_missing=False):
        k = len(self.specs)
        values = load_state_values(self.state_file(folder, cell_name), ignore_missing, k + 1,
                                   f"α_1..α_{k} step")
        if values is None:
            return
        xp = get_xp(self.alpha_param.data)
        self.alpha_param.data[...] = xp.asarray(values[:k], dtype=F32)
        self.step = int(values[k])
