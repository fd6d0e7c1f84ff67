"""``n2d2.ConfigSection``: keyword arguments kept together and given with ``**`` (N2D2's is a
dict too). Give each cell its own: a solver or quantizer object in one would be shared."""
from collections import UserDict


class ConfigSection(UserDict):
    """A dict of keyword arguments (``n2d2.ConfigSection(learning_rate=0.05, ...)``)."""
