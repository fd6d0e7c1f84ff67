"""``n2d2.Tensor`` and ``n2d2.Interface``: what flows between the cells of N2D2's Python API.

A Tensor holds one of our ``Variable``s (a NumPy array that records the functions applied to
it) and remembers where it comes from: ``cell`` (the provider, cell or target that made it) and
its ``DeepNet`` (the cells this batch went through, ``get_deepnet()``). Dimensions follow N2D2:
``dims()`` is innermost first (X, Y, Z, B), ``shape()`` the NumPy order (B, Z, Y, X).
"""
import numbers

import numpy

from ..autograd import Variable
from .errors import WrongInputType, WrongValue

DATATYPES = {"float": numpy.float32, "double": numpy.float64, "int": numpy.int32,
             "long": numpy.int64, "bool": numpy.bool_, "unsigned char": numpy.uint8,
             "char": numpy.int8, "short": numpy.int16, "unsigned short": numpy.uint16,
             "unsigned int": numpy.uint32}
_NAMES = {numpy.dtype(v): k for k, v in DATATYPES.items()}


class Tensor:
    """N2D2's ``n2d2.Tensor`` (see the module docstring)."""

    def __init__(self, dims, value=None, cuda=False, datatype="float", cell=None,
                 dim_format="Numpy"):
        if not isinstance(dims, (list, tuple)) or not all(
                isinstance(d, numbers.Integral) and d >= 0 for d in dims):
            raise WrongInputType(f"Tensor: dims must be a list of non-negative ints, got {dims!r}")
        if dim_format not in ("Numpy", "N2D2"):
            raise WrongValue(f"Tensor: dim_format={dim_format!r}: expected 'Numpy' or 'N2D2'")
        if datatype not in DATATYPES:
            raise WrongValue(f"Tensor: datatype={datatype!r}: expected one of "
                             f"{', '.join(DATATYPES)}")
        if cuda:
            from .globals import notice
            notice("Tensor(cuda=True): n2d2py's Python API keeps tensors on the CPU")
        shape = tuple(dims) if dim_format == "Numpy" else tuple(reversed(dims))
        data = numpy.full(shape, 0 if value is None else value, DATATYPES[datatype])
        self._variable = Variable(data)
        self.cell, self._deepnet, self._leaf, self.is_cuda = cell, None, False, False

    @classmethod
    def _wrap(cls, variable, cell=None, deepnet=None):
        tensor = cls.__new__(cls)
        tensor._variable, tensor.cell, tensor._deepnet = variable, cell, deepnet
        tensor._leaf, tensor.is_cuda = False, False
        return tensor

    # -- conversions ------------------------------------------------------------------------------
    def N2D2(self):
        """The ``Variable`` underneath (our array with its gradient graph)."""
        return self._variable

    def to_numpy(self, copy=False):
        data = numpy.asarray(self._variable.data)
        return data.copy() if copy else data

    @classmethod
    def from_numpy(cls, np_array):
        if not isinstance(np_array, numpy.ndarray):
            raise WrongInputType(f"Tensor.from_numpy: expected a numpy.ndarray, got "
                                 f"{type(np_array).__name__}")
        if np_array.dtype not in _NAMES:
            raise WrongValue(f"Tensor.from_numpy: unsupported dtype {np_array.dtype}")
        return cls._wrap(Variable(numpy.array(np_array)))

    def __array__(self, dtype=None, copy=None):
        data = self.to_numpy()
        return data if dtype is None else data.astype(dtype)

    # -- dimensions ----------------------------------------------------------------------------
    def shape(self):
        return list(self._variable.shape)

    def dims(self):
        return list(reversed(self._variable.shape))

    def nb_dims(self):
        return len(self._variable.shape)

    def _dim(self, index):
        dims = self.dims()
        return dims[index] if index < len(dims) else 1

    def dimX(self):
        return self._dim(0)

    def dimY(self):
        return self._dim(1)

    def dimZ(self):
        return self._dim(2)

    def dimB(self):
        return self._dim(3)

    def data_type(self):
        return _NAMES.get(numpy.dtype(self._variable.dtype), str(self._variable.dtype))

    def reshape(self, new_dims):
        data = self.to_numpy()
        if int(numpy.prod(new_dims)) != data.size:
            raise WrongValue(f"Tensor.reshape: {list(new_dims)} holds {int(numpy.prod(new_dims))} "
                             f"values, the tensor {data.size}")
        self._variable = Variable(data.reshape(tuple(new_dims)))

    def copy(self):
        return Tensor._wrap(Variable(self.to_numpy(copy=True)), self.cell)

    def mean(self):
        return float(self.to_numpy().mean())

    # -- elements --------------------------------------------------------------------------------
    def _index(self, index):
        if isinstance(index, (tuple, list)):
            return tuple(index)
        return numpy.unravel_index(int(index), self._variable.shape)

    def __getitem__(self, index):
        value = self.to_numpy()[self._index(index)]
        return value.item() if numpy.ndim(value) == 0 else value

    def __setitem__(self, index, value):
        if isinstance(index, slice):
            self.to_numpy().reshape(-1)[index] = value
        else:
            self.to_numpy()[self._index(index)] = value

    def set_values(self, values):
        self.to_numpy()[...] = numpy.asarray(values).reshape(self._variable.shape)

    def __len__(self):
        return int(self._variable.size)

    def __iter__(self):
        return iter(self.to_numpy().reshape(-1).tolist())

    def __contains__(self, value):
        return bool((self.to_numpy() == value).any())

    def __eq__(self, other):
        if not isinstance(other, Tensor):
            raise WrongInputType("Tensor: only a Tensor can be compared with a Tensor")
        return self.shape() == other.shape() and bool(numpy.array_equal(self.to_numpy(),
                                                                        other.to_numpy()))

    __hash__ = object.__hash__

    # -- graph -------------------------------------------------------------------------------------
    def get_deepnet(self):
        """The ``DeepNet`` of the cells this tensor went through (a tensor made by the user gets
        one of its own, as N2D2's ``TensorPlaceholder`` does)."""
        if self._deepnet is None:
            from .deepnet import DeepNet
            self._deepnet = DeepNet(input_shape=tuple(self._variable.shape[1:]))
            self._deepnet._input = self._variable
        return self._deepnet

    def get_tensors(self):
        return [self]

    def detach(self):
        self.cell, self._deepnet = None, None
        return self

    def is_leaf(self):
        return self._leaf

    def back_propagate(self):
        """Gradients of the loss this tensor holds (a target's output) into every cell."""
        self._check_leaf("back_propagate")
        self._deepnet.back_propagate()

    def update(self):
        """Every solver's update of the cells this loss came through."""
        self._check_leaf("update")
        self._deepnet.update()

    def _check_leaf(self, what):
        if not self._leaf or self._deepnet is None:
            raise WrongValue(f"Tensor.{what}(): this tensor is not a loss (the output of a target "
                             f"such as n2d2.target.Score)")

    def draw_associated_graph(self, path):
        self.get_deepnet().draw_graph(path)

    def __str__(self):
        cell = f", cell='{self.cell.get_name()}'" if hasattr(self.cell, "get_name") else ""
        return (f"n2d2.Tensor({self.to_numpy()!r}, device=cpu, datatype={self.data_type()}"
                f"{cell})")

    __repr__ = __str__


