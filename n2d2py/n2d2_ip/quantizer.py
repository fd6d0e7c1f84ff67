"""N2D2's ``n2d2_ip.quantizer`` namespace: the Python API's ``api/quantizer.py``."""
from ..api.quantizer import *  # noqa: F401,F403
from ..api.quantizer import __all__  # noqa: F401
