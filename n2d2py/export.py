"""N2D2's ``n2d2.export`` namespace (``import n2d2py as n2d2``): the Python API's
``api/export.py``."""
from .api.export import *  # noqa: F401,F403
from .api.export import __all__  # noqa: F401
