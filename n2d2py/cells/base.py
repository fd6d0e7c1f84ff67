"""Cell: the stateful, INI-facing layer (docs/ARCHITECTURE.md "Cells"; spec/ini.md §2.4, §2.8).

Life of a cell, as the DeepNet drives it::

    cell = CELLS.get(section.get("Type"), section).from_section(section, parents)   # unbuilt
    cell.build(in_shapes, rng)           # Parameters (fillers, solver clones), out_shape, _Outputs*
    y = cell.forward([x0, x1, ...], training)                                     # Variables
    cell.parameters()                    # every Parameter, each with .solver
    cell.export_weights(folder) / cell.import_weights(folder, ignore_missing)     # spec §6.4

``from_section`` reads, in N2D2's order (spec §2.4, §4.1): the declared ``Key``s of the cell
section (dims through one alias chain, ``dims_key``); ``ActivationFunction`` (+ ``.*``);
``WeightsFiller``/``BiasFiller`` (+ ``.*``); ``Solvers=``/``<Role>Solver=`` (+ prefixed keys of the
cell section); ``QWeight``/``QWeightSolver`` (+ ``.*``); ``QAct``/``QActSolver`` (+ ``.*``, only when
``ActivationFunction`` is present, §2.8.2); then the ConfigSection list, evaluated in the context
of the *cell* section (``${X}`` finds the cell's ``$X``), and finally ``<section>.cfg`` in the CWD.
A config key must be a solver, quantizer or cell parameter (``Key(..., config=True)``): anything
else is fatal, as in N2D2. Cell parameters written in the cell section itself are ignored, as
N2D2 does (§8 item 3), and so are unknown keys where N2D2 accepts them (§1.9); both are recorded
as readable sentences in ``cell.warnings`` for the CLI to print.

Losses (for the DeepNet): ``cell.loss_kind`` is ``"softmax"`` for ``Softmax WithLoss=1``,
``"sigmoid"`` for a ``LogisticWithLoss`` activation, else ``None``. ``forward`` always returns
the probabilities (so scores and exports see what N2D2 outputs) and keeps the pre-activation in
``cell.last_logits``; with a loss kind the DeepNet computes ``F.softmax_cross_entropy`` /
``F.sigmoid_cross_entropy`` on ``cell.last_logits`` (N2D2 skips the Jacobian, spec §2.6),
otherwise ``F.mse`` on the output.
"""
import os

from .. import functions as F
from ..autograd import Parameter
from ..backend import DTYPE, to_device
from ..errors import IniError, close_matches
from ..ini.convert import list_of, to_bool, to_int, to_str, to_uint
from ..params import REQUIRED, Key, Parameterizable, Registry

CELLS = Registry("cell")

# keys every cell section may hold, read by the DeepNet (Input, Type) or here
COMMON_KEYS = ("Input", "Type", "Model", "DataType", "ConfigSection")
# keys whose presence makes N2D2 mark every key of the section read (spec §1.9)
SECTION_READERS = ("ActivationFunction", "Solvers", "WeightsSolver", "BiasSolver",
                   "ScaleSolver", "QWeight", "QAct")


