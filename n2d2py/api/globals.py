"""``n2d2.global_variables``: the session's settings (N2D2's ``GlobalVariables``).

``seed`` (default 1, as N2D2's Python API and our INI runs) seeds two generators, made as the
``n2d2py`` command makes them, so a network built from Python gets the values the same INI
gets: ``build_rng()`` (``default_rng(seed)``: database partitions, fillers, dropout masks — in
the order objects are created) and ``data_rng()`` (``default_rng([seed, 1])``: batch draws and
on-the-fly augmentation). Setting ``seed`` starts both again.

GPU settings (``cuda_device``, ``default_model = "Frame_CUDA"``) are accepted with a notice:
this API runs on the CPU. ``default_model`` is still written into the cells, as the INI's
``DefaultModel`` is (it selects N2D2's CUDA conventions, such as inverted dropout).
"""
import enum
import os
import sys

import numpy

MODELS = ("Frame", "Frame_CUDA")


def notice(message):
    """A one-line notice on stderr (N2D2 prints its notices on the console)."""
    print(f"Notice: {message}", file=sys.stderr)


class GlobalVariables:
    """N2D2's ``n2d2.global_variables`` (see the module docstring)."""

    class Verbosity(enum.Enum):
        graph_only = 0
        short = 1
        detailed = 2

    def __init__(self):
        self.model_cache = os.path.join(os.path.expanduser("~"), "MODELS")
        self.default_datatype = "float"
        self.verbosity = self.Verbosity.detailed
        self._default_model = "Frame"
        self._cuda_device = 0
        self._seed = 1
        self._build_rng = self._data_rng = None

    # -- random numbers ----------------------------------------------------------------------
    @property
    def seed(self):
        return self._seed

    @seed.setter
    def seed(self, value):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise TypeError(f"global_variables.seed must be a non-negative int, got {value!r}")
        self._seed = value
        self._build_rng = self._data_rng = None

    def build_rng(self):
        if self._build_rng is None:
            self._build_rng = numpy.random.default_rng(self._seed)
        return self._build_rng

    def data_rng(self):
        if self._data_rng is None:
            self._data_rng = numpy.random.default_rng([self._seed, 1])
        return self._data_rng

    # -- devices -------------------------------------------------------------------------------
    @property
    def default_model(self):
        return self._default_model

    @default_model.setter
    def default_model(self, value):
        if value not in MODELS:
            raise ValueError(f"global_variables.default_model must be one of "
                             f"{', '.join(MODELS)}, got {value!r}")
        if value.endswith("_CUDA"):
            notice(f"default_model={value}: n2d2py's Python API runs on the CPU (the cells keep "
                   f"N2D2's {value} conventions)")
        self._default_model = value

    @property
    def cuda_device(self):
        return self._cuda_device

    @cuda_device.setter
    def cuda_device(self, value):
        if isinstance(value, bool) or not isinstance(value, (int, tuple, list)):
            raise TypeError(f"global_variables.cuda_device must be an int or a list of ints, "
                            f"got {type(value).__name__}")
        notice(f"cuda_device={value}: n2d2py's Python API runs on the CPU, no GPU is used")
        self._cuda_device = value

    @property
    def cuda_available(self):
        return False

    @property
    def onnx_compiled(self):
        import importlib.util
        return importlib.util.find_spec("onnx") is not None

    json_compiled = False
    n2d2_ip_compiled = True

    def __str__(self):
        names = ("default_model", "default_datatype", "seed", "cuda_device", "cuda_available",
                 "verbosity", "model_cache")
        return "n2d2 global variables :\n" + "\n".join(f"\t- {n} : {getattr(self, n)}" for n in names)


global_variables = GlobalVariables()


_counters = {}


def generate_name(obj):
    """``<Class>_<n>``, n counting from 0 per class name in this session (N2D2's names: the
    weight files of two runs of one script match)."""
    kind = type(obj).__name__
    _counters[kind] = _counters.get(kind, -1) + 1
    return f"{kind}_{_counters[kind]}"
