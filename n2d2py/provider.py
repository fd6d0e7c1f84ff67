"""N2D2's ``n2d2.provider`` namespace (``import n2d2py as n2d2``): the Python API's
``api/provider.py``."""
from .api.provider import *  # noqa: F401,F403
from .api.provider import __all__  # noqa: F401
