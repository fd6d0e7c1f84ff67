"""Solvers (``Solvers=``, ``WeightsSolver=``, ``BiasSolver=``, ...): ``SOLVERS.get("SGD")``.

One solver instance per Parameter (``Solver.clone()``); ``update(param, batch_size)`` applies
N2D2's rule from the batch-mean gradient (docs/INI.md §8; docs/ARCHITECTURE.md).
"""
from .base import SOLVERS, Solver, to_clamping
from .sgd import SGDSolver
from .adam import AdamSolver
from .lr_policy import POLICIES, scheduled_rate, stimuli_step

__all__ = ["SOLVERS", "Solver", "SGDSolver", "AdamSolver", "POLICIES", "scheduled_rate",
           "stimuli_step", "to_clamping", "default_solver"]


def default_solver():
    """What every Conv/Deconv/Fc/BatchNorm parameter starts with: SGD with N2D2's defaults."""
    return SGDSolver()
