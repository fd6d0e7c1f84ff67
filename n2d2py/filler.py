"""N2D2's ``n2d2.filler`` namespace (``import n2d2py as n2d2``): the Python API's
``api/filler.py``."""
from .api.filler import *  # noqa: F401,F403
from .api.filler import __all__  # noqa: F401
