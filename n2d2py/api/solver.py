"""``n2d2.solver``: SGD and Adam (N2D2's names and keyword arguments) over ``solvers/``.

A solver given to a cell is the template of every Parameter's own solver (N2D2 clones it per
weight tensor); the view a built cell returns (``cell.weights_solver``) also passes parameter
changes on to those clones, so ``set_solver_parameter`` acts on the running training.
"""
from ..solvers import AdamSolver, SGDSolver
from .view import View


class Solver(View):
    """Base of the solvers."""

    def _targets(self):
        return [self._core] + list(self.__dict__.get("_clones", lambda: [])())

    def copy(self):
        return type(self).from_core(self._core.clone())


class SGD(Solver):
    """N2D2's ``SGDSolver``: learning_rate, momentum, decay, learning_rate_policy, ..."""
    _core_class = SGDSolver


class Adam(Solver):
    """N2D2's ``AdamSolver``: learning_rate, beta1, beta2, epsilon, clamping."""
    _core_class = AdamSolver


def bound(solver, clones):
    """``solver`` (a view) whose parameter changes also go to ``clones()`` (Parameters' solvers)."""
    object.__setattr__(solver, "_clones", clones)
    return solver


__all__ = ["Solver", "SGD", "Adam"]
