"""Files: N2D2's ``.syntxt`` weights (``syntxt.py``, spec/ini.md §6.4) and NumPy arrays (``arrays.py``)."""
from . import arrays, syntxt  # noqa: F401
