"""N2D2's ``n2d2.quantizer`` namespace (``import n2d2py as n2d2``): the Python API's
``api/quantizer.py``."""
from .api.quantizer import *  # noqa: F401,F403
from .api.quantizer import __all__  # noqa: F401
