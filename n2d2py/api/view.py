"""``View``: an object of N2D2's Python API over one of our objects (N2D2's ``N2D2_Interface``
over its C++ object). ``N2D2()`` returns the object underneath, which the INI path builds too.

A view class names the class it shows (``_core_class``); its keyword arguments are that class's
``Key``s by their Python names (``options.python_keys``), converted as the INI converts them.
``from_core(obj)`` gives the view of an object built elsewhere (an INI or ONNX cell's solver,
activation or quantizer), by the class each view declares.
"""
from .errors import WrongInputType, WrongValue, unknown_argument
from .options import python_keys, set_options

#: ``model``/``datatype`` are accepted by most N2D2 objects: the CPU model and float32 only
PURE_N2D2 = {"model": ("Frame", "Frame_CUDA"), "datatype": ("float",)}


def without_pure_n2d2(owner, options):
    """``options`` without ``model``/``datatype``, checked (N2D2 passes them to most objects)."""
    options = dict(options)
    for name, allowed in PURE_N2D2.items():
        value = options.pop(name, None)
        if value is not None and value not in allowed:
            raise WrongValue(f"{owner}: {name}={value!r}: n2d2py supports "
                             f"{', '.join(map(repr, allowed))}")
    return options


class View:
    _core_class = None      # the class of the object shown
    _renamed = {}           # {N2D2 Python name: Key attribute} where they differ
    _skip = ()              # Key attributes that are not keyword arguments here
    _registry = {}          # core class -> view class (filled by __init_subclass__)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        core = cls.__dict__.get("_core_class")
        if core is not None:
            View._registry.setdefault(core, cls)

    def __init__(self, **config_parameters):
        if self._core_class is None:
            raise WrongInputType(f"{type(self).__name__} is abstract: use one of its subclasses")
        object.__setattr__(self, "_core", self._core_class())
        self._configure(config_parameters)

    # -- the object underneath ------------------------------------------------------------------
    def N2D2(self):
        return self._core

    @classmethod
    def from_core(cls, core):
        """The view of ``core`` (the most specific view class declared for its class; ``cls``
        itself when none is)."""
        view = next((View._registry[k] for k in type(core).__mro__ if k in View._registry), cls)
        if not issubclass(view, cls):
            view = cls
        obj = view.__new__(view)
        object.__setattr__(obj, "_core", core)
        obj._adopt()
        return obj

    def _adopt(self):
        """Set the view's own attributes for an object built elsewhere (``from_core``)."""

    # -- parameters -----------------------------------------------------------------------------
    @classmethod
    def _keys(cls):
        if "_keys_cache" not in cls.__dict__:
            core = cls._core_class
            cls._keys_cache = {} if core is None else python_keys(core, cls._renamed, cls._skip)
        return cls._keys_cache

    def _describe(self):
        return type(self).__name__

    def _targets(self):
        """The objects a parameter change goes to (a cell's solver: its clones too)."""
        return [self._core]

    def _configure(self, options):
        options = without_pure_n2d2(self._describe(), options)
        for target in self._targets():
            set_options(self._describe(), target, options, self._keys())

    def set_parameter(self, key, value):
        self._configure({key: value})

    def get_parameter(self, key):
        keys = self._keys()
        if key not in keys:
            raise unknown_argument(self._describe(), key, keys)
        return getattr(self._core, keys[key].attr)

    def get_parameters(self):
        return {name: getattr(self._core, key.attr) for name, key in self._keys().items()}

    def __getattr__(self, name):      # only for names not found the usual way
        keys = type(self)._keys()
        if name in keys and "_core" in self.__dict__:
            return getattr(self._core, keys[name].attr)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name, value):
        if not name.startswith("_") and name in type(self)._keys() \
                and not hasattr(type(self), name):
            self._configure({name: value})
        else:
            object.__setattr__(self, name, value)

    def get_type(self):
        return type(self).__name__

    def copy(self):
        """A new view over a new object with the same parameters (and no run-time state)."""
        core = self._core
        values = {k.attr: core.__dict__[k.attr] for k in core.keys().values()
                  if k.attr in core.__dict__}
        return type(self).from_core(type(core)(**values))

    def __str__(self):
        options = ", ".join(f"{name}={value!r}" for name, value in self.get_parameters().items())
        return f"{self.get_type()}({options})"

    __repr__ = __str__
