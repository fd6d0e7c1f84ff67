"""Cells: the stateful, INI-facing layers, registered by INI ``Type`` in ``CELLS``
(docs/ARCHITECTURE.md "Cells"; spec/ini.md §2.8). Importing this package fills the registry."""
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
