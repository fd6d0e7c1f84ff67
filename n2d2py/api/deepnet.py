"""``n2d2.deepnet.DeepNet``: the network one batch went through.

A provider's ``read_batch``/``read_random_batch`` starts a new ``DeepNet``; every cell a tensor
of that batch goes through adds itself (with its parents), and a target records the loss. The
training step then runs on our ``deepnet.DeepNet`` over the same cells (``N2D2()``):
``back_propagate`` and ``update`` are its ``back_propagate`` and ``update``, the pieces of
``learn_batch``. Exports, statistics and drawings are those of the ``n2d2py`` command.
"""
import os

from .errors import WrongValue
from .globals import generate_name, global_variables


def levels_of(cells):
    """{name: depth} of cells in call order, their parents before them (env: 0)."""
    levels = {}
    for name, cell in cells.items():
        levels[name] = 1 + max((levels.get(p, 0) for p in cell.parents), default=0)
    return levels


class DeepNet:
    """N2D2's Python ``DeepNet`` (see the module docstring)."""

    def __init__(self, provider=None, input_shape=None, core=None, views=None):
        self._provider = provider
        self._input_shape = tuple(input_shape) if input_shape is not None else \
            (tuple(provider.N2D2().size) if provider is not None else None)
        self._cells = dict(views or {})      # name -> cell view, in call order
        self._target = None
        self._loss, self._batch_size, self._input = None, 0, None
        self._fused = None
        self._core = core                      # a fixed network (DeepNetCell); else built below
        self._built = None
        self._name = generate_name(self)

    # -- building -------------------------------------------------------------------------------
    def _add(self, view, parents):
        """``view`` ran on this batch with ``parents`` (names; ``env`` for the stimuli)."""
        cell = view.N2D2()
        other = self._cells.get(cell.name)
        if other is view and list(parents) == cell.parents:     # the same pass run again
            return
        if other is not None:
            raise WrongValue(f"cell '{cell.name}' ran twice on one batch: " +
                             ("a cell is one layer of one network (here on other inputs)"
                              if other is view else "two cells have this name"))
        cell.parents = list(parents)
        self._cells[cell.name] = view
        self._built = None

    def N2D2(self, provider=None):
        """Our ``deepnet.DeepNet`` over these cells (``provider``: the one its stimuli and the
        fused network's test come from, default this batch's)."""
        from ..deepnet import DeepNet as Network
        provider = provider or self._provider
        if self._core is not None:
            net = self._core
        else:
            if self._built is None:
                cells = {name: view.N2D2() for name, view in self._cells.items()}
                targets = [] if self._target is None else [self._target.N2D2()]
                self._built = Network(None, cells, targets, None, None, self._input_shape, "cpu",
                                      global_variables.default_model, levels_of(cells))
            net = self._built
        if provider is not None:
            net.sp, net.database = provider.N2D2(), provider.get_database().N2D2()
        return net

    # -- the training step ------------------------------------------------------------------------
    def back_propagate(self):
        if self._loss is None:
            raise WrongValue("back_propagate(): no loss on this batch (call a target, "
                             "n2d2.target.Score, on the network's output first)")
        loss, self._loss = self._loss, None
        self.N2D2().back_propagate(loss)

    def update(self):
        self.N2D2().update(self._batch_size)

    # -- cells -------------------------------------------------------------------------------------
    def get_cells(self):
        return dict(self._cells)

    def get_input_cells(self):
        return [v for v in self._cells.values() if "env" in v.N2D2().parents]

    def get_output_cells(self):
        used = {p for v in self._cells.values() for p in v.N2D2().parents}
        return [v for name, v in self._cells.items() if name not in used]

    def get_provider(self):
        return self._provider

    def set_provider(self, provider):
        self._provider = provider

    def get_name(self):
        return self._name

    # -- files -------------------------------------------------------------------------------------
    def export_network_free_parameters(self, dirname):
        """The weights in N2D2's format (``<cell>_weights.syntxt`` ...) and their distribution
        plots (``<cell>_weights_quant.distrib.png``)."""
        self.N2D2().export_weights(os.fspath(dirname))

    def import_network_free_parameters(self, dirname, ignore_not_exists=False):
        for line in self.N2D2().import_weights(os.fspath(dirname), ignore_not_exists):
            print(line)

    def log_stats(self, dirname):
        """N2D2's ``stats.log``, ``stats.dat`` and ``stats_relative.dat`` in ``dirname``, and
        the ``--report`` table (size and BitOps per layer at the quantizers' bits):
        ``report.csv``, ``report.md``."""
        from ..stats import write_report
        from ..stats.n2d2_stats import write_n2d2_stats
        net = self.N2D2()
        write_n2d2_stats(net, os.fspath(dirname))
        write_report(net, os.fspath(dirname))

    def draw_graph(self, filename):
        """The graph as ``<filename>.png``: the fused integer network after ``fuse_qat``."""
        path = os.fspath(filename) + ".png"
        if self._fused is not None:
            from ..qat.draw import draw_fused
            draw_fused(self._fused, path)
        else:
            from ..report.plots import network_graph_png
            network_graph_png(self.N2D2(), path)

    draw = draw_graph

    def export_onnx(self, path, qdq=None):
        """An ONNX model of the network (an n2d2py extension; ``qdq``: quantizers as QDQ nodes,
        default when any cell has one)."""
        from ..onnx.export import export_onnx
        return export_onnx(self.N2D2(), os.fspath(path), qdq)

    def __str__(self):
        return f"DeepNet '{self._name}' ({len(self._cells)} cells: {', '.join(self._cells)})"


__all__ = ["DeepNet"]
