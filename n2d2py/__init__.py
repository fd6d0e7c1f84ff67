"""n2d2py: N2D2's INI workflow (build, train, quantize, fuse, export) on NumPy/CuPy.

Public names: Variable, Parameter, no_grad, functions (as F), load_ini, DeepNet.

N2D2's Python API (``import n2d2py as n2d2``, docs/PYTHON_API.md): ``n2d2.database``,
``n2d2.provider``, ``n2d2.transform``, ``n2d2.cells`` (``n2d2.cells.nn``), ``n2d2.activation``,
``n2d2.solver``, ``n2d2.filler``, ``n2d2.target``, ``n2d2.quantizer``, ``n2d2.export``,
``n2d2.Tensor``, ``n2d2.Interface``, ``n2d2.ConfigSection``, ``n2d2.global_variables``,
``n2d2.error_handler``; ``from n2d2py import n2d2_ip`` for ``n2d2_ip.quantizer``. Loaded on
first use (``api/``), like every heavy part of the package.
"""
import importlib

from .autograd import Parameter, Variable, no_grad
from . import functions
from . import functions as F  # noqa: F401
from .errors import N2D2Error

__version__ = "0.1.0"

#: submodules loaded on first attribute access (N2D2's API namespaces among them)
_SUBMODULES = ("cells", "target", "deepnet", "database", "provider", "transform", "activation",
               "solver", "filler", "quantizer", "export", "n2d2_ip")
#: N2D2 API names -> the api/ module defining them
_API_NAMES = {"Tensor": "tensor", "Interface": "tensor", "ConfigSection": "config",
              "global_variables": "globals"}


def __getattr__(name):  # lazy: the INI/DeepNet layer imports cv2, onnx, ... only when used
    if name == "load_ini":
        from .ini import load_ini
        return load_ini
    if name == "DeepNet":
        from .deepnet import DeepNet
        return DeepNet
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _API_NAMES:
        return getattr(importlib.import_module(f".api.{_API_NAMES[name]}", __name__), name)
    if name == "error_handler":
        return importlib.import_module(".api.errors", __name__)
    raise AttributeError(f"module 'n2d2py' has no attribute {name!r}")
