"""N2D2's ``n2d2.cells.nn`` namespace (``from n2d2py.cells.nn import Conv, Fc, ...``): the
Python API's views of our cells, ``api/nn.py``."""
from ..api.nn import *  # noqa: F401,F403
from ..api.nn import __all__  # noqa: F401
