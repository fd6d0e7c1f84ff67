"""N2D2's ``n2d2.database`` namespace (``import n2d2py as n2d2``): the Python API's
``api/database.py``."""
from .api.database import *  # noqa: F401,F403
from .api.database import __all__  # noqa: F401
