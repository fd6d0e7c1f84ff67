"""``n2d2.cells.nn``: the neural-network cells of N2D2's Python API over our cells
(``cells/``): ``Conv``, ``ConvDepthWise``, ``ConvPointWise``, ``Deconv``, ``Fc``,
``BatchNorm2d``, ``Pool``, ``Pool2d``, ``GlobalPool2d``, ``Dropout``, ``Softmax``,
``Activation``, ``ElemWise``, ``Padding``, ``Reshape``, ``Transpose``, ``Resize`` (and, for the
cells of an INI or ONNX network, a generic view of any other cell).

A view holds one of our cells (``N2D2()``) — the object an INI section builds, with the same
Keys, fillers, solvers and quantizers, so exports, ``--report``-style statistics and the QAT
fusion see no difference. Conv, Deconv, Fc and BatchNorm2d are built when made (their weights
exist before the first call, as in N2D2: ``import_free_parameters`` and ``set_weights_filler``
work at once), on a nominal input that the first call re-aims (``Cell.set_input_shapes``); the
other cells are built at their first call, from the input they get. Cells read the session's
``global_variables`` (``build_rng()`` for fillers and dropout masks, ``default_model``).

Wrong use fails before any array code: an unknown keyword, a value the Key refuses, a quantizer
on a cell without weights, an input whose channels or size do not fit — a ``WrongInputType`` or
``WrongValue`` naming the cell and the argument.
"""
import os

from ..autograd import no_grad
from ..cells import (ActivationCell, BatchNormCell, ConvCell, DeconvCell, DropoutCell,
                     ElemWiseCell, FcCell, PoolCell, SoftmaxCell)
from ..cells.mapping import MappingSpec
from ..cells.misc import PaddingCell, ReshapeCell, ResizeCell, TransposeCell
from ..errors import N2D2Error
from ..fillers import default_filler
from ..solvers import default_solver
from .activation import ActivationFunction, Linear, activation_of
from .cell import Cell
from .errors import WrongInputType, WrongValue, check_type, unknown_argument
from .filler import Filler
from .globals import global_variables
from .options import convert, python_keys
from .quantizer import ActivationQuantizer, CellQuantizer, weight_quantizer_of
from .solver import Solver, bound
from .view import without_pure_n2d2

#: Parameter groups of our cells' solver roles (``Cell.new_parameter``)
ROLE_GROUPS = {"Weights": "weights", "Bias": "biases", "Scale": "scales"}


class _RoleSlot:
    """A cell attribute standing for one parameter role (``Weights``, ``Bias``, ``Scale``)."""

    def __init__(self, role):
        self.role = role

    def __set_name__(self, owner, name):
        self.name = name


class _SolverSlot(_RoleSlot):
    """``weights_solver`` / ``bias_solver`` / ``scale_solver``: the role's template; reading
    gives a view whose changes reach the Parameters' own solvers too."""

    def __get__(self, cell, owner=None):
        if cell is None:
            return self
        return cell._solver_view(self.role)

    def __set__(self, cell, solver):
        cell._set_solver(self.name, self.role, solver)


class _FillerSlot(_RoleSlot):
    """``weights_filler`` / ``bias_filler``: the filler of the next (re)fill."""

    def __get__(self, cell, owner=None):
        if cell is None:
            return self
        core = cell.N2D2()
        if self.role not in core.fillers:
            core.fillers[self.role] = default_filler()
        return Filler.from_core(core.fillers[self.role])

    def __set__(self, cell, filler):
        check_type(cell._describe(), self.name, filler, Filler, "an n2d2.filler filler")
        cell.N2D2().fillers[self.role] = filler.N2D2()


