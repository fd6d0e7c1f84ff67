"""N2D2's ``n2d2.activation`` namespace (``import n2d2py as n2d2``): the Python API's
``api/activation.py``."""
from .api.activation import *  # noqa: F401,F403
from .api.activation import __all__  # noqa: F401
