"""``Solvers=SGD``: N2D2's stochastic gradient descent with momentum, decay, schedules and
gradient accumulation (docs/INI.md §8).

N2D2's rule on the negative summed gradient ``Δ = −Σ_batch ∂L/∂w`` (over the ``I`` accumulated
batches too), with ``r = rate / (B·I)``:

    Momentum == Decay == 0:  w += r·Δ
    otherwise:               v = Momentum·v + r·Δ − Decay·rate·w;   w += v
    then clamp to ``Clamping``.

With our batch-mean gradients ``g_i`` (one per accumulated batch), ``r·Δ = −rate/I · Σ_i g_i``,
so B drops out of the step; it still sets the stimuli count of the schedule. Decay uses the raw
``rate``: it is torch's ``weight_decay`` added to the gradient, since ``rate·(g + Decay·w)``.
"""
from ..ini.convert import enum, to_bool, to_float, to_uint
from ..params import Key
from . import lr_policy
from .base import SOLVERS, Solver, clamp_


def _positive(text):
    value = to_uint(text)
    if value < 1:
        raise ValueError(f"expected a positive integer, got {text!r}")
    return value


@SOLVERS.register("SGD")
class SGDSolver(Solver):
    """N2D2 ``SGDSolver``: its keys and defaults (docs/INI.md §8)."""

    learning_rate = Key("LearningRate", to_float, default=0.01, doc="base learning rate")
    momentum = Key("Momentum", to_float, default=0.0)
    decay = Key("Decay", to_float, default=0.0, doc="L2 decay, applied as Decay·rate·w")
    learning_rate_policy = Key("LearningRatePolicy", enum(*lr_policy.POLICIES), default="None")
    learning_rate_step_size = Key("LearningRateStepSize", _positive, default=1,
                                  doc="schedule step, in stimuli (samples)")
    learning_rate_decay = Key("LearningRateDecay", to_float, default=0.1)
    power = Key("Power", to_float, default=0.0, doc="exponent of PolyDecay and InvDecay")
    max_iterations = Key("MaxIterations", to_uint, default=0,
                         doc="PolyDecay horizon (iterations), CosineDecay's (steps); caps the counter")
    iteration_size = Key("IterationSize", _positive, default=1,
                         doc="accumulate gradients over this many batches per update")
    warm_up_duration = Key("WarmUpDuration", to_uint, default=0, doc="CosineDecay warm-up, in steps")
    warm_up_lr_frac = Key("WarmUpLRFrac", to_float, default=0.25)
    min_decay = Key("MinDecay", to_float, default=0.0, doc="CosineDecay floor, fraction of the rate")
    polyak_momentum = Key("PolyakMomentum", to_bool, default=True,
                          doc="accepted for compatibility; N2D2's update ignores it")

    _state_arrays = ("momentum_buffer", "accumulated")
    _state_numbers = ("iteration", "iteration_pass")

    def __init__(self, **values):
        super().__init__(**values)
        self.iteration = 0        # N2D2 mNbIterations: updates done (capped at MaxIterations)
        self.iteration_pass = 0   # N2D2 mIterationPass: batches accumulated in this cycle
        self.momentum_buffer = None
        self.accumulated = None

    def learning_rate_at(self, iteration, batch_size):
        """The rate N2D2 uses for update number ``iteration`` (0-based) at this batch size."""
        return lr_policy.scheduled_rate(
            self.learning_rate_policy, self.learning_rate, iteration, batch_size,
            iteration_size=self.iteration_size, step_size=self.learning_rate_step_size,
            decay=self.learning_rate_decay, power=self.power, max_iterations=self.max_iterations,
            warm_up_duration=self.warm_up_duration, warm_up_lr_frac=self.warm_up_lr_frac,
            min_decay=self.min_decay)

    def _next_rate(self, batch_size):
        """Advance the counters like N2D2's ``getLearningRate``; return (rate, notice)."""
        if self.learning_rate == 0.0:
            return 0.0, None
        it = self.iteration
        rate = self.learning_rate_at(it, batch_size)
        notice = lr_policy.rate_notice(self.learning_rate_policy, rate, it, self.iteration_size,
                                       batch_size, self.learning_rate_step_size)
        if self.max_iterations == 0 or it < self.max_iterations:
            self.iteration = it + 1
        return rate, notice

    def _step(self, xp, w, g, batch_size):
        I = self.iteration_size
        if I > 1:
            # N2D2 sums Δ over the I batches of a cycle; the first I−1 calls only accumulate.
            self.accumulated = g.copy() if self.iteration_pass == 0 else self.accumulated + g
            if self.iteration_pass < I - 1:
                self.iteration_pass += 1
                return None
            self.iteration_pass = 0
            g, self.accumulated = self.accumulated, None
        rate, notice = self._next_rate(batch_size)
        if rate == 0.0:
            return notice
        step = rate / I  # r·B: our g is already the batch mean
        if self.momentum == 0.0 and self.decay == 0.0:
            w -= step * g
        else:
            if self.momentum_buffer is None:
                self.momentum_buffer = xp.zeros_like(w)
            v = self.momentum_buffer
            v *= self.momentum
            v -= step * g
            if self.decay != 0.0:
                v -= (self.decay * rate) * w
            w += v
        clamp_(xp, w, self.clamping)
        return notice
