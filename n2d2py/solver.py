"""N2D2's ``n2d2.solver`` namespace (``import n2d2py as n2d2``): the Python API's
``api/solver.py``."""
from .api.solver import *  # noqa: F401,F403
from .api.solver import __all__  # noqa: F401
