"""DeepNet: the network an INI file describes, built as N2D2's ``generateFromINI`` does.

spec/ini.md §2.1 (flow), §2.2 (order), §2.5 (build-time keys), §2.6 (targets), §1.7 (global
keys). Cells come from ``cells.CELLS`` by ``Type``; the StimuliProvider and Database from
``data/``; targets from ``target.py``. Learning and testing loops live in ``learn.py``.

Where we differ from N2D2 (and say so): a section whose parents never resolve (a cycle) or a
parent that names no cell is **reported** as an IniError; N2D2 silently drops such sections.
"""
import math
import os
import time

import numpy

from . import backend
from .autograd import Variable
from .errors import IniError, close_matches
from .ini.diagnostics import check_global_keys
from .target import target_from_section

FRAME_MODELS = ("Frame", "Frame_CUDA", "Transcode", "Transcode_CUDA")
DATA_TYPES = ("Float16", "Float32", "Float64")
#: Cell types N2D2 has that n2d2py does not implement (spec/ini.md §2.8.1, §7).
OUT_OF_SCOPE_CELLS = {
    "Anchor": "Faster R-CNN detection", "RP": "Faster R-CNN detection",
    "ROIPooling": "Faster R-CNN detection", "Proposal": "detection",
    "ObjectDet": "SSD detection", "FMP": "fractional max pooling", "Unpool": "unpooling",
    "Distance": "distance", "LSTM": "cuDNN LSTM",
}


class NumericalFault(ArithmeticError):
    """A NaN/Inf found by ``learn_batch`` before its updates: ``where`` is "loss" or
    "gradient", ``kind`` "NaN" or "Inf", ``param`` the Parameter's name and ``cell`` its cell."""

    def __init__(self, where, kind, param=None, cell=None):
        super().__init__(f"{kind} in the {where}" + (f" of {param}" if param else ""))
        self.where, self.kind, self.param, self.cell = where, kind, param, cell


def _gradient_fault(params, cells):
    """NumericalFault for the last Parameter in build order (the first that backward reached)
    whose gradient has a NaN/Inf, else None. One sum
    per gradient and a single device synchronisation when all is well."""
    total = None
    for param in params:
        if param.grad is not None:
            s = param.grad.sum()
            total = s if total is None else total + s
    if total is None or math.isfinite(float(backend.asnumpy(total))):
        return None
    # rare: find it, in backward order (the first gradient to go bad); a float32 sum that
    # overflowed finds nothing: no fault
    for cell in reversed(list(cells.values())):
        for param in cell.parameters():
            g = param.grad
            if g is None:
                continue
            xp = backend.get_xp(g)
            if not bool(xp.isfinite(g).all()):
                kind = "NaN" if bool(xp.isnan(g).any()) else "Inf"
                return NumericalFault("gradient", kind, param.name, cell.name)
    return None


def seed_quantizers(cells, seed):
    """Quantizers with their own generator (Prune's random masks) get one derived from the run's
    seed, so that every random draw of a run follows ``--seed``."""
    for index, cell in enumerate(cells.values()):
        for role, q in ((1, getattr(cell, "qweight", None)), (2, getattr(cell, "qact", None))):
            if isinstance(getattr(q, "rng", None), numpy.random.Generator):
                q.rng = numpy.random.default_rng([int(seed) & 0xFFFFFFFF, 7, index, role])


