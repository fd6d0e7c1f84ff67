"""``Solvers=Adam``: N2D2's Adam (docs/INI.md §8).

N2D2 feeds Adam the gradient **summed** over the batch, without dividing by B, so with our
batch-mean gradient ``g`` the moments see ``G = B·g``. At step t (1-based):

    m = β1·m + (1−β1)·G;   v = β2·v + (1−β2)·G²
    α = lr·sqrt(1−β2^t)/(1−β1^t);   ε' = ε·sqrt(1−β2^t)
    w −= α·m/(sqrt(v) + ε');   then clamp.

This is textbook Adam on G; on the batch-mean gradient it equals textbook Adam with ε/B.
N2D2's Adam has no IterationSize: every call updates.
"""
import math

from ..ini.convert import to_float
from ..params import Key
from .base import SOLVERS, Solver, clamp_


@SOLVERS.register("Adam")
class AdamSolver(Solver):
    """N2D2 ``AdamSolver``: its keys and defaults (docs/INI.md §8)."""

    learning_rate = Key("LearningRate", to_float, default=0.001)
    beta1 = Key("Beta1", to_float, default=0.9)
    beta2 = Key("Beta2", to_float, default=0.999)
    epsilon = Key("Epsilon", to_float, default=1e-8)

    _state_arrays = ("moment1", "moment2")
    _state_numbers = ("steps",)

    def __init__(self, **values):
        super().__init__(**values)
        self.steps = 0          # N2D2 mNbSteps
        self.moment1 = None
        self.moment2 = None

    def learning_rate_at(self, iteration, batch_size):
        """Adam has no schedule: the base rate for every iteration."""
        return self.learning_rate

    def _step(self, xp, w, g, batch_size):
        self.steps += 1
        t = self.steps
        if self.moment1 is None:
            self.moment1, self.moment2 = xp.zeros_like(w), xp.zeros_like(w)
        G = g * float(batch_size)  # N2D2's Adam sees the batch-summed gradient
        m, v = self.moment1, self.moment2
        m *= self.beta1
        m += (1.0 - self.beta1) * G
        v *= self.beta2
        v += (1.0 - self.beta2) * (G * G)
        correction2 = math.sqrt(1.0 - self.beta2 ** t)
        alpha = self.learning_rate_at(t - 1, batch_size) * correction2 / (1.0 - self.beta1 ** t)
        w -= alpha * m / (xp.sqrt(v) + self.epsilon * correction2)
        clamp_(xp, w, self.clamping)
        return None
