"""n2d2py: N2D2's INI workflow (build, train, quantize, fuse, export) on NumPy/CuPy.

Public names: Variable, Parameter, no_grad, functions (as F), load_ini, DeepNet.
"""
from .autograd import Parameter, Variable, no_grad
from . import functions
from . import functions as F  # noqa: F401
from .errors import N2D2Error

__version__ = "0.1.0"


def __getattr__(name):  # lazy: the INI/DeepNet layer imports cv2, onnx, ... only when used
    if name == "load_ini":
        from .ini import load_ini
        return load_ini
    if name == "DeepNet":
        from .deepnet import DeepNet
        return DeepNet
    raise AttributeError(f"module 'n2d2py' has no attribute {name!r}")
