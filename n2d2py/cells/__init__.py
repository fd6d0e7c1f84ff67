"""Cells: the stateful, INI-facing layers, registered by INI ``Type`` in ``CELLS``
(docs/ARCHITECTURE.md "Cells"; the types: docs/INI.md §6). Importing it fills the registry.

This package is also N2D2's ``n2d2.cells`` namespace: ``Sequence``, ``DeepNetCell``, ``Conv``
... (the Python API's containers and cell views, ``api/cells.py`` and ``api/nn.py``, and
``cells/nn.py`` for ``n2d2.cells.nn``) are looked up there on first use. ``Cell`` stays our
cells' base class."""
import importlib
from .base import CELLS, Cell, WeightedCell, DimsKey, dims_key
from .activation_functions import ACTIVATIONS
from .activation import ActivationCell
from . import conv, fc, pool, batchnorm, dropout, elemwise, softmax, misc  # noqa: F401  (registration)
from . import channel_shuffle  # noqa: F401  (registration)
from .conv import ConvCell, DeconvCell
from .fc import FcCell
from .pool import PoolCell
from .batchnorm import BatchNormCell
from .dropout import DropoutCell
from .elemwise import ElemWiseCell
from .softmax import SoftmaxCell
from .mapping import MappingSpec, clean_groups, group_map, pattern_map

__all__ = ["CELLS", "Cell", "WeightedCell", "ACTIVATIONS", "DimsKey", "dims_key", "ActivationCell",
           "ConvCell", "DeconvCell", "FcCell", "PoolCell", "BatchNormCell", "DropoutCell",
           "ElemWiseCell", "SoftmaxCell", "MappingSpec", "clean_groups", "group_map",
           "pattern_map"]


#: the Python API modules serving N2D2's ``n2d2.cells`` names (loaded by name on first use: our
#: cells never depend on the API, the API depends on them)
_N2D2_NAMESPACE = ("n2d2py.api.cells", "n2d2py.api.nn")


def __getattr__(name):
    if name == "nn":
        return importlib.import_module(f"{__name__}.nn")
    for module_name in _N2D2_NAMESPACE:
        module = importlib.import_module(module_name)
        if name in module.__all__:
            return getattr(module, name)
    raise AttributeError(f"module 'n2d2py.cells' has no attribute {name!r}")