class DeepNet:
    """Cells in N2D2 build order, their targets, the StimuliProvider and the Database.

    ``cells`` is an ordered ``{name: Cell}``; ``targets`` a list (the first is primary);
    ``sp`` the StimuliProvider (None with ``load_data=False`` when data/ cannot build one
    without its database); ``input_shape`` (C, H, W) of ``env``.
    """

    def __init__(self, document, cells, targets, sp, database, input_shape, device, model,
                 levels, notices=()):
        self.document, self.cells, self.targets = document, cells, targets
        self.sp, self.database, self.input_shape = sp, database, input_shape
        self.device, self.model, self.levels = device, model, levels
        self.notices = list(notices)
        self.consumers = _consumers(cells)
        self.history = None  # filled by learn.learn()
        self.timings = None  # {cell: seconds} accumulated by forward() when a dict (--bench)
        self.weight_histograms = True  # export_weights() writes <cell>_weights_quant.distrib.*
        self.constraint_penalty = False  # learn_batch adds constraints.constraint_loss (learn.py)
        self.check_finite = True         # learn_batch stops on a NaN/Inf loss or gradient

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_ini(cls, source, device=None, seed=1, load_data=True, env=None):
        """Load ``source`` (path or IniDocument) and build everything (spec/ini.md §2.1).

        ``device``: "cpu", "gpu" or None (None: the INI's DefaultModel decides, a ``_CUDA``
        model runs on the GPU when CuPy is usable, else on the CPU with a notice).
        ``load_data=False`` builds the cells from the [sp] sizes without reading the database.
        """
        from .ini import load_ini
        from .ini.document import IniDocument
        document = source if isinstance(source, IniDocument) else load_ini(os.fspath(source), env=env)
        notices = []
        model = read_global_keys(document, notices)
        device = choose_device(device, model, notices)
        rng = numpy.random.default_rng(seed)
        database, sp, input_shape = build_stimuli(document, load_data, rng)
        order, levels = cell_order(document)
        cells, targets = build_cells(document, order, input_shape, rng)
        seed_quantizers(cells, seed)
        if not targets:
            raise IniError("Missing target cell (no [*.Target] section found)", file=document.path)
        net = cls(document, cells, targets, sp, database, input_shape, "cpu", model, levels, notices)
        if device != "cpu":
            net.to(device)
        return net

    # -- running -----------------------------------------------------------------------------
    def forward(self, x, training=False, keep=None):
        """Run every cell in build order on a batch ``x`` (N, C, H, W).

        Returns ``{cell_name: Variable}`` (build order) for the cells in ``keep`` (default: the
        target cells and the inputs their losses read); every other output is dropped as soon
        as its last consumer has run, so inference holds few activations at once.
        """
        keep = self.default_keep() if keep is None else (set(self.cells) if keep == "all" else set(keep))
        x = x if isinstance(x, Variable) else Variable(backend.to_device(x, self.device))
        values, remaining = {"env": x}, dict(self.consumers)
        for name, cell in self.cells.items():
            start = time.perf_counter() if self.timings is not None else 0.0
            values[name] = cell.forward([values[p] for p in cell.parents], training)
            if self.timings is not None:
                self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start
            for parent in set(cell.parents):
                remaining[parent] -= 1
                if remaining[parent] == 0 and parent not in keep:
                    values.pop(parent, None)
        return {name: values[name] for name in self.cells if name in values and name in keep}

    def default_keep(self):
        return {target.cell for target in self.targets}

    def logits(self, target, outputs):
        """The pre-activation of a cell with a built-in loss (``cell.last_logits``), else None."""
        if target.loss_kind is None:
            return None
        return getattr(self.cells[target.cell], "last_logits", None)

    def loss(self, outputs, labels, x=None):
        """Sum of every target's loss (N2D2 back-propagates each target's diff and adds them)."""
        total = None
        for target in self.targets:
            term = target.loss(outputs[target.cell], labels, self.logits(target, outputs), x)
            total = term if total is None else total + term
        return total

    def learn_batch(self, x, labels):
        """One training step: forward, loss (+ the quantizers' constraint penalty when
        ``constraint_penalty``, set by learn.py), backward, then every solver's update. Returns
        (loss value, outputs).

        With ``check_finite`` (default) a NaN/Inf loss (tested every step) or gradient (one
        reduction per Parameter) raises ``NumericalFault`` before any update: the parameters
        are left as they were."""
        x = Variable(backend.to_device(x, self.device))
        outputs = self.forward(x, training=True)
        loss = self.loss(outputs, labels, x)
        if self.constraint_penalty:
            from .quantizers.constraints import constraint_loss
            loss = loss + constraint_loss(self.cells)
        value = float(backend.asnumpy(loss.data).sum())
        if self.check_finite and not math.isfinite(value):
            raise NumericalFault("loss", "NaN" if math.isnan(value) else "Inf")
        loss.backward()
        params = self.parameters()
        if self.check_finite:
            fault = _gradient_fault(params, self.cells)
            if fault is not None:
                for param in params:
                    param.grad = None
                raise fault
        from .learn import deferred_signals
        with deferred_signals():  # Ctrl-C never leaves half the parameters updated
            for param in params:
                if param.solver is not None:
                    param.solver.update(param, len(labels))
                else:
                    param.grad = None
        return value, outputs

    def parameters(self):
        return [p for cell in self.cells.values() for p in cell.parameters()]

    def to(self, device):
        """Move every cell's arrays to "cpu" or "gpu" (batches follow, docs/ARCHITECTURE.md)."""
        if device in ("gpu", "cuda") and not backend.cupy_available:
            raise IniError("--device gpu needs CuPy and a CUDA GPU, and none is usable here")
        for cell in self.cells.values():
            cell.to(device)
        self.device = "gpu" if device in ("gpu", "cuda") else "cpu"
        return self

    # -- learning API (learn.py does the work) ------------------------------------------------
    def learn(self, epochs=None, stimuli=None, **options):
        from .learn import learn
        return learn(self, epochs=epochs, stimuli=stimuli, **options)

    def test(self, set_name="Test", limit=None, **options):
        from .learn import test
        return test(self, set_name=set_name, limit=limit, **options)

    # -- weights -----------------------------------------------------------------------------
    def export_weights(self, folder, histograms=None, precision=None):
        """Write every cell's weights into ``folder`` atomically (temporary folder, fsync,
        rename): an interruption leaves the previous folder as it was.

        Cells with a weight quantizer also write their quantizer state and quantized weights
        (``<cell>_quant_weights*.syntxt``); with ``histograms`` (default ``self.weight_histograms``)
        N2D2's ``<cell>_weights_quant.distrib.{dat,png}`` are added (report/histograms.py).
        ``precision`` (significant digits) defaults to N2D2's 6 (10 with a quantizer); 9
        round-trips float32 exactly."""
        from .learn import write_folder_atomically
        if histograms is None:
            histograms = getattr(self, "weight_histograms", True)

        def write(tmp):
            for cell in self.cells.values():
                cell.export_weights(tmp, precision)
            if histograms:
                from .report.histograms import write_quant_distributions
                write_quant_distributions(self, tmp)
        write_folder_atomically(folder, write)

    def import_weights(self, folder, ignore_missing=False):
        """Read every cell's weights (spec/ini.md §6.4); ``/dev/null`` imports nothing.

        With ``ignore_missing`` (N2D2's ``-w``, or ``-w-ignore``) a missing file keeps the current
        values; returns the list of N2D2's notices for them (``Notice: Could not open synaptic
        file: <path>``), which the CLI prints."""
        from .errors import WeightsError
        if os.fspath(folder) == os.devnull:
            return []
        if not os.path.isdir(folder):
            raise WeightsError(f"weights folder '{folder}' does not exist")
        notices = []
        for cell in self.cells.values():
            cell.import_notices = []
            cell.import_weights(os.fspath(folder), ignore_missing)
            notices.extend(cell.import_notices)
        return notices

    # -- description -------------------------------------------------------------------------
    def summary(self):
        """N2D2's build log: ``Layer: name [Type(Model)]`` and synapse counts, dims innermost
        first (spec/ini.md §6.2), then targets and totals."""
        from .report.text import network_summary
        return network_summary(self)

    def warnings(self):
        out = list(self.notices)
        for cell in self.cells.values():
            out.extend(getattr(cell, "warnings", ()) or ())
        return out