class NeuralNetworkCell(Cell):
    """Base of the cell views (see the module docstring)."""
    _core_class = None
    _renamed = {}
    _skip = ()
    _eager = False           # built when made (weights before the first call)
    _nb_outputs_from_input = False   # NbOutputs = the input channels (Pool2d, Dropout, ...)
    _registry = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        core = cls.__dict__.get("_core_class")
        if core is not None:
            NeuralNetworkCell._registry.setdefault(core, cls)

    _positional = ()         # names of the positional arguments (Padding, Reshape, ...)
    _runtime_keys = ()       # cell keys (not config ones) a built cell may still change

    def __init__(self, *args, core_values=None, **config_parameters):
        if len(args) > len(self._positional):
            raise WrongInputType(f"{type(self).__name__}: takes {len(self._positional)} "
                                 f"positional arguments, got {len(args)}")
        config_parameters.update(zip(self._positional, args))
        missing = [n for n in self._positional if n not in config_parameters]
        if missing:
            raise WrongInputType(f"{type(self).__name__}: missing argument {', '.join(missing)}")
        Cell.__init__(self, config_parameters.pop("name", None))
        core = self._core_class(name=self._name, parents=["env"], **(core_values or {}))
        core.model = global_variables.default_model
        object.__setattr__(self, "_core", core)
        object.__setattr__(self, "_inference", False)
        object.__setattr__(self, "_activation", None)
        object.__setattr__(self, "_quantizer", None)
        self._configure(config_parameters)

    @classmethod
    def _from_core(cls, core):
        view = cls.__new__(cls)
        for name, value in (("_core", core), ("_name", core.name), ("_deepnet", None),
                            ("_inference", False), ("_activation", None), ("_quantizer", None),
                            ("_nb_inputs", cls._nb_inputs_of(core.in_shapes or []))):
            object.__setattr__(view, name, value)
        return view

    @staticmethod
    def _nb_inputs_of(shapes):
        """What N2D2 calls nb_inputs for inputs of ``shapes``: their channels."""
        return sum(int(s[0]) for s in shapes)

    def N2D2(self):
        return self._core

    # -- keyword arguments ---------------------------------------------------------------------------
    @classmethod
    def _keys(cls):
        if "_keys_cache" not in cls.__dict__:
            cls._keys_cache = python_keys(cls._core_class, cls._renamed,
                                          cls._skip + ("nb_outputs",))
        return cls._keys_cache

    @classmethod
    def _objects(cls):
        """The keyword arguments that are objects (properties of the view)."""
        return {name for klass in cls.__mro__ for name, value in vars(klass).items()
                if isinstance(value, (property, _SolverSlot, _FillerSlot))}

    def _configure(self, options):
        options = without_pure_n2d2(self._describe(), options)
        objects = self._objects()
        for name in ("solver", "filler"):          # the shared ones first: specific ones win
            if name in options:
                setattr(self, name, options.pop(name))
        for name in [n for n in options if n in objects]:
            setattr(self, name, options.pop(name))
        keys = self._keys()
        for name, value in options.items():
            key = keys.get(name)
            if key is None:
                raise unknown_argument(self._describe(), name, set(keys) | objects)
            if value is None:
                continue
            if self._built() and (not key.config or key.attr == "no_bias") \
                    and key.attr not in self._runtime_keys:
                raise WrongValue(f"{self._describe()}: {name} cannot change once the cell is "
                                 f"built (its weights and output size depend on it)")
            setattr(self._core, key.attr, convert(self._describe(), name, key, value))

    def set_parameter(self, key, value):
        self._configure({key: value})

    def get_parameter(self, key):
        if key in self._objects():
            return getattr(self, key)
        keys = self._keys()
        if key not in keys:
            raise unknown_argument(self._describe(), key, set(keys) | self._objects())
        return getattr(self._core, keys[key].attr)

    def __getattr__(self, name):        # names not found the usual way: the Keys
        keys = type(self)._keys()
        if name in keys and "_core" in self.__dict__:
            return getattr(self._core, keys[name].attr)
        if name == "name" and "_core" in self.__dict__:
            return self._core.name
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name, value):
        if not name.startswith("_") and name in type(self)._keys() and not hasattr(type(self), name):
            self._configure({name: value})
        else:
            object.__setattr__(self, name, value)

    # -- activation and quantizer --------------------------------------------------------------------
    @property
    def activation(self):
        core, view = self._core, self._activation
        quantizer = None if view is None or view.quantizer is None else view.quantizer.N2D2()
        if view is None or view.N2D2() is not core.activation or quantizer is not core.qact:
            view = activation_of(core)
            object.__setattr__(self, "_activation", view)
        return view

    @activation.setter
    def activation(self, activation):
        core = self._core
        if activation is not None:
            check_type(self._describe(), "activation", activation, ActivationFunction,
                       "an n2d2.activation function (Linear, Rectifier, ...) or None")
        quantizer = None if activation is None else activation.quantizer
        core.activation = None if activation is None else activation.N2D2()
        core.qact = None if quantizer is None else quantizer.N2D2()
        core.qact_solver = None
        if quantizer is not None:
            quantizer._attach(core, "qact_solver")
        object.__setattr__(self, "_activation", activation)

    def set_activation(self, activation):
        self.activation = activation

    def get_activation(self):
        return self.activation

    @property
    def quantizer(self):
        core, view = self._core, self._quantizer
        if view is None or view.N2D2() is not core.qweight:
            view = weight_quantizer_of(core)
            object.__setattr__(self, "_quantizer", view)
        return view

    @quantizer.setter
    def quantizer(self, quantizer):
        core = self._core
        if not core.has_qweight:
            raise WrongInputType(
                f"{self._describe()}: quantizer={quantizer.get_type() if quantizer else None}: a "
                f"{self.get_type()} cell has no weights to quantize (weight quantizers go on "
                f"Conv, Deconv and Fc; activations are quantized by their activation's "
                f"quantizer, e.g. activation=n2d2.activation.Linear(quantizer=SATAct(...)))")
        if isinstance(quantizer, ActivationQuantizer):
            raise WrongInputType(f"{self._describe()}: quantizer={quantizer.get_type()} is an "
                                 f"activation quantizer: give it to the activation "
                                 f"(activation=n2d2.activation.Linear(quantizer=...))")
        if quantizer is not None:
            check_type(self._describe(), "quantizer", quantizer, CellQuantizer,
                       "a weight quantizer (SATCell, LSQCell) or None")
        core.qweight = None if quantizer is None else quantizer.N2D2()
        core.qweight_solver = None
        if quantizer is not None:
            quantizer._attach(core, "qweight_solver")
        object.__setattr__(self, "_quantizer", quantizer)

    def has_quantizer(self):
        return self._core.qweight is not None

    # -- building and running ----------------------------------------------------------------------------
    def _built(self):
        return self._core.out_shape is not None

    def _error(self, exc):
        """A WrongValue for an error of our cell, naming the Python argument of its Key."""
        keys = self._keys()
        name = next((n for n, k in keys.items() if exc.key in (k.ini, *k.aliases)), exc.key)
        where = f"{name}: " if name else ""
        return WrongValue(f"{self._describe()}: {where}{exc.message}")

    def _build(self, shapes):
        try:
            self._core.build(shapes, global_variables.build_rng())
        except N2D2Error as exc:
            raise self._error(exc) from None
        except MemoryError:
            raise WrongValue(f"{self._describe()}: not enough memory for this cell on inputs "
                             f"{shapes} (C, H, W)") from None

    def _check_inputs(self, shapes):
        """Raise for inputs the built cell cannot take: a cell made for ``nb_inputs`` channels
        (Conv, BatchNorm2d) on another number."""
        expected = self.__dict__.get("_nb_inputs")
        channels = sum(s[0] for s in shapes)
        if expected is not None and channels != expected:
            raise WrongValue(f"{self._describe()}: nb_inputs={expected} but its input has "
                             f"{channels} channels")

    def _prepare(self, parents, shapes):
        core = self._core
        if not self._built():
            core.parents = list(parents)
            if self._nb_outputs_from_input and "nb_outputs" not in core.__dict__:
                core.nb_outputs = sum(s[0] for s in shapes)
            self._build(shapes)
            return
        if len(shapes) != len(core.in_shapes):
            raise WrongValue(f"{self._describe()}: called on {len(shapes)} input(s), built for "
                             f"{len(core.in_shapes)}")
        self._check_inputs(shapes)
        core.parents = list(parents)
        if [tuple(s) for s in shapes] != core.in_shapes:
            try:
                core.set_input_shapes(shapes)
            except N2D2Error as exc:
                raise self._error(exc) from None

    def __call__(self, inputs):
        tensors = self._inputs(inputs)
        deepnet = inputs.get_deepnet()
        shapes = []
        for tensor in tensors:
            shape = tuple(tensor.N2D2().shape)
            if len(shape) != 4:
                raise WrongValue(f"{self._describe()}: input of shape {list(shape)}: expected 4 "
                                 f"dimensions (batch, channels, height, width)")
            if shape[0] != tensors[0].N2D2().shape[0]:
                raise WrongValue(f"{self._describe()}: inputs of different batch sizes")
            shapes.append(shape[1:])
        parents = [_parent_name(t, deepnet) for t in tensors]
        self._prepare(parents, shapes)
        xs = [t.N2D2() for t in tensors]
        if self._inference:
            with no_grad():
                y = self._core.forward(xs, training=False)
        else:
            y = self._core.forward(xs, training=True)
        deepnet._add(self, parents)
        object.__setattr__(self, "_deepnet", deepnet)
        from .tensor import Tensor
        return Tensor._wrap(y, cell=self, deepnet=deepnet)

    def learn(self):
        object.__setattr__(self, "_inference", False)
        return self

    def test(self):
        object.__setattr__(self, "_inference", True)
        return self

    # -- outputs, sizes ----------------------------------------------------------------------------
    def get_nb_outputs(self):
        return self._core.nb_outputs

    def get_nb_channels(self):
        return None if self._core.in_shapes is None else sum(s[0] for s in self._core.in_shapes)

    def dims(self):
        """[X, Y, Z] of the output (N2D2's order); [] before the cell is built."""
        return [] if self._core.out_shape is None else list(reversed(self._core.out_shape))

    def get_input_cells(self):
        return list(self._core.parents)

    # -- weights files ---------------------------------------------------------------------------------
    def import_free_parameters(self, dir_name, ignore_not_exists=False):
        """The cell's N2D2 files in ``dir_name`` (``ignore_not_exists``: a missing file keeps
        the current values, with N2D2's notice). A cell not built yet has nothing to read."""
        if not self._built():
            return
        core = self._core
        core.import_notices = []
        core.import_weights(os.fspath(dir_name), ignore_not_exists)
        for line in core.import_notices:
            print(line)

    def export_free_parameters(self, dir_name, verbose=True):
        if not self._built():
            return
        if verbose:
            print(f"Export {self._name} to {dir_name}")
        os.makedirs(os.fspath(dir_name), exist_ok=True)
        self._core.export_weights(os.fspath(dir_name))

    def __str__(self):
        keys = self._keys()
        shown = [f"nb_inputs={self._nb_inputs}", f"nb_outputs={self._core.nb_outputs}"] \
            if self._eager else []
        shown += [f"{n}={getattr(self._core, k.attr)!r}" for n, k in keys.items()
                  if k.attr in self._core.__dict__]
        if self._core.activation is not None:
            shown.append(f"activation={self.activation}")
        if self._core.qweight is not None:
            shown.append(f"quantizer={self.quantizer}")
        parents = f"([{', '.join(repr(p) for p in self._core.parents)}])" \
            if self._deepnet is not None else ""
        return f"'{self._name}' {self.get_type()}({', '.join(shown)}){parents}"

    __repr__ = __str__


