"""``Cell``: the base of N2D2's Python cells and containers (``n2d2.cells.Cell`` in N2D2; our
``n2d2py.cells.Cell`` is the base of the cells underneath)."""
from .errors import WrongInputType
from .globals import generate_name


class Cell:
    """Base of every cell and container: a name (``<Class>_<n>`` unless given)."""

    def __init__(self, name=None):
        if name is not None and not isinstance(name, str):
            raise WrongInputType(f"{type(self).__name__}: name must be a string, got "
                                 f"{type(name).__name__}")
        object.__setattr__(self, "_name", name or generate_name(self))
        object.__setattr__(self, "_deepnet", None)

    def _inputs(self, x):
        """The tensors of ``x`` (a Tensor or an Interface); anything else is a WrongInputType."""
        from .tensor import Interface, Tensor
        if isinstance(x, Tensor):
            return [x]
        if isinstance(x, Interface):
            return x.get_tensors()
        raise WrongInputType(f"{self._describe()} received an input of type {type(x).__name__}: "
                             f"expected an n2d2.Tensor or an n2d2.Interface")

    def _describe(self):
        return f"{type(self).__name__} '{self._name}'"

    def get_name(self):
        return self._name

    def get_type(self):
        return type(self).__name__

    def get_deepnet(self):
        return self._deepnet