class DimsKey(Key):
    """A 2-D dims key with N2D2's alias chain, stored in N2D2 order ``(X, Y)`` = (width, height):
    ``<P>Dims=x y`` | ``<P>Size=n`` (square; ``<P>=n`` as well) | ``<P>Width``/``<P>Height`` or
    ``<P>X``/``<P>Y`` (a missing one takes the default's component)."""

    def __init__(self, prefix, default=REQUIRED, convert=to_int, doc=""):
        names = (f"{prefix}Size", prefix, f"{prefix}Width", f"{prefix}Height",
                 f"{prefix}X", f"{prefix}Y")
        super().__init__(f"{prefix}Dims", list_of(convert), default, aliases=names, doc=doc)
        self.prefix, self.scalar = prefix, convert

    def read(self, section):
        """``(x, y)`` from the section, or ``None`` if no spelling is present."""
        p = self.prefix
        if self.ini in section:
            dims = section.get_as(self.ini, self.convert)
            if len(dims) not in (1, 2):
                raise section.error(f"expected 2 dims (X Y), got {len(dims)}", key=self.ini)
            return tuple(dims) * (2 // len(dims))
        for name in (f"{p}Size", p):
            if name in section:
                value = section.get_as(name, self.scalar)
                return (value, value)
        for wx, wy in ((f"{p}Width", f"{p}Height"), (f"{p}X", f"{p}Y")):
            if wx in section or wy in section:
                if self.default is REQUIRED and not (wx in section and wy in section):
                    missing = wy if wx in section else wx
                    raise section.error(f"missing required key '{missing}'", key=wx)
                base = (1, 1) if self.default is REQUIRED else self.default
                return (section.get_as(wx, self.scalar, base[0]),
                        section.get_as(wy, self.scalar, base[1]))
        return None


def dims_key(prefix, default=REQUIRED, convert=to_int):
    return DimsKey(prefix, default, convert)


class _FilePlace:
    """Error place for a ``<section>.cfg`` override file (no Section object)."""

    def __init__(self, path):
        self.path = path

    def error(self, message, key=None):
        return IniError(message, file=self.path, key=key)


def set_prefixed(obj, values, place, prefix):
    """Set ``{sub: text}`` on a Parameterizable; errors name the full key ``prefix + sub``."""
    for sub, text in values.items():
        key = obj.find_key(sub)
        if key is None:
            raise place.error(f"unknown parameter '{sub}' for {obj.describe()}"
                              f"{close_matches(sub, obj.keys())}", key=prefix + sub)
        setattr(obj, key.attr, convert_value(place, text, key.convert, prefix + sub))


def convert_value(place, text, convert, key):
    """``convert(text)``; a Section's ``convert`` also accepts ``$()`` floats for integer keys
    (truncated with a warning, spec/ini.md §8 item 7). Errors name ``key`` at ``place``."""
    if hasattr(place, "convert"):
        return place.convert(text, convert, key)
    try:
        return convert(text)
    except ValueError as exc:
        raise place.error(str(exc), key=key) from None


def _make(registry_name, name, place, key):
    """Instantiate a solver/filler/quantizer class by INI name."""
    if registry_name == "solver":
        from ..solvers import SOLVERS as registry
    elif registry_name == "filler":
        from ..fillers import FILLERS as registry
    elif registry_name == "qweight":
        from ..quantizers import WEIGHT_QUANTIZERS as registry
    else:
        from ..quantizers import ACT_QUANTIZERS as registry
    return registry.get(name.strip(), place, key=key)()


def concat_inputs(cell, xs):
    """Channel concatenation of several inputs (spec §2.3); one input passes through."""
    return xs[0] if len(xs) == 1 else F.concat(list(xs), axis=1)


def same_hw(cell, in_shapes, check_nb_outputs=True):
    """``(sum of channels, H, W)`` for cells that concatenate inputs of equal size."""
    hw = {tuple(s[1:]) for s in in_shapes}
    if len(hw) != 1:
        raise cell.error(f"inputs {', '.join(cell.parents)} have different sizes "
                         f"{[tuple(s) for s in in_shapes]}")
    channels = sum(s[0] for s in in_shapes)
    if check_nb_outputs and cell.nb_outputs != channels:
        raise cell.error(f"NbOutputs={cell.nb_outputs} but the inputs have {channels} channels",
                         key="NbOutputs")
    return (channels, *in_shapes[0][1:])


class Cell(Parameterizable):
    """Base of every ``Type=`` cell. Subclasses declare Keys, ``compute_out_shape``,
    ``create_parameters`` (optional) and ``forward``."""
    type_name = None
    nb_outputs = Key("NbOutputs", to_uint)
    solver_roles = ()          # INI prefixes of this cell's solvers: ("Weights", "Bias")
    filler_roles = ()          # ("Weights", "Bias") for Conv/Deconv/Fc
    uses_mapping = False
    has_qweight = False
    strict_unknown_keys = False  # Conv/Deconv/BatchNorm: N2D2 checks unknown keys after build
    default_activation = None
    state_names = ()           # non-Parameter arrays moved by to() (BatchNorm mean/variance)
    unsupported_keys = ()      # N2D2 keys accepted here with a "not supported" warning

    def __init__(self, name="", parents=("env",), **values):
        super().__init__(**values)
        self.name, self.parents = name, list(parents)
        self.in_shapes, self.out_shape = None, None
        self.activation, self.qact = None, None
        self.qweight, self.qweight_solver, self.qact_solver = None, None, None
        self.solvers, self.fillers = {}, {}
        self.section, self.model = None, "Frame"
        self.warnings, self.rng, self.last_logits = [], None, None
        self.import_notices = []   # N2D2's notices for files missing at import_weights
        self._solved = set()

    def describe(self):
        return f"cell [{self.name}] (Type={self.type_name})"

    def error(self, message, key=None):
        if self.section is not None:
            return self.section.error(message, key=key)
        return IniError(message, section=self.name, key=key)

    # ------------------------------------------------------------------ INI -> cell
    @classmethod
    def from_section(cls, section, parents):
        cell = cls(name=section.name, parents=parents)
        cell.section = section
        cell.model = section.get("Model", None) or \
            section.document.global_section.get("DefaultModel", "Frame")
        cell.read_keys(section)
        cell.read_activation(section)
        cell.read_fillers(section)
        cell.read_solvers(section)
        cell.read_quantizers(section)
        cell.apply_config(section)
        cell.check_required_keys(section)
        cell.collect_warnings(section)
        return cell

    def check_required_keys(self, section):
        """A filler/solver/quantizer/activation key with no default (``ConstantFiller`` needs
        ``WeightsFiller.Value``) that neither the section nor its ConfigSection set."""
        parts = [(f"{role}Filler", filler) for role, filler in self.fillers.items()]
        parts += [(f"{role}Solver", solver) for role, solver in self.solvers.items()]
        parts += [("ActivationFunction", self.activation), ("QWeight", self.qweight),
                  ("QWeightSolver", self.qweight_solver), ("QAct", self.qact),
                  ("QActSolver", self.qact_solver)]
        for selector, obj in parts:
            missing = obj.missing_required() if isinstance(obj, Parameterizable) else []
            if missing:
                key = f"{selector}.{missing[0]}"
                raise section.error(f"missing required key {key} for {obj.describe()} "
                                    f"({selector}={section.get(selector, type(obj).__name__)})",
                                    key=key)

    def read_keys(self, section):
        for key in self.keys().values():
            if key.config:
                continue
            if isinstance(key, DimsKey):
                value = key.read(section)
            else:
                name = next((n for n in (key.ini, *key.aliases) if n in section), None)
                value = None if name is None else section.get_as(name, key.convert)
            if value is not None:
                setattr(self, key.attr, value)
            elif key.default is REQUIRED:
                raise section.error(f"missing required key '{key.ini}' for Type={self.type_name}")

    def read_activation(self, section):
        from .activation import ACTIVATIONS
        name = section.get("ActivationFunction") if "ActivationFunction" in section \
            else self.default_activation
        if name:
            self.activation = ACTIVATIONS.get(name.strip(), section, key="ActivationFunction")()
            set_prefixed(self.activation, section.prefixed("ActivationFunction."), section,
                         "ActivationFunction.")

    def read_fillers(self, section):
        for role in self.filler_roles:
            key = f"{role}Filler"
            if key in section:
                self.fillers[role] = _make("filler", section.get(key), section, key)
                set_prefixed(self.fillers[role], section.prefixed(key + "."), section, key + ".")

    def read_solvers(self, section):
        for role in self.solver_roles:      # N2D2 starts every cell with SGD solvers (§4.1)
            self.solvers[role] = _make("solver", "SGD", section, "Solvers")
        if "Solvers" in section:
            for role in self.solver_roles:
                self.solvers[role] = self._section_solver(section, "Solvers")
        for role in self.solver_roles:
            if f"{role}Solver" in section:
                self.solvers[role] = self._section_solver(section, f"{role}Solver")

    def _section_solver(self, section, key):
        solver = _make("solver", section.get(key), section, key)
        set_prefixed(solver, section.prefixed(key + "."), section, key + ".")
        return solver

    def read_quantizers(self, section):
        if self.has_qweight and "QWeight" in section:
            self.qweight = _make("qweight", section.get("QWeight"), section, "QWeight")
            set_prefixed(self.qweight, section.prefixed("QWeight."), section, "QWeight.")
            self.qweight_solver = self._section_solver(section, "QWeightSolver") \
                if "QWeightSolver" in section else _make("solver", "SGD", section, "QWeightSolver")
            set_prefixed(self.qweight_solver, section.prefixed("QWeightSolver."), section,
                         "QWeightSolver.")
        if "ActivationFunction" in section and "QAct" in section:
            self.qact = _make("qact", section.get("QAct"), section, "QAct")
            set_prefixed(self.qact, section.prefixed("QAct."), section, "QAct.")
            self.qact_solver = self._section_solver(section, "QActSolver") \
                if "QActSolver" in section else _make("solver", "SGD", section, "QActSolver")
            set_prefixed(self.qact_solver, section.prefixed("QActSolver."), section,
                         "QActSolver.")

    def config_values(self, section):
        """``{key: (text, place)}`` from the ConfigSection list (later ones win), then
        ``<section>.cfg`` in the CWD (spec §2.4 items 1-5)."""
        key = f"ConfigSection({self.model})"
        key = key if key in section else "ConfigSection"
        values = {}
        if key in section:
            for name in section.get(key).split(","):
                if not name.strip():
                    continue
                if name.strip() not in section.document:
                    raise section.error(f"no config section [{name.strip()}]"
                                        f"{close_matches(name.strip(), section.document.sections)}",
                                        key=key)
                config = section.document.section(name.strip())
                for k, entry in config.entries.items():
                    if k.startswith("$") or k.startswith("_"):
                        continue
                    entry.read = True
                    # evaluated in the context of the CELL section (spec §2.4)
                    values[k] = (section.document.evaluate(section, entry.raw, entry), config)
        path = os.path.join(os.getcwd(), f"{section.name}.cfg")
        if os.path.isfile(path):
            place = _FilePlace(path)
            with open(path, encoding="utf-8") as handle:
                for line in handle:
                    line = line.split("#", 1)[0].strip()
                    if line:
                        k, sep, v = line.partition("=")
                        if not sep:
                            raise IniError(f"expected 'key = value', got {line!r}", file=path)
                        values[k.strip()] = (v.strip(), place)
        return values

    def apply_config(self, section):
        values = self.config_values(section)
        ordered = [("Solvers.", self.solver_roles)] + [(f"{r}Solver.", (r,)) for r in self.solver_roles]
        for prefix, roles in ordered:  # Solvers.* first, then the specific prefix wins (§2.4)
            for k in [k for k in values if k.startswith(prefix)]:
                text, place = values.pop(k)
                for role in roles:
                    set_prefixed(self.solvers[role], {k[len(prefix):]: text}, place, prefix)
        if self.qweight is not None:
            for prefix, target in (("QWeight.", self.qweight), ("QWeightSolver.", self.qweight_solver)):
                for k in [k for k in values if k.startswith(prefix)]:
                    text, place = values.pop(k)
                    set_prefixed(target, {k[len(prefix):]: text}, place, prefix)
        config_keys = {k.ini: k for k in self.keys().values() if k.config}
        for k, (text, place) in values.items():
            key = config_keys.get(k)
            if key is None:
                known = list(config_keys) + [f"{r}Solver.*" for r in self.solver_roles]
                raise place.error(f"unknown parameter '{k}' for {self.describe()}; its config "
                                  f"parameters are: {', '.join(known) or 'none'}"
                                  f"{close_matches(k, list(config_keys) + ['Solvers.' + k])}", key=k)
            setattr(self, key.attr, convert_value(place, text, key.convert, k))

    def _prefix_owner(self, key):
        """The selector key a prefixed key needs (``Solvers.X`` -> ``Solvers``), or None."""
        families = ["ActivationFunction", "QAct", "QActSolver", "QWeight", "QWeightSolver",
                    "Solvers"] + [f"{r}Solver" for r in self.solver_roles] + \
                   [f"{r}Filler" for r in self.filler_roles]
        for family in families:
            if key.startswith(family + "."):
                return family
        return None

    def collect_warnings(self, section):
        """Sentences for keys N2D2 would ignore (spec §1.9, §8 items 3 and 23); fatal only where
        N2D2's post-build check would fire (Conv/Deconv/BatchNorm with no key that marks the
        whole section read)."""
        known = set(COMMON_KEYS)
        for key in self.keys().values():
            if not key.config:
                known.update((key.ini, *key.aliases))
        for role in self.filler_roles:
            known.add(f"{role}Filler")
        known.update(f"{r}Solver" for r in self.solver_roles)
        known.update(("Solvers", "ActivationFunction"))
        if self.has_qweight:
            known.update(("QWeight", "QWeightSolver"))
        has_act = "ActivationFunction" in section
        marks_all = any(k in section for k in SECTION_READERS)
        config_keys = {k.ini for k in self.keys().values() if k.config}
        for k in section.keys():
            if k.startswith(("$", "_", "ConfigSection(")):
                continue
            where = f"in [{section.name}]"
            family = self._prefix_owner(k)
            if k in config_keys:
                self.warnings.append(f"ignored: {k}={section.raw(k)} {where} (N2D2 reads cell "
                                     f"parameters only from a ConfigSection)")
            elif k in ("QAct", "QActSolver") or family in ("QAct", "QActSolver"):
                if not has_act:
                    self.warnings.append(f"ignored: {k} {where} (N2D2 reads QAct only when "
                                         f"ActivationFunction= is present)")
            elif family is not None:
                if family not in section:
                    self.warnings.append(f"ignored: {k} {where} (no {family}= in this section)")
            elif self.uses_mapping and k.startswith(("Mapping.", "Mapping(")):
                continue
            elif k in self.unsupported_keys:
                self.warnings.append(f"ignored: {k} {where} (not supported by n2d2py)")
            elif k not in known:
                message = (f"unknown key '{k}' for Type={self.type_name}"
                           f"{close_matches(k, known | config_keys)}")
                if self.strict_unknown_keys and not marks_all:
                    raise section.error(message, key=k)
                self.warnings.append(f"ignored: {message} {where} (as N2D2 does)")
        section.mark_all_read()  # judged here; the DeepNet need not report them again

    # ------------------------------------------------------------------ build
    def check_positive_dims(self):
        """Kernel, stride, sub-sampling and dilation dims must be at least 1 (a 0 would divide
        by zero in the output size); padding may be 0 or negative (cropping)."""
        for key in type(self).keys().values():
            if not isinstance(key, DimsKey) or key.prefix == "Padding":
                continue
            try:
                dims = tuple(int(d) for d in getattr(self, key.attr))
            except (AttributeError, TypeError, ValueError):
                continue
            if dims and min(dims) < 1:
                spelling = next((n for n in (key.ini, *key.aliases) if self.section is not None
                                 and n in self.section), key.ini)
                raise self.error(f"{spelling} must be at least 1 in each dimension, got "
                                 f"{' '.join(map(str, dims))} (X Y)", key=spelling)

    def build(self, in_shapes, rng=None):
        self.in_shapes = [tuple(int(d) for d in s) for s in in_shapes]
        if len(self.in_shapes) != len(self.parents):
            raise self.error(f"{len(self.parents)} parents but {len(self.in_shapes)} input shapes")
        self.rng = rng
        self.check_positive_dims()
        self.out_shape = tuple(int(d) for d in self.compute_out_shape(self.in_shapes))
        if min(self.out_shape) <= 0:
            raise self.error(f"output size {self.out_shape} (C, H, W) from inputs "
                             f"{self.in_shapes} is empty")
        self.create_parameters(rng)
        self.write_build_keys()
        return self

    def compute_out_shape(self, in_shapes):
        raise NotImplementedError

    def create_parameters(self, rng):
        """Override in cells that own Parameters."""

    def write_build_keys(self):
        """``_NbChannels`` ... ``_OutputsHeight`` into the section (spec §2.5)."""
        if self.section is None:
            return
        c, h, w = self.out_shape
        first = self.in_shapes[0]
        for key, value in (("_NbChannels", sum(s[0] for s in self.in_shapes)),
                           ("_ChannelsWidth", first[2]), ("_ChannelsHeight", first[1]),
                           ("_NbOutputs", c), ("_OutputsWidth", w), ("_OutputsHeight", h)):
            self.section.set(key, value)

    def solver_for(self, role):
        """A fresh copy of the role's solver for one Parameter (state is per Parameter)."""
        template = self.solvers.get(role)
        if template is None:
            template = self.solvers[role] = _make("solver", "SGD", None, "Solvers")
        return template.clone()

    def new_parameter(self, data, role, name):
        param = Parameter(data.astype(DTYPE, copy=False), name=f"{self.name}.{name}",
                          group=name.split("[")[0])
        param.solver = self.solver_for(role)
        return param

    def fill(self, role, shape, fan_in, fan_out, rng):
        import numpy
        filler = self.fillers.get(role)
        if filler is None:
            from ..fillers import default_filler
            filler = self.fillers[role] = default_filler()
        return numpy.asarray(filler.fill(tuple(shape), fan_in, fan_out, rng, numpy), dtype=DTYPE)

    # ------------------------------------------------------------------ run
    def forward(self, xs, training=False):
        raise NotImplementedError

    def activate(self, y, training=False):
        """Activation then activation quantizer (spec/qat.md §0: QAct runs after the
        activation); keeps the pre-activation for losses that skip the Jacobian."""
        self.last_logits = y
        if self.activation is not None:
            y = self.activation(y)
        if self.qact is not None:
            y = self.qact(y, training)
        return y

    @property
    def loss_kind(self):
        return "sigmoid" if getattr(self.activation, "with_loss", False) else None

    def own_parameters(self):
        return []

    def parameters(self):
        """The cell's Parameters, then its quantizers' (solvers from QWeightSolver/QActSolver)."""
        params = list(self.own_parameters())
        for quantizer, template in ((self.qweight, self.qweight_solver),
                                    (self.qact, self.qact_solver)):
            if quantizer is None:
                continue
            for p in quantizer.parameters():
                if id(p) not in self._solved:
                    if template is not None or p.solver is None:
                        p.solver = (template or _make("solver", "SGD", None, "Solvers")).clone()
                    self._solved.add(id(p))
                params.append(p)
        return params

    def to(self, device):
        for p in self.own_parameters():
            p.data = to_device(p.data, device)
            p.grad = None if p.grad is None else to_device(p.grad, device)
        for name in self.state_names:
            setattr(self, name, to_device(getattr(self, name), device))
        for quantizer in (self.qweight, self.qact):
            if quantizer is not None and hasattr(quantizer, "to"):
                quantizer.to(device)
        return self

    # ------------------------------------------------------------------ weights I/O
    def export_weights(self, folder, precision=None):
        """Write this cell's ``.syntxt`` files (spec §6.4); cells without Parameters write only
        their activation quantizer's state."""
        if self.qact is not None:
            os.makedirs(folder, exist_ok=True)
            self.qact.export_state(folder, self.name)

    def import_weights(self, folder, ignore_missing=False):
        if self.qact is not None:
            self.import_quantizer_state(self.qact, folder, ignore_missing)

    def read_weight_file(self, path, expected=None, ignore_missing=False, what="values"):
        """``syntxt.read_numbers``; a file missing under ``ignore_missing`` gives None and N2D2's
        notice in ``import_notices`` (spec/ini.md §6.4: ``-w`` missing files are notices)."""
        from ..io import syntxt
        values = syntxt.read_numbers(path, expected, ignore_missing, what)
        if values is None:
            self.import_notices.append(f"Notice: Could not open synaptic file: {path}")
        return values

    def import_quantizer_state(self, quantizer, folder, ignore_missing=False):
        """A quantizer's ``import_state``, with the notice for a state file (α, LSQ step, masks)
        missing under ``ignore_missing``."""
        state_file = getattr(quantizer, "state_file", None)
        if ignore_missing and state_file is not None:
            path = state_file(folder, self.name)
            if not os.path.exists(path):
                self.import_notices.append(f"Notice: Could not open synaptic file: {path}")
                return
        quantizer.import_state(folder, self.name, ignore_missing)

    def summary(self):
        return f"{self.name:16s} {self.type_name:10s} {self.in_shapes} -> {self.out_shape}"


class WeightedCell(Cell):
    """Conv, Deconv, Fc: ``weights`` (one Parameter per parent), ``bias``, ``qweight``.

    The weight quantizer is applied at one point, ``quantized_weights()``."""
    no_bias = Key("NoBias", to_bool, False, config=True)
    back_propagate = Key("BackPropagate", to_bool, True, config=True)
    outputs_remap = Key("OutputsRemap", to_str, "", config=True)
    solver_roles = ("Weights", "Bias")
    filler_roles = ("Weights", "Bias")
    has_qweight = True
    unsupported_keys = ("WeightsSharing", "BiasesSharing")

    def __init__(self, name="", parents=("env",), **values):
        super().__init__(name, parents, **values)
        self.weights, self.bias, self.weight_masks = [], None, []

    def create_parameters(self, rng):
        if self.outputs_remap:
            raise self.error("OutputsRemap is not supported", key="OutputsRemap")
        self.create_weights(rng)
        if not self.no_bias:
            shape = (self.out_shape[0],)
            # N2D2's bias tensor is (1, 1, O, 1): fan-in O, fan-out 1 [unverified]
            self.bias = self.new_parameter(self.fill("Bias", shape, shape[0], 1, rng), "Bias",
                                           "biases")

    def own_parameters(self):
        return list(self.weights) + ([] if self.bias is None else [self.bias])

    def quantized_weights(self):
        """The weight Variables the forward uses: quantized (``QWeight``), then the sparse
        Mapping masks applied (after quantizing: a quantized 0 need not be 0)."""
        ws = list(self.weights)
        if self.qweight is not None:
            ws = list(self.qweight(ws))
        return [w if m is None else w * m for w, m in zip(ws, self.weight_masks)]

    def inputs(self, xs):
        """``BackPropagate=0``: no gradient flows to the parents."""
        return list(xs) if self.back_propagate else [x.detach() for x in xs]

    def to(self, device):
        super().to(device)
        self.weight_masks = [to_device(m, device) for m in self.weight_masks]
        return self

    @property
    def export_precision(self):
        """N2D2 writes 6 significant digits, 10 when the cell has a weight quantizer (§6.4)."""
        return 10 if self.qweight is not None else 6