# -- global keys, device, stimuli ------------------------------------------------------------
def read_global_keys(document, notices):
    """Check the section-less keys (spec/ini.md §1.7); returns DefaultModel."""
    section = document.global_section
    model = section.get("DefaultModel", "Transcode").strip()
    if model.startswith(("Spike", "CSpike")):
        raise section.error(f"spiking models (DefaultModel={model}) are out of scope for n2d2py",
                            key="DefaultModel")
    if model not in FRAME_MODELS:
        raise section.error(f"unknown DefaultModel '{model}'{close_matches(model, FRAME_MODELS)}",
                            key="DefaultModel")
    data_type = section.get("DefaultDataType", "Float32").strip()
    if data_type not in DATA_TYPES:
        raise section.error(f"unknown DefaultDataType '{data_type}'; expected one of "
                            f"{', '.join(DATA_TYPES)}", key="DefaultDataType")
    if data_type != "Float32":
        notices.append(f"Notice: DefaultDataType={data_type}: n2d2py computes in Float32")
    if section.get("InsertBatchNormAfterConv", "0").strip() not in ("0", ""):
        raise section.error("InsertBatchNormAfterConv=1 is not supported by n2d2py; write the "
                            "BatchNorm sections in the INI", key="InsertBatchNormAfterConv")
    check_global_keys(document)  # any other non-$ key is fatal, as in N2D2
    return model


