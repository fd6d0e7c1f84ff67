"""``n2d2_ip.quantizer`` (also ``n2d2.quantizer``): SATCell, SATAct, LSQCell, LSQAct over
``quantizers/``, and ``fuse_qat`` (the ``--qat-sat`` fusion).

A weight quantizer (``CellQuantizer``) goes to a Conv/Fc/Deconv cell's ``quantizer``; an
activation quantizer to an activation's ``quantizer``. A quantizer with learnable values (SAT's
α, LSQ's step) takes ``solver=`` (default: SGD with N2D2's defaults); it becomes the cell's
``QActSolver``/``QWeightSolver`` template, as in the INI.
"""
import sys

from ..quantizers import (LSQActQuantizer, LSQWeightQuantizer, SATActQuantizer,
                          SATWeightQuantizer)
from ..quantizers.base import LazyParameter
from .errors import WrongInputType, WrongValue, check_type
from .solver import Solver, bound
from .view import View


class Quantizer(View):
    """Base of the quantizers: ``set_range``, ``solver`` (learnable quantizers only)."""
    _learnable = False

    def __init__(self, **config_parameters):
        solver = config_parameters.pop("solver", None) if self._learnable else None
        object.__setattr__(self, "_solver", None)
        object.__setattr__(self, "_attached", [])
        super().__init__(**config_parameters)
        if solver is not None:
            self.solver = solver

    def _adopt(self):
        object.__setattr__(self, "_solver", None)
        object.__setattr__(self, "_attached", [])

    def _configure(self, options):
        super()._configure(options)
        problem = self._core.check_keys()
        if problem is not None:
            key, message = problem
            name = next((n for n, k in self._keys().items() if k.ini == key), key)
            raise WrongValue(f"{self._describe()}: {name}: {message}")

    def set_range(self, integer_range):
        self._configure({"range": integer_range})

    # -- the solver of learnable values ----------------------------------------------------------
    @property
    def solver(self):
        return self._solver

    @solver.setter
    def solver(self, solver):
        if not self._learnable:
            raise WrongInputType(f"{self._describe()} has no learnable value: it takes no solver")
        check_type(self._describe(), "solver", solver, Solver, "a solver (n2d2.solver.SGD, Adam)")
        object.__setattr__(self, "_solver", solver)
        for cell, slot in self._attached:
            setattr(cell, slot, solver.N2D2())
        for param in self._created_parameters():   # already trained values: a fresh solver
            param.solver = solver.N2D2().clone()

    def get_solver(self):
        return self._solver

    def set_solver(self, solver):
        self.solver = solver

    def _created_parameters(self):
        """The quantizer's learnable Parameters created so far (they are made on first use)."""
        core, found = self._core, []
        for klass in type(core).__mro__:
            for value in vars(klass).values():
                if isinstance(value, LazyParameter) and core.__dict__.get(value.slot) is not None:
                    found.append(core.__dict__[value.slot])
        return found

    def _attach(self, cell, slot):
        """``cell`` (a built or unbuilt cell) now runs this quantizer; its solver template is
        ``slot`` (``qweight_solver`` or ``qact_solver``). One quantizer serves one cell: its
        run-time state (α, the SAT scale the fusion reads) is that cell's."""
        others = [c.name for c, _ in self._attached if c is not cell]
        if others:
            raise WrongValue(f"{self._describe()} is already the quantizer of cell '{others[0]}': "
                             f"give each cell its own (a function returning a new "
                             f"n2d2.ConfigSection, as N2D2's documentation does)")
        if all(c is not cell for c, _ in self._attached):
            self._attached.append((cell, slot))
        setattr(cell, slot, None if self._solver is None else self._solver.N2D2())

    def _adopt_solver(self, template, params):
        if template is not None and self._learnable:
            view = bound(Solver.from_core(template), lambda: [p.solver for p in params()
                                                               if p.solver is not None])
            object.__setattr__(self, "_solver", view)


class CellQuantizer(Quantizer):
    """A weight quantizer (``QWeight``)."""

    def get_quantized_weights(self, input_idx=0):
        """The quantized weights of input ``input_idx`` of the cell this quantizer is on."""
        from .tensor import Tensor
        cells = [c for c, _ in self._attached if getattr(c, "weights", None)]
        if not cells:
            raise WrongValue(f"{self._describe()} is not on a built cell")
        return Tensor.from_numpy(cells[-1].quant_weight_arrays()[input_idx])


class ActivationQuantizer(Quantizer):
    """An activation quantizer (``QAct``)."""

    @classmethod
    def from_cell(cls, cell):
        """The view of ``cell.qact`` with its solver template (``QActSolver``)."""
        view = cls.from_core(cell.qact)
        view._attached.append((cell, "qact_solver"))
        view._adopt_solver(cell.qact_solver, view._created_parameters)
        return view