def _role_parameters(core, role):
    """The Parameters of ``core`` whose solver is the ``role``'s (none before the build)."""
    return [p for p in core.own_parameters() if p is not None and p.group == ROLE_GROUPS[role]]


def _parent_name(tensor, deepnet):
    """``env`` for the stimuli, else the name of the cell that made ``tensor``."""
    cell = tensor.cell
    if isinstance(cell, NeuralNetworkCell) and cell.get_name() in deepnet.get_cells():
        return cell.get_name()
    return "env"


class Trainable(NeuralNetworkCell):
    """Cells with learnable Parameters: solvers (and fillers for weighted cells)."""
    _solver_slots = ()        # names of the _SolverSlot attributes

    def _solver_view(self, role):
        core = self._core
        if role not in core.solvers:
            core.solvers[role] = default_solver()
        return bound(Solver.from_core(core.solvers[role]),
                     lambda: [p.solver for p in _role_parameters(core, role)
                              if p.solver is not None])

    def _set_solver(self, name, role, solver):
        check_type(self._describe(), name, solver, Solver, "an n2d2.solver solver (SGD, Adam)")
        core = self._core
        core.solvers[role] = solver.N2D2()
        for param in _role_parameters(core, role):   # N2D2's reset*Solver: fresh clones
            param.solver = solver.N2D2().clone()

    @property
    def solver(self):
        return getattr(self, self._solver_slots[0])

    @solver.setter
    def solver(self, solver):
        self.set_solver(solver)

    def set_solver(self, solver):
        """A copy of ``solver`` for each role (and for the quantizers' learnable values)."""
        check_type(self._describe(), "solver", solver, Solver, "an n2d2.solver solver")
        for name in self._solver_slots:
            setattr(self, name, solver.copy())
        for quantizer in (self.quantizer, getattr(self.activation, "quantizer", None)):
            if quantizer is not None and quantizer._learnable:
                quantizer.solver = solver.copy()

    def set_solver_parameter(self, key, value):
        """Set ``key`` on every solver of the cell's Parameters (each role's)."""
        for name in self._solver_slots:
            getattr(self, name).set_parameter(key, value)

    def has_bias(self):
        return getattr(self._core, "bias", None) is not None