def choose_device(device, model, notices):
    if device is None:
        if model.endswith("_CUDA"):
            if backend.cupy_available:
                return "gpu"
            notices.append(f"Notice: DefaultModel={model} but no usable GPU (CuPy): running on the CPU")
        return "cpu"
    if device in ("gpu", "cuda"):
        if not backend.cupy_available:
            raise IniError("--device gpu needs CuPy and a CUDA GPU, and none is usable here")
        return "gpu"
    if device != "cpu":
        raise IniError(f"unknown device '{device}': expected cpu or gpu")
    return "cpu"


def stimuli_section(document):
    """``[cenv]`` (spiking), else ``[env]``, else ``[sp]`` (spec/ini.md §2.1 step 3)."""
    if "cenv" in document:
        raise document.section("cenv").error("[cenv] (spiking stimuli) is out of scope for n2d2py")
    for name in ("env", "sp"):
        if name in document:
            return document.section(name)
    raise IniError("Missing [sp] section.", file=document.path)


#: ``_EpochSize`` written by a build that reads no data: 2**16 keeps schedules written in epochs
#: (``$([sp]_EpochSize * 90 / 256)``) positive whole numbers for any power-of-two batch size.
NOMINAL_EPOCH_SIZE = 65536


def build_stimuli(document, load_data, rng):
    """Database + StimuliProvider (``_EpochSize`` is written into the sp section by data/).

    ``load_data=False`` (``--build-only``) reads no file: the database keys are read but nothing
    is loaded (an unavailable database type only gives a notice), ``_EpochSize`` is nominal, and
    when the StimuliProvider cannot be built without data (``sp.StimuliData*`` statistics) the
    input shape comes from the [sp] size keys. Returns (database, sp or None, (C, H, W))."""
    section = stimuli_section(document)
    check_spiking_stimuli(document, section)
    from .data import DATABASES, Database, StimuliProvider
    from .data.database import database_from_section
    for sub in document.matching("database.*"):
        raise sub.error("database sub-sections (sortAndDropLabels, filterROIs, slicing) are not "
                        "supported by n2d2py")
    if "database" not in document:
        document.warn("Warning: no database specified.", document.global_section)
        database = Database(rng=rng)
    elif load_data or document.section("database").get("Type", "").strip() in DATABASES:
        database = database_from_section(document.section("database"), rng, load=load_data)
    else:
        db = document.section("database")
        db.mark_all_read()
        document.warn(f"Notice: database type '{db.get('Type').strip()}' is not available; "
                      f"building without data", db, "Type")
        database = Database(rng=rng)
    if load_data:
        sp = StimuliProvider.from_ini(document, database, rng)
        return database, sp, tuple(int(d) for d in sp.size)
    try:
        sp = StimuliProvider.from_ini(document, database, rng)
        shape = tuple(int(d) for d in sp.size)
    except IniError as exc:
        if "no stimulus" not in exc.message:
            raise
        sp, shape = None, input_shape_from_keys(document, section)
        document.warn(f"Notice: {exc.message}: input size taken from the [{section.name}] keys",
                      section)
    section.set("_EpochSize", NOMINAL_EPOCH_SIZE)
    return database, sp, shape


def input_shape_from_keys(document, section):
    """(C, H, W) from the sp size keys; each ``ChannelTransformation`` without ``Channel=``
    starts a new input channel (spec/ini.md §3.2), as data/sp_ini.py counts them."""
    from .data.sp_ini import KINDS, read_size
    c, h, w = read_size(section)
    new = 0
    for sub in document.matching(section.name + ".*"):
        tail = sub.name[len(section.name) + 1:]
        kind = next((k for prefix, k, _ in KINDS if tail.startswith(prefix)), None)
        new += kind == "channel" and "Channel" not in sub
    return (new or c, h, w)


def check_spiking_stimuli(document, section):
    """``StimulusType`` in the sp config section means spike coding (out of scope, §7)."""
    name = section.raw("ConfigSection").strip() if "ConfigSection" in section else None
    if name and name in document and "StimulusType" in document.section(name):
        config = document.section(name)
        raise config.error(f"spiking stimuli (StimulusType={config.raw('StimulusType').strip()}) "
                           f"are out of scope for n2d2py", key="StimulusType")


# -- order -----------------------------------------------------------------------------------
def input_names(section):
    """Parents of a cell section: ``Input`` split on ',' (blanks trimmed), sp/cenv -> env."""
    names = [n.strip() for n in section.get("Input").split(",")]
    return ["env" if n in ("sp", "cenv", "env") else n for n in names if n]


