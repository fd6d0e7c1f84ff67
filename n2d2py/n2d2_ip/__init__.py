"""N2D2's ``n2d2_ip`` package (``from n2d2py import n2d2_ip``): ``n2d2_ip.quantizer`` (SATCell,
SATAct, LSQCell, LSQAct, fuse_qat), the Python API's ``api/quantizer.py``."""
from . import quantizer  # noqa: F401