class _Weighted(Trainable):
    """Conv, Deconv, Fc: weights and bias fillers, weight quantizer."""
    weights_solver = _SolverSlot("Weights")
    bias_solver = _SolverSlot("Bias")
    weights_filler = _FillerSlot("Weights")
    bias_filler = _FillerSlot("Bias")
    _solver_slots = ("weights_solver", "bias_solver")
    _eager = True

    def __init__(self, nb_inputs, nb_outputs, nb_input_cells=1, **config_parameters):
        for name, value in (("nb_inputs", nb_inputs), ("nb_outputs", nb_outputs)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise WrongInputType(f"{type(self).__name__}: {name} must be a positive int, "
                                     f"got {value!r}")
        if nb_input_cells != 1:
            raise WrongValue(f"{type(self).__name__}: nb_input_cells={nb_input_cells!r}: n2d2py's "
                             f"Python API builds weighted cells on one input (use a Concat-like "
                             f"Interface into a single cell)")
        NeuralNetworkCell.__init__(self, core_values={"nb_outputs": nb_outputs},
                                   **config_parameters)
        object.__setattr__(self, "_nb_inputs", nb_inputs)
        if self._core.activation is None:       # N2D2's Python default for Conv and Fc
            self.activation = Linear()
        self._build([self._nominal_input(nb_inputs)])

    @property
    def filler(self):
        return self.weights_filler

    @filler.setter
    def filler(self, filler):
        self.set_filler(filler)

    def set_filler(self, filler, refill=False):
        self.set_weights_filler(filler, refill)
        self.set_bias_filler(filler, refill)

    def set_weights_filler(self, filler, refill=False):
        self.weights_filler = filler
        if refill:
            self.refill_weights()

    def set_bias_filler(self, filler, refill=False):
        self.bias_filler = filler
        if refill:
            self.refill_bias()

    def refill_weights(self):
        if self._built():
            self._core.refill_weights(global_variables.build_rng())

    def refill_bias(self):
        if self._built():
            self._core.refill_bias(global_variables.build_rng())

    def get_weights(self):
        """The weights as N2D2 lists them: one Tensor per (output, channel) kernel."""
        from .tensor import Tensor
        full = self._full_weights()
        return [[Tensor.from_numpy(full[o, c].copy()) for c in range(full.shape[1])]
                for o in range(full.shape[0])]

    def get_weight(self, output_index, channel_index):
        from .tensor import Tensor
        full = self._full_weights()
        if not (0 <= output_index < full.shape[0] and 0 <= channel_index < full.shape[1]):
            raise WrongValue(f"{self._describe()}: weight ({output_index}, {channel_index}) "
                             f"outside {full.shape[0]} outputs x {full.shape[1]} channels")
        return Tensor.from_numpy(full[output_index, channel_index].copy())

    def get_biases(self):
        from .tensor import Tensor
        bias = self._core.bias
        return [] if bias is None else [Tensor.from_numpy(bias.data[o:o + 1].copy())
                                        for o in range(len(bias.data))]


class _Mappable:
    """``mapping``: which input channels each output reads (before the cell is built)."""
    mappable = True

    @property
    def mapping(self):
        return self._core.mapping

    @mapping.setter
    def mapping(self, mapping):
        if self._built():
            raise WrongValue(f"{self._describe()}: mapping cannot change once the cell is built")
        self._core.mapping = _mapping_spec(self, mapping)


class Conv(_Mappable, _Weighted):
    """``Conv(nb_inputs, nb_outputs, kernel_dims=[X, Y], nb_input_cells=1, sub_sample_dims,
    stride_dims, padding_dims, dilation_dims, mapping, activation, weights_filler,
    bias_filler, filler, weights_solver, bias_solver, solver, no_bias, quantizer,
    back_propagate, weights_export_format, weights_export_flip, name)``."""
    _core_class = ConvCell
    _renamed = {"sub_sample_dims": "subsample_dims"}

    def __init__(self, nb_inputs, nb_outputs, kernel_dims, nb_input_cells=1, **config_parameters):
        _Weighted.__init__(self, nb_inputs, nb_outputs, nb_input_cells, kernel_dims=kernel_dims,
                           **config_parameters)

    def _nominal_input(self, channels):
        """The smallest input the kernel fits (the first call gives the real size)."""
        core = self._core
        (kh, kw), (ph, pw), (dh, dw) = core.kernel_geometry()
        return (channels, max(1, dh * (kh - 1) + 1 - 2 * ph), max(1, dw * (kw - 1) + 1 - 2 * pw))

    def _full_weights(self):
        return self._core.full_kernels()[0]


class ConvDepthWise(Conv):
    """``ConvDepthWise(nb_channel, kernel_dims, ...)``: one kernel per channel."""

    def __init__(self, nb_channel, kernel_dims, **config_parameters):
        if "mapping" in config_parameters:
            raise WrongValue("ConvDepthWise: takes no mapping (it is one group per channel)")
        config_parameters["mapping"] = MappingSpec({"Mapping.ChannelsPerGroup": "1"})
        Conv.__init__(self, nb_channel, nb_channel, kernel_dims, **config_parameters)


class ConvPointWise(Conv):
    """``ConvPointWise(nb_inputs, nb_outputs, ...)``: a 1x1 Conv."""

    def __init__(self, nb_inputs, nb_outputs, **config_parameters):
        Conv.__init__(self, nb_inputs, nb_outputs, [1, 1], stride_dims=[1, 1], **config_parameters)


class Deconv(Conv):
    """``Deconv(nb_inputs, nb_outputs, kernel_dims, ...)``: transposed convolution."""
    _core_class = DeconvCell

    def _nominal_input(self, channels):
        return (channels, 1, 1)


class Fc(_Weighted):
    """``Fc(nb_inputs, nb_outputs, nb_input_cells=1, activation, weights_filler, bias_filler,
    filler, weights_solver, bias_solver, solver, no_bias, normalize, quantizer,
    back_propagate, weights_export_format, drop_connect, name)``; ``nb_inputs`` is the input's
    size C x H x W (N2D2 checks X*Y*Z)."""
    _core_class = FcCell

    def _nominal_input(self, size):
        return (size, 1, 1)

    @staticmethod
    def _nb_inputs_of(shapes):
        return sum(int(s[0]) * int(s[1]) * int(s[2]) for s in shapes)

    def _check_inputs(self, shapes):
        size = sum(int(s[0]) * int(s[1]) * int(s[2]) for s in shapes)
        if size != self._nb_inputs:
            dims = " + ".join("x".join(str(d) for d in s) for s in shapes)
            raise WrongValue(f"{self._describe()}: nb_inputs={self._nb_inputs} but its input "
                             f"holds {dims} = {size} values (C x H x W)")

    def _full_weights(self):
        W = self._core.weights[0].data
        return W.reshape(W.shape[0], W.shape[1], 1)


class BatchNorm2d(Trainable):
    """``BatchNorm2d(nb_inputs, nb_input_cells=1, activation, scale_solver, bias_solver,
    solver, moving_average_momentum, epsilon, back_propagate, name)``."""
    _core_class = BatchNormCell
    scale_solver = _SolverSlot("Scale")
    bias_solver = _SolverSlot("Bias")
    _solver_slots = ("scale_solver", "bias_solver")
    _eager = True

    def __init__(self, nb_inputs, nb_input_cells=1, **config_parameters):
        if isinstance(nb_inputs, bool) or not isinstance(nb_inputs, int) or nb_inputs < 1:
            raise WrongInputType(f"BatchNorm2d: nb_inputs must be a positive int, got "
                                 f"{nb_inputs!r}")
        NeuralNetworkCell.__init__(self, core_values={"nb_outputs": nb_inputs},
                                   **config_parameters)
        object.__setattr__(self, "_nb_inputs", nb_inputs)
        self._build([(nb_inputs, 1, 1)])

    def _prepare(self, parents, shapes):
        if len(shapes) != len(self._core.in_shapes):    # an Interface: channels concatenated
            self._check_inputs(shapes)
            self._core.parents = list(parents)
            try:
                self._core.set_input_shapes(shapes)
            except N2D2Error as exc:
                raise self._error(exc) from None
            return
        NeuralNetworkCell._prepare(self, parents, shapes)

    def set_filler(self, filler, refill=False):
        raise WrongValue(f"{self._describe()}: BatchNorm has no filler (scales start at 1, "
                         f"biases at 0)")

    def has_bias(self):
        return True

    def get_scales(self):
        from .tensor import Tensor
        return Tensor.from_numpy(self._core.scale.data.copy())

    def get_biases(self):
        from .tensor import Tensor
        return Tensor.from_numpy(self._core.bias.data.copy())

    def get_means(self):
        from .tensor import Tensor
        return Tensor.from_numpy(self._core.mean.copy())

    def get_variances(self):
        from .tensor import Tensor
        return Tensor.from_numpy(self._core.variance.copy())


class Pool(_Mappable, NeuralNetworkCell):
    """``Pool(pool_dims, pooling='Max', stride_dims=[1, 1], padding_dims=[0, 0], mapping,
    activation, name)``: without a mapping every output pools every channel (N2D2)."""
    _core_class = PoolCell
    _nb_outputs_from_input = True

    def __init__(self, pool_dims, **config_parameters):
        config_parameters.setdefault("pooling", "Max")
        NeuralNetworkCell.__init__(self, pool_dims=pool_dims, **config_parameters)


class Pool2d(Pool):
    """``Pool2d(pool_dims, pooling='Max', stride_dims, padding_dims)``: each channel pooled on
    its own (a one-to-one map)."""

    def __init__(self, pool_dims, **config_parameters):
        if "mapping" in config_parameters:
            raise WrongValue("Pool2d: takes no mapping (channels are pooled one by one)")
        Pool.__init__(self, pool_dims, **config_parameters)
        self._core.mapping = MappingSpec({"Mapping.ChannelsPerGroup": "1"})


class GlobalPool2d(Pool2d):
    """``GlobalPool2d(pooling='Max')``: each channel pooled over its whole plane."""

    def __init__(self, **config_parameters):
        Pool2d.__init__(self, [1, 1], **config_parameters)

    def _prepare(self, parents, shapes):
        if not self._built():
            self._core.pool_dims = (int(shapes[0][2]), int(shapes[0][1]))
        Pool2d._prepare(self, parents, shapes)


class Dropout(NeuralNetworkCell):
    """``Dropout(dropout=0.5, name)``."""
    _core_class = DropoutCell
    _nb_outputs_from_input = True


class Softmax(NeuralNetworkCell):
    """``Softmax(with_loss=False, group_size=0, name)``: with_loss, a target's loss is the
    cross-entropy on its input (N2D2's Softmax + multinomial logistic loss)."""
    _core_class = SoftmaxCell
    _nb_outputs_from_input = True
    _runtime_keys = ("with_loss",)


class Activation(NeuralNetworkCell):
    """``Activation(activation, name)``: an activation (and its quantizer) as a cell."""
    _core_class = ActivationCell
    _nb_outputs_from_input = True

    def __init__(self, activation, **config_parameters):
        NeuralNetworkCell.__init__(self, activation=activation, **config_parameters)


class ElemWise(NeuralNetworkCell):
    """``ElemWise(operation='Sum', mode='PerInput', weights=[], shifts=[], activation)`` on an
    ``Interface`` of same-size tensors (``mode``: the INI's ``CoeffMode``)."""
    _core_class = ElemWiseCell
    _renamed = {"mode": "coeff_mode"}

    def __init__(self, **config_parameters):
        config_parameters.setdefault("operation", "Sum")
        NeuralNetworkCell.__init__(self, **config_parameters)

    def _prepare(self, parents, shapes):
        if not self._built():
            self._core.nb_outputs = int(shapes[0][0])
        NeuralNetworkCell._prepare(self, parents, shapes)


class Padding(NeuralNetworkCell):
    """``Padding(top_pad, bot_pad, left_pad, right_pad)`` (negative values crop)."""
    _core_class = PaddingCell
    _renamed = {"top_pad": "top", "bot_pad": "bottom", "left_pad": "left", "right_pad": "right"}
    _positional = ("top_pad", "bot_pad", "left_pad", "right_pad")
    _nb_outputs_from_input = True


class Reshape(NeuralNetworkCell):
    """``Reshape(dims)``: the output dims [X, Y, Z] (N2D2's order)."""
    _core_class = ReshapeCell
    _positional = ("dims",)

    def _prepare(self, parents, shapes):
        dims = list(self._core.dims)
        if not self._built():
            if len(dims) != 3 or min(dims) < 1:
                raise WrongValue(f"{self._describe()}: dims={dims}: give the 3 output dims "
                                 f"[X, Y, Z] as positive ints")
            self._core.nb_outputs = int(dims[2])
        NeuralNetworkCell._prepare(self, parents, shapes)


class Transpose(NeuralNetworkCell):
    """``Transpose(perm)``."""
    _core_class = TransposeCell
    _positional = ("perm",)
    _nb_outputs_from_input = True


class Resize(NeuralNetworkCell):
    """``Resize(outputs_width, outputs_height, resize_mode)``."""
    _core_class = ResizeCell
    _renamed = {"outputs_width": "output_width", "outputs_height": "output_height",
                "resize_mode": "mode"}
    _positional = ("outputs_width", "outputs_height", "resize_mode")
    _nb_outputs_from_input = True


def _mapping_spec(cell, mapping):
    """A ``MappingSpec`` from N2D2's mapping: a boolean Tensor or array (one row per input
    channel, one column per output), or a MappingSpec."""
    import numpy
    from .tensor import Tensor
    if isinstance(mapping, MappingSpec):
        return mapping
    if isinstance(mapping, Tensor):
        mapping = mapping.to_numpy()
    if not isinstance(mapping, numpy.ndarray) or mapping.ndim != 2:
        raise WrongInputType(f"{cell._describe()}: mapping must be a 2-D boolean Tensor "
                             f"(input channels x outputs)")
    if mapping.shape[1] != cell._core.nb_outputs:
        raise WrongValue(f"{cell._describe()}: mapping has {mapping.shape[1]} columns, the cell "
                         f"{cell._core.nb_outputs} outputs")
    text = " ".join("1" if v else "0" for v in mapping.astype(bool).reshape(-1))
    return MappingSpec({"Mapping(env)": text})


class _Generic(NeuralNetworkCell):
    """The view of a cell with no view of its own (ONNX extension cells, LRN, ...)."""


def view_of(core):
    """The view of one of our built cells (INI/ONNX): the view class declared for its class,
    else a generic one."""
    kind = type(core)
    view = next((NeuralNetworkCell._registry[k] for k in kind.__mro__
                 if k in NeuralNetworkCell._registry), None)
    if view is None:
        if kind not in _GENERIC:
            _GENERIC[kind] = type(kind.__name__.replace("Cell", ""), (_Generic,),
                                  {"_keys_cache": python_keys(kind, skip=("nb_outputs",))})
        view = _GENERIC[kind]
    return view._from_core(core)


_GENERIC = {}   # our cell class -> its generic view class


__all__ = ["NeuralNetworkCell", "Trainable", "Conv", "ConvDepthWise", "ConvPointWise", "Deconv",
           "Fc", "BatchNorm2d", "Pool", "Pool2d", "GlobalPool2d", "Dropout", "Softmax",
           "Activation", "ElemWise", "Padding", "Reshape", "Transpose", "Resize"]