class Interface:
    """Several tensors of one batch given together to a cell (their channels concatenated)."""

    def __init__(self, tensors):
        if not isinstance(tensors, list) or not tensors:
            raise WrongInputType("Interface: expected a non-empty list of Tensors")
        for tensor in tensors:
            if not isinstance(tensor, Tensor):
                raise WrongInputType(f"Interface: expected Tensors, got {type(tensor).__name__}")
        first = tensors[0]
        for tensor in tensors[1:]:
            if (tensor.dimX(), tensor.dimY(), tensor.dimB()) != (first.dimX(), first.dimY(),
                                                                 first.dimB()):
                raise WrongValue(f"Interface: tensors of different sizes {first.dims()} and "
                                 f"{tensor.dims()} (X, Y and B must match)")
        deepnets = {id(t._deepnet) for t in tensors if t._deepnet is not None}
        if len(deepnets) > 1:
            raise WrongValue("Interface: the tensors come from different DeepNets (batches)")
        self.tensors = list(tensors)

    def get_tensors(self):
        return self.tensors

    def get_deepnet(self):
        return next((t._deepnet for t in self.tensors if t._deepnet is not None), None) or \
            self.tensors[0].get_deepnet()

    def dimX(self):
        return self.tensors[0].dimX()

    def dimY(self):
        return self.tensors[0].dimY()

    def dimZ(self):
        return sum(t.dimZ() for t in self.tensors)

    def dimB(self):
        return self.tensors[0].dimB()

    def dims(self):
        return [self.dimX(), self.dimY(), self.dimZ(), self.dimB()]

    def __len__(self):
        return len(self.tensors)

    def __getitem__(self, item):
        return self.tensors[item]


__all__ = ["Tensor", "Interface"]
