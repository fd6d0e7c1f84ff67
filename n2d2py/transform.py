"""N2D2's ``n2d2.transform`` namespace (``import n2d2py as n2d2``): the Python API's
``api/transform.py``."""
from .api.transform import *  # noqa: F401,F403
from .api.transform import __all__  # noqa: F401
