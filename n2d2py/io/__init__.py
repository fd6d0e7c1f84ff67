"""Weight files: N2D2's ``.syntxt`` text format (``syntxt.py``, spec/ini.md §6.4)."""
from . import syntxt  # noqa: F401