def weight_quantizer_of(cell):
    """The view of a built cell's weight quantizer (None: none)."""
    if cell.qweight is None:
        return None
    view = CellQuantizer.from_core(cell.qweight)
    view._attached.append((cell, "qweight_solver"))
    view._adopt_solver(cell.qweight_solver, view._created_parameters)
    return view


class SATCell(CellQuantizer):
    """SAT weights (DoReFa + scale adjustment): ``range`` (255), ``quant_mode`` (Default),
    ``apply_quantization`` (True; False: clamp only), ``apply_scaling`` (False)."""
    _core_class = SATWeightQuantizer

    def set_scaling(self, status):
        check_type(self._describe(), "status", status, bool, "True or False")
        self._configure({"apply_scaling": status})

    def set_quantization(self, status):
        check_type(self._describe(), "status", status, bool, "True or False")
        self._configure({"apply_quantization": status})


class SATAct(ActivationQuantizer):
    """SAT activations (CG-PACT): ``range`` (255), ``alpha`` (initial α, 1.0 in N2D2's code),
    ``solver`` (α's)."""
    _core_class = SATActQuantizer
    _renamed = {"alpha": "alpha_init"}
    _learnable = True


class LSQCell(CellQuantizer):
    """LSQ weights: ``range``, ``step_size``, ``set_opt_init_step_size``, ``solver``."""
    _core_class = LSQWeightQuantizer
    _renamed = {"step_size": "step_size_init"}
    _learnable = True


class LSQAct(ActivationQuantizer):
    """LSQ activations: ``range``, ``step_size``, ``set_opt_init_step_size``, ``solver``."""
    _core_class = LSQActQuantizer
    _renamed = {"step_size": "step_size_init"}
    _learnable = True


# -- fusion -------------------------------------------------------------------------------------
#: N2D2's ScalingMode names -> ours
SCALING_MODES = {"FLOAT_MULT": "Floating-point", "FIXED_MULT16": "Fixed-point16",
                 "FIXED_MULT32": "Fixed-point32", "SINGLE_SHIFT": "Single-shift",
                 "DOUBLE_SHIFT": "Double-shift"}
ROUND_MODES = ("NONE", "RINTF")


def fuse_qat(deep_net, provider, act_scaling_mode, w_mode="NONE", b_mode="NONE", c_mode="NONE"):
    """Fuse a SAT-trained network (BatchNorm into the Conv scaling and clipping; quantizers
    removed) into the integer network, and return it (``qat.engine.FusedNet``: ``test()``,
    ``forward()``). ``deep_net`` then draws the fused graph (``draw_graph``) and exports it
    (``n2d2.export.export_c``).

    ``act_scaling_mode``: ``FLOAT_MULT``, ``FIXED_MULT16``, ``FIXED_MULT32``, ``SINGLE_SHIFT``
    (``DOUBLE_SHIFT`` is refused, as ``--qat-sat`` does). ``NONE``, with which N2D2 leaves the
    layers without activation rescaling (their outputs are then not activation codes),
    rescales in floating point, with a notice."""
    from ..qat.fuse import fuse_qat as fuse
    from .deepnet import DeepNet
    from .provider import Provider
    check_type("fuse_qat", "deep_net", deep_net, DeepNet, "an n2d2.deepnet.DeepNet "
               "(x.get_deepnet(), model.get_embedded_deepnet())")
    check_type("fuse_qat", "provider", provider, Provider, "an n2d2.provider.DataProvider")
    for name, value in (("act_scaling_mode", act_scaling_mode), ("w_mode", w_mode),
                        ("b_mode", b_mode), ("c_mode", c_mode)):
        check_type("fuse_qat", name, value, str, "a string")
    if act_scaling_mode == "NONE":
        print("Notice: fuse_qat: act_scaling_mode NONE leaves N2D2's fused layers without "
              "activation rescaling; n2d2py rescales them in floating point (FLOAT_MULT)",
              file=sys.stderr)
        act_scaling_mode = "FLOAT_MULT"
    if act_scaling_mode not in SCALING_MODES:
        raise WrongValue(f"fuse_qat: act_scaling_mode={act_scaling_mode!r}: expected one of "
                         f"NONE, {', '.join(SCALING_MODES)}")
    for name, value in (("w_mode", w_mode), ("b_mode", b_mode), ("c_mode", c_mode)):
        if value not in ROUND_MODES:
            raise WrongValue(f"fuse_qat: {name}={value!r}: expected NONE or RINTF")
    net = deep_net.N2D2(provider)
    print("Fuse the QAT Graph for hardware compatibility...")
    fused = fuse(net, SCALING_MODES[act_scaling_mode], w_mode, b_mode, c_mode)
    deep_net._fused = fused
    return fused


__all__ = ["Quantizer", "CellQuantizer", "ActivationQuantizer", "SATCell", "SATAct", "LSQCell",
           "LSQAct", "fuse_qat"]
