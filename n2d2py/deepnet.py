"""DeepNet: the network an INI file describes, built as N2D2's ``generateFromINI`` does.

``DeepNet.from_ini`` reads the global keys, builds the StimuliProvider, orders and builds the
cells and their targets with ``build.py`` (docs/INI.md §5-§6); the DeepNet
then runs them: ``forward``, ``learn_batch`` (the one training step, with its NaN/Inf checks),
weights I/O. Cells come from ``cells.CELLS`` by ``Type``; the StimuliProvider
and Database from ``data/``; targets from ``target.py``. Learning and testing loops live in
``learn.py``.
"""
import math
import os
import time

import numpy

from . import backend
from .autograd import Variable
from .build import build_cells_from, build_stimuli, choose_device, read_global_keys, seed_quantizers
from .errors import IniError, NumericalFault
from .onnx import section as _onnx_section  # noqa: F401  (registers Type=ONNX sections)


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


class DeepNet:
    """Cells in N2D2 build order, their targets, the StimuliProvider and the Database.

    ``cells`` is an ordered ``{name: Cell}``; ``targets`` a list (the first is primary);
    ``sp`` the StimuliProvider (None with ``load_data=False`` when data/ cannot build one
    without its database); ``input_shape`` (C, H, W) of ``env``.
    """

    replicas = None      # a class default too: a DeepNet made without __init__ is one process

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
        self.check_finite = True         # learn_batch stops on a NaN/Inf loss or gradient
        self.replicas = None             # distributed.DataParallel: this is one replica of K

    @property
    def writer(self):
        """Whether this process writes the run's files (False on data-parallel ranks but 0)."""
        return self.replicas is None or self.replicas.comm.writer

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_ini(cls, source, device=None, seed=1, load_data=True, env=None, require_target=True):
        """Load ``source`` (path or IniDocument) and build everything, as N2D2's
        ``generateFromINI`` does.

        ``device``: "cpu", "gpu" or None (None: the INI's DefaultModel decides, a ``_CUDA``
        model runs on the GPU when CuPy is usable, else on the CPU with a notice).
        ``load_data=False`` builds the cells from the [sp] sizes without reading the database.
        ``require_target=False`` accepts a network without target (the caller adds one).
        """
        from .ini import load_ini
        from .ini.document import IniDocument
        document = source if isinstance(source, IniDocument) else load_ini(os.fspath(source), env=env)
        notices = []
        model = read_global_keys(document, notices)
        device = choose_device(device, model, notices)
        rng = numpy.random.default_rng(seed)
        database, sp, input_shape = build_stimuli(document, load_data, rng)
        cells, targets, levels = build_cells_from(document, input_shape, rng)
        seed_quantizers(cells, seed)
        if require_target and not targets:
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
        """The training step (learn.py, tools, tests and the Python API's steps all use these
        pieces): forward, ``training_loss``, ``back_propagate``, ``update``. Returns
        (loss value, outputs).

        With ``check_finite`` (default) a NaN/Inf loss (tested every step) or gradient (one
        reduction per Parameter) raises ``NumericalFault`` before any update: the parameters
        are left as they were.

        One replica of a data-parallel run (``self.replicas``) steps on its part of the global
        batch: its loss is scaled by its share, the gradients are summed over the replicas
        before the checks and the update, and the loss returned is the global batch's."""
        x = Variable(backend.to_device(x, self.device))
        replicas = self.replicas
        if replicas is None:
            outputs = self.forward(x, training=True)
            value = self.back_propagate(self.training_loss(outputs, labels, x))
            self.update(len(labels))
            return value, outputs
        with replicas.training_step(len(labels)) as part:
            outputs = self.forward(x, training=True)
            value = self.back_propagate(self.training_loss(outputs, labels, x), part)
        self.update(replicas.count)
        return value, outputs

    def training_loss(self, outputs, labels, x=None):
        """The loss a step minimises: the targets' losses + the quantizers' penalties
        (``constraints.constraint_loss``: size/BitOps targets, QR/WQR, DQA's regulariser;
        nothing when none applies)."""
        from .quantizers.constraints import constraint_loss
        loss = self.loss(outputs, labels, x)
        penalty = constraint_loss(self.cells)
        return loss if penalty is None else loss + penalty

    def back_propagate(self, loss, part=None):
        """Gradients of ``loss`` into every Parameter; returns the loss value. With
        ``check_finite``, a NaN/Inf loss or gradient raises ``NumericalFault`` (gradients
        cleared, nothing updated). ``part``: a data-parallel replica's part of the global batch
        (``distributed.shard.StepPart``): the loss is scaled by its share, and the gradients,
        the loss and the checks are the global batch's (``replicas.reduce``)."""
        value = float(backend.asnumpy(loss.data).sum())
        if part is None:
            if self.check_finite and not math.isfinite(value):
                raise NumericalFault("loss", "NaN" if math.isnan(value) else "Inf")
            loss.backward()
        else:
            loss.backward(loss.xp.full_like(loss.data, part.count / max(part.total, 1)))
            value = self.replicas.reduce(self.parameters(), value, part)
            if self.check_finite and not math.isfinite(value):
                for param in self.parameters():
                    param.grad = None
                raise NumericalFault("loss", "NaN" if math.isnan(value) else "Inf")
        if self.check_finite:
            params = self.parameters()
            fault = _gradient_fault(params, self.cells)
            if fault is not None:
                for param in params:
                    param.grad = None
                raise fault
        return value

    def update(self, batch_size):
        """Every solver's update (a Parameter without a solver drops its gradient), then the
        quantizers' ``on_step``; Ctrl-C never leaves half the parameters updated."""
        from .signals import deferred_signals
        with deferred_signals():
            for param in self.parameters():
                if param.solver is not None:
                    param.solver.update(param, batch_size)
                else:
                    param.grad = None
            for quantizer in self.quantizers():  # schedules (Prune's Gradual mode)
                quantizer.on_step(batch_size)

    def parameters(self):
        return [p for cell in self.cells.values() for p in cell.parameters()]

    def quantizers(self):
        """Every cell's quantizers, in build order (QWeight before QAct)."""
        return [q for cell in self.cells.values() for q in cell.quantizers()]

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
        from .scoring import test
        return test(self, set_name=set_name, limit=limit, **options)

    # -- weights -----------------------------------------------------------------------------
    def export_weights(self, folder, histograms=None, precision=None):
        """Write every cell's weights into ``folder`` atomically (temporary folder, fsync,
        rename): an interruption leaves the previous folder as it was.

        Cells with a weight quantizer also write their quantizer state and quantized weights
        (``<cell>_quant_weights*.syntxt``); with ``histograms`` (default ``self.weight_histograms``)
        N2D2's ``<cell>_weights_quant.distrib.{dat,png}`` are added (report/histograms.py).
        ``precision`` (significant digits) defaults to N2D2's 6 (10 with a quantizer); 9
        round-trips float32 exactly. In a data-parallel run only rank 0 writes."""
        from .folders import write_folder_atomically
        if not self.writer:      # a data-parallel replica but rank 0: rank 0 writes for all
            return
        if histograms is None:
            histograms = getattr(self, "weight_histograms", True)

        from .io.syntxt import distinct_files

        def write(tmp):
            with distinct_files():   # two cells never overwrite each other's files
                for cell in self.cells.values():
                    cell.export_weights(tmp, precision)
                if histograms:
                    from .report.histograms import write_quant_distributions
                    write_quant_distributions(self, tmp)
        write_folder_atomically(folder, write)

    def import_weights(self, folder, ignore_missing=False):
        """Read every cell's ``.syntxt`` weights; ``/dev/null`` imports nothing.

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
        self.weights_source = os.fspath(folder)   # named by errors about imported values
        return notices

    # -- description -------------------------------------------------------------------------
    def summary(self):
        """N2D2's build log: ``Layer: name [Type(Model)]`` and synapse counts, dims innermost
        first as N2D2 prints them, then targets and totals."""
        from .report.text import network_summary
        return network_summary(self)

    def warnings(self):
        out = list(self.notices)
        for cell in self.cells.values():
            out.extend(getattr(cell, "warnings", ()) or ())
        return out



def _consumers(cells):
    """How many cells read each output (``env`` included), to free activations early."""
    count = {"env": 0, **{name: 0 for name in cells}}
    for cell in cells.values():
        for parent in set(cell.parents):
            count[parent] = count.get(parent, 0) + 1
    return count
