"""INI keys declared next to the code they configure (N2D2's ``Parameter<T>``), and registries.

    class SGDSolver(Parameterizable):
        learning_rate = Key("LearningRate", to_float, default=0.01)

gives ``solver.learning_rate`` (default 0.01), ``SGDSolver(learning_rate=0.1)`` from Python, and
``solver.set_parameters({"LearningRate": "0.1"}, section)`` from the INI, with errors that name
the section and key. Cells, solvers, fillers, quantizers, transformations and databases all use it.
"""
from .errors import IniError, close_matches

REQUIRED = object()


class Key:
    """One INI key: ``ini`` spelling, converter, default (``REQUIRED`` if none), aliases,
    ``config=True`` for cell parameters N2D2 accepts only through a ConfigSection, and
    ``check``: ``check(value) -> None or "what is wrong"`` run on every value read (so a bad
    value fails where it is read, naming file:line and key) and on values given from Python."""

    def __init__(self, ini, convert, default=REQUIRED, aliases=(), config=False, doc="",
                 check=None):
        self.ini, self.default = ini, default
        self.aliases, self.config, self.doc, self.check = tuple(aliases), config, doc, check
        self.convert = convert if check is None else _checked(convert, check)
        self.attr = None

    def __set_name__(self, owner, name):
        self.attr = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        try:
            return obj.__dict__[self.attr]
        except KeyError:
            if self.default is REQUIRED:
                raise AttributeError(f"{type(obj).__name__}: required key {self.ini} not set") from None
            return self.default

    def __set__(self, obj, value):
        obj.__dict__[self.attr] = value


def at_least(minimum):
    """A ``Key`` check: the value is at least ``minimum``."""
    return lambda value: None if value >= minimum else f"must be at least {minimum}, got {value}"


def _checked(convert, check):
    """``convert`` followed by ``check``: a failed check is a ValueError like a bad number, so
    every reader reports it with the place of the key."""
    def convert_and_check(text):
        value = convert(text)
        problem = check(value)
        if problem:
            raise ValueError(problem)
        return value
    return convert_and_check


class Parameterizable:
    """Base of every INI-configured object: declared ``Key``s, set from Python or INI text."""

    def __init__(self, **values):
        keys = self.keys()
        by_attr = {k.attr: k for k in keys.values()}
        for attr, value in values.items():
            if attr not in by_attr:
                raise TypeError(f"{type(self).__name__} has no parameter {attr!r}"
                                f"{close_matches(attr, by_attr)}")
            check = by_attr[attr].check
            problem = check(value) if check is not None else None
            if problem:
                raise IniError(f"{problem} ({self.describe()})", key=by_attr[attr].ini)
            setattr(self, attr, value)

    @classmethod
    def keys(cls):
        """``{ini_name: Key}`` over the class hierarchy (aliases not included)."""
        found = {}
        for klass in reversed(cls.__mro__):
            for value in vars(klass).values():
                if isinstance(value, Key):
                    found[value.ini] = value
        return found

    @classmethod
    def find_key(cls, ini_name):
        for key in cls.keys().values():
            if ini_name == key.ini or ini_name in key.aliases:
                return key
        return None

    def set_parameter(self, ini_name, text, section=None):
        """Set one key from INI text; unknown key or bad value -> IniError naming the place."""
        key = self.find_key(ini_name)
        if key is None:
            message = (f"unknown parameter '{ini_name}' for {self.describe()}"
                       f"{close_matches(ini_name, self.keys())}")
            raise section.error(message, key=ini_name) if section is not None else IniError(message)
        if section is not None:  # the section names the place and truncates $() floats
            setattr(self, key.attr, section.convert(text, key.convert, ini_name))
            return
        try:
            setattr(self, key.attr, key.convert(text))
        except ValueError as exc:
            raise IniError(f"{exc} for {key.ini}") from None

    def set_parameters(self, values, section=None):
        for name, text in values.items():
            self.set_parameter(name, text, section)

    def check_keys(self):
        """Rules between keys (each key's own ``check`` ran when it was read): ``(INI key,
        message)`` of the first that fails, or None. Called once every key is set (build time)."""
        return None

    def missing_required(self):
        return [k.ini for k in self.keys().values()
                if k.default is REQUIRED and k.attr not in self.__dict__]

    def parameters_dict(self):
        """``{ini_name: value}`` of every declared key (for reports and ``-cfg``-style dumps)."""
        out = {}
        for key in self.keys().values():
            try:
                out[key.ini] = getattr(self, key.attr)
            except AttributeError:
                pass
        return out

    def describe(self):
        return type(self).__name__


def check_key_rules(obj, place=None, prefix=""):
    """Raise the IniError of ``obj.check_keys()``, naming ``prefix + key`` at ``place`` (a
    Section: file:line of the key)."""
    problem = obj.check_keys()
    if problem is not None:
        key, message = problem
        message = f"{message} ({obj.describe()})"
        raise place.error(message, key=prefix + key) if place is not None else \
            IniError(message, key=prefix + key)


class Registry:
    """Name -> class table filled by a decorator: ``@CELLS.register("Conv")``."""

    def __init__(self, kind):
        self.kind, self.classes = kind, {}

    def register(self, name):
        def decorate(cls):
            self.classes[name] = cls
            cls.type_name = name
            return cls
        return decorate

    def __contains__(self, name):
        return name in self.classes

    def names(self):
        return sorted(self.classes)

    def get(self, name, section=None, key="Type"):
        try:
            return self.classes[name]
        except KeyError:
            message = (f"unknown {self.kind} type '{name}'{close_matches(name, self.classes)}; "
                       f"known: {', '.join(self.names())}")
            raise section.error(message, key=key) if section is not None else IniError(message) from None