def cell_order(document):
    """Cell sections in N2D2 build order (spec/ini.md §2.2): level = 1 + max level of the
    parents that are sections with ``Input`` (env is 0), found by repeated passes in file
    order; then sorted by (level, file order). Returns ([(section, parents)], {name: level}).

    Unlike N2D2 (which silently never builds them), a parent naming no cell and a cycle are
    IniErrors naming the section and the parent."""
    sections = [s for s in document if s.name and "Input" in s]
    cells = {s.name: s for s in sections}
    has_onnx = any(s.get("Type", "").strip() == "ONNX" for s in sections)
    parents = {}
    for section in sections:
        parents[section.name] = input_names(section)
        if not parents[section.name]:
            raise section.error("Input is empty", key="Input")
        for parent in parents[section.name]:
            if parent != "env" and parent not in cells and not has_onnx:
                hint = (" (that section has no Input key, so it is not a cell)" if parent in document
                        else close_matches(parent, [c for c in cells if c != section.name] + ["sp"]))
                raise section.error(f"unknown parent '{parent}'{hint}", key="Input")
    levels = {"env": 0}
    changed = True
    while changed:
        changed = False
        for section in sections:
            if section.name in levels:
                continue
            counted = [p for p in parents[section.name] if p == "env" or p in cells]
            if all(p in levels for p in counted):
                levels[section.name] = 1 + max((levels[p] for p in counted), default=0)
                changed = True
    for section in sections:
        if section.name not in levels:
            cycle = _find_cycle(section.name, parents, levels, cells)
            raise section.error(f"cannot order [{section.name}]: parent '{cycle[1]}' never "
                                f"resolves (cycle {' -> '.join(cycle)})", key="Input")
    position = {s.name: i for i, s in enumerate(sections)}
    order = sorted(sections, key=lambda s: (levels[s.name], position[s.name]))
    del levels["env"]
    return [(s, parents[s.name]) for s in order], levels


def _find_cycle(start, parents, levels, cells):
    path, seen = [start], {start: 0}
    node = start
    while True:
        node = next(p for p in parents[node] if p in cells and p not in levels)
        if node in seen:
            return path[seen[node]:] + [node]
        seen[node] = len(path)
        path.append(node)


# -- build -----------------------------------------------------------------------------------
def build_cells(document, order, input_shape, rng):
    """Build each cell in order (each writes its ``_*`` keys, spec/ini.md §2.5), attach targets."""
    from .cells import CELLS
    from .onnx.deepnet import resolve_onnx_parents, splice_onnx_section
    cells, targets, onnx_sections = {}, [], {}
    for section, parents in order:
        type_name = section.get("Type").strip()
        if type_name == "ONNX":  # spec/ini.md §5.1: the graph's cells, named after node outputs
            onnx_sections[section.name] = splice_onnx_section(document, section, parents, cells,
                                                              targets, input_shape, rng)
            continue
        parents = resolve_onnx_parents(section, parents, onnx_sections)  # spec/ini.md §2.2
        if type_name in OUT_OF_SCOPE_CELLS:
            raise section.error(f"cell type '{type_name}' ({OUT_OF_SCOPE_CELLS[type_name]}) is out "
                                f"of scope for n2d2py", key="Type")
        cls = CELLS.get(type_name, section)
        for parent in parents:
            if parent != "env" and parent not in cells:
                raise section.error(f"parent '{parent}' is not a cell built so far"
                                    f"{close_matches(parent, cells)}", key="Input")
        in_shapes = [tuple(input_shape) if p == "env" else tuple(cells[p].out_shape) for p in parents]
        cell = cls.from_section(section, parents)
        try:
            cell.build(in_shapes, rng)
        except MemoryError:  # an absurd NbOutputs or size: name the cell, not NumPy
            raise section.error(f"not enough memory to build this {type_name} cell from inputs "
                                f"{in_shapes}: check NbOutputs and the kernel/pool sizes") from None
        cells[section.name] = cell  # build() wrote the _* keys (spec/ini.md §2.5)
        for target_section in document:
            if target_section.name.startswith(section.name + ".Target"):
                target = target_from_section(target_section, section.name)
                target.loss_kind = getattr(cell, "loss_kind", None) or \
                    ("softmax" if getattr(cell, "with_loss", False) else None)
                targets.append(target)
    return cells, targets


def _consumers(cells):
    """How many cells read each output (``env`` included), to free activations early."""
    count = {"env": 0, **{name: 0 for name in cells}}
    for cell in cells.values():
        for parent in set(cell.parents):
            count[parent] = count.get(parent, 0) + 1
    return count
