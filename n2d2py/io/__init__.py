"""Files: N2D2's ``.syntxt`` weights (``syntxt.py``) and NumPy arrays (``arrays.py``)."""
from . import arrays, syntxt  # noqa: F401
