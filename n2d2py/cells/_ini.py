"""Reading a cell from its INI section (keys, config sections, unknown keys: docs/INI.md
§6, §10): the private half of ``cells/base.py``.

``SectionReader.from_section`` reads, in N2D2's order: the declared ``Key``s of the cell section
(dims through one alias chain, ``DimsKey``); ``ActivationFunction`` (+ ``.*``);
``WeightsFiller``/``BiasFiller`` (+ ``.*``); ``Solvers=``/``<Role>Solver=`` (+ prefixed keys of the
cell section); ``QWeight``/``QWeightSolver`` (+ ``.*``); ``QAct``/``QActSolver`` (+ ``.*``, only
when ``ActivationFunction`` is present, as in N2D2); then the ConfigSection list, evaluated in the
context of the *cell* section (``${X}`` finds the cell's ``$X``), and finally ``<section>.cfg`` in
the CWD. ``collect_warnings`` judges every other key of the section: N2D2 ignores cell parameters
written in the cell section and, for most cell types, unknown keys.
"""
import os

from ..errors import IniError, close_matches
from ..ini.convert import list_of, to_int
from ..params import REQUIRED, Key, Parameterizable, check_key_rules

# keys every cell section may hold, read by the DeepNet (Input, Type) or here
COMMON_KEYS = ("Input", "Type", "Model", "DataType", "ConfigSection")
# keys whose presence makes N2D2 mark every key of the section read
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
    (truncated with a warning, for N2D2 models written for Python 2). Errors name ``key`` at
    ``place``."""
    if hasattr(place, "convert"):
        return place.convert(text, convert, key)
    try:
        return convert(text)
    except ValueError as exc:
        raise place.error(str(exc), key=key) from None


def make(registry_name, name, place, key):
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


class SectionReader:
    """The INI half of ``Cell``: ``from_section`` and the readers it calls, in order."""

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
        ``WeightsFiller.Value``) that neither the section nor its ConfigSection set, then each
        part's rules between keys (``check_keys``: ``QuantMode=Symmetric`` needs ``Range >= 2``)."""
        parts = [(f"{role}Filler", filler) for role, filler in self.fillers.items()]
        parts += [(f"{role}Solver", solver) for role, solver in self.solvers.items()]
        parts += [("ActivationFunction", self.activation), ("QWeight", self.qweight),
                  ("QWeightSolver", self.qweight_solver), ("QAct", self.qact),
                  ("QActSolver", self.qact_solver)]
        for selector, obj in parts:
            if not isinstance(obj, Parameterizable):
                continue
            missing = obj.missing_required()
            if missing:
                key = f"{selector}.{missing[0]}"
                raise section.error(f"missing required key {key} for {obj.describe()} "
                                    f"({selector}={section.get(selector, type(obj).__name__)})",
                                    key=key)
            check_key_rules(obj, section, selector + ".")

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
        from .activation_functions import ACTIVATIONS
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
                self.fillers[role] = make("filler", section.get(key), section, key)
                set_prefixed(self.fillers[role], section.prefixed(key + "."), section, key + ".")

    def read_solvers(self, section):
        for role in self.solver_roles:      # N2D2 starts every cell with SGD solvers
            self.solvers[role] = make("solver", "SGD", section, "Solvers")
        if "Solvers" in section:
            for role in self.solver_roles:
                self.solvers[role] = self._section_solver(section, "Solvers")
        for role in self.solver_roles:
            if f"{role}Solver" in section:
                self.solvers[role] = self._section_solver(section, f"{role}Solver")

    def _section_solver(self, section, key):
        solver = make("solver", section.get(key), section, key)
        set_prefixed(solver, section.prefixed(key + "."), section, key + ".")
        return solver

    def read_quantizers(self, section):
        if self.has_qweight and "QWeight" in section:
            self.read_qweight(section)
        if "ActivationFunction" in section and "QAct" in section:
            self.read_qact(section)

    def read_qweight(self, section):
        """``QWeight`` (+ ``QWeight.*``, ``QWeightSolver``) of ``section``."""
        self.qweight, self.qweight_solver = self._section_quantizer(section, "qweight", "QWeight")

    def read_qact(self, section):
        """``QAct`` (+ ``QAct.*``, ``QActSolver``) of ``section``."""
        self.qact, self.qact_solver = self._section_quantizer(section, "qact", "QAct")

    def _section_quantizer(self, section, kind, key):
        """``<key>=Type`` with its ``<key>.*`` keys, and ``<key>Solver`` (SGD by default)."""
        quantizer = make(kind, section.get(key), section, key)
        set_prefixed(quantizer, section.prefixed(key + "."), section, key + ".")
        solver_key = key + "Solver"
        solver = self._section_solver(section, solver_key) if solver_key in section \
            else make("solver", "SGD", section, solver_key)
        set_prefixed(solver, section.prefixed(solver_key + "."), section, solver_key + ".")
        return quantizer, solver

    def config_values(self, section):
        """``{key: (text, place)}`` from the ConfigSection list (later ones win), then
        ``<section>.cfg`` in the CWD, in N2D2's order."""
        key = f"ConfigSection({self.model})"
        key = key if key in section else "ConfigSection"
        values = _config_section_values(section, key) if key in section else {}
        values.update(_cfg_file_values(section.name))
        return values

    def apply_config(self, section):
        values = self.config_values(section)
        ordered = [("Solvers.", self.solver_roles)] + [(f"{r}Solver.", (r,)) for r in self.solver_roles]
        for prefix, roles in ordered:  # Solvers.* first, then the specific prefix wins
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
        """Sentences for keys N2D2 would ignore; fatal only where
        N2D2's post-build check would fire (Conv/Deconv/BatchNorm with no key that marks the
        whole section read)."""
        known = self._known_keys()
        config_keys = {k.ini for k in self.keys().values() if k.config}
        for k in section.keys():
            if k.startswith(("$", "_", "ConfigSection(")):
                continue
            warning = self._key_warning(section, k, known, config_keys)
            if warning is not None:
                self.warnings.append(warning)
        section.mark_all_read()  # judged here; the DeepNet need not report them again

    def _known_keys(self):
        """Every key the cell section itself may hold (config keys excluded)."""
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
        return known

    def _key_warning(self, section, k, known, config_keys):
        """The sentence for a key N2D2 ignores, None for a key it reads; raises for an unknown
        key where N2D2's post-build check would."""
        where = f"in [{section.name}]"
        family = self._prefix_owner(k)
        if k in config_keys:
            return (f"ignored: {k}={section.raw(k)} {where} (N2D2 reads cell "
                    f"parameters only from a ConfigSection)")
        if k in ("QAct", "QActSolver") or family in ("QAct", "QActSolver"):
            return None if "ActivationFunction" in section else \
                (f"ignored: {k} {where} (N2D2 reads QAct only when "
                 f"ActivationFunction= is present)")
        if family is not None:
            return None if family in section else f"ignored: {k} {where} (no {family}= in this section)"
        if self.uses_mapping and k.startswith(("Mapping.", "Mapping(")):
            return None
        if k in self.unsupported_keys:
            return f"ignored: {k} {where} (not supported by n2d2py)"
        if k in known:
            return None
        message = (f"unknown key '{k}' for Type={self.type_name}"
                   f"{close_matches(k, known | config_keys)}")
        if self.strict_unknown_keys and not any(key in section for key in SECTION_READERS):
            raise section.error(message, key=k)
        return f"ignored: {message} {where} (as N2D2 does)"


def _config_section_values(section, key):
    """``{key: (text, config section)}`` of the sections ``key`` lists, evaluated in the
    context of the CELL section, as in N2D2."""
    values = {}
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
            config.mark_read(k)
            values[k] = (section.document.evaluate(section, entry.raw, entry), config)
    return values


def _cfg_file_values(name):
    """``{key: (text, _FilePlace)}`` from ``<name>.cfg`` in the CWD, if there is one."""
    from ..io.names import find_cell_file
    path = find_cell_file(os.getcwd(), name, ".cfg")
    values = {}
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
