"""``n2d2.cells``: the containers of N2D2's Python API (``Sequence``, ``Layer``, ``Block``) and
``DeepNetCell`` (a network loaded from ONNX or INI), beside the neural-network cells of
``nn.py`` (``n2d2.cells.nn``).

A container only calls its cells in order; a ``DeepNetCell`` runs the cells our INI/ONNX
builder made (``build.build_cells_from``, the ``Type=ONNX`` section builder), so the same file
gives the same cells either way, and its cells are shown by the views of ``nn.py``.
"""
import os

from ..autograd import no_grad
from .cell import Cell
from .errors import WrongInputType, WrongValue, check_type
from .globals import global_variables


class Block(Cell):
    """Cells kept by name; ``__call__`` is the subclass's."""

    def __init__(self, cells, name=None):
        if not isinstance(cells, list):
            raise WrongInputType(f"{type(self).__name__}: cells must be a list of cells")
        for cell in cells:
            check_type(type(self).__name__, "cells", cell, Cell, "a list of n2d2 cells")
        Cell.__init__(self, name)
        self._cells = {}
        for cell in cells:
            if cell.get_name() in self._cells:
                raise WrongValue(f"{self._describe()}: two cells are named '{cell.get_name()}'")
            self._cells[cell.get_name()] = cell

    def __getitem__(self, item):
        if isinstance(item, str):
            return self.get_cell(item)
        if isinstance(item, int):
            return list(self._cells.values())[item]
        raise WrongInputType(f"{self._describe()}: index by cell name or position, got "
                             f"{type(item).__name__}")

    def __iter__(self):
        return iter(list(self._cells.values()))

    def __len__(self):
        return len(self._cells)

    def get_cells(self):
        """Every cell inside, nested containers included, by name."""
        found = {}
        for cell in self._cells.values():
            found[cell.get_name()] = cell
            if isinstance(cell, Block):
                found.update(cell.get_cells())
        return found

    def get_cell(self, name):
        cells = self.get_cells()
        if name not in cells:
            from ..errors import close_matches
            raise WrongValue(f"{self._describe()}: no cell named '{name}'"
                             f"{close_matches(name, cells)}")
        return cells[name]

    def items(self):
        return self._cells.items()

    def test(self):
        for cell in self._cells.values():
            cell.test()
        return self

    def learn(self):
        for cell in self._cells.values():
            cell.learn()
        return self

    def set_solver(self, solver):
        """A copy of ``solver`` for every learnable value inside (weights, biases, scales and
        the quantizers' learnable values)."""
        for cell in self.get_cells().values():
            if hasattr(cell, "set_solver") and not isinstance(cell, Block):
                cell.set_solver(solver)

    def set_back_propagate(self, value):
        for cell in self.get_cells().values():
            if "back_propagate" in getattr(type(cell), "_keys", lambda: {})():
                cell.back_propagate = value

    def import_free_parameters(self, dir_name, ignore_not_exists=False):
        for cell in self._cells.values():
            cell.import_free_parameters(dir_name, ignore_not_exists=ignore_not_exists)

    def export_free_parameters(self, dir_name, verbose=True):
        for cell in self._cells.values():
            cell.export_free_parameters(dir_name, verbose=verbose)

    def to_deepnet_cell(self, provider, target=None):
        """The ``DeepNetCell`` of these cells (run once, in test mode, on a zero batch of
        ``provider``'s size to connect them)."""
        from .tensor import Tensor
        from .deepnet import DeepNet
        batch = Tensor(provider.shape())
        batch._deepnet = DeepNet(provider=provider)
        batch._deepnet._input = batch.N2D2()
        batch.cell = provider
        modes = {name: getattr(c, "_inference", None) for name, c in self.get_cells().items()}
        self.test()
        try:
            output = self(batch)
        finally:
            for name, cell in self.get_cells().items():
                if modes[name] is False:
                    cell.learn()
        if target is not None:
            target(output)
        net = output.get_deepnet()
        return DeepNetCell(net.N2D2(provider), provider)

    def __str__(self):
        return self._text(1)

    def _text(self, indent):
        lines = [f"'{self._name}' {self.get_type()}("]
        for index, cell in enumerate(self):
            body = cell._text(indent + 1) if isinstance(cell, Block) else str(cell)
            lines.append("\t" * indent + f"({index}): {body}")
        lines.append("\t" * (indent - 1) + ")")
        return "\n".join(lines)


class Iterable(Block):
    """An ordered Block (list-like)."""

    def __init__(self, cells, name=None):
        Block.__init__(self, cells, name)
        self._seq = list(cells)

    def __getitem__(self, item):
        return self._seq[item] if isinstance(item, int) else Block.__getitem__(self, item)

    def __iter__(self):
        return iter(list(self._seq))

    def __len__(self):
        return len(self._seq)

    def insert(self, index, cell):
        check_type(self._describe(), "cell", cell, Cell, "an n2d2 cell")
        self._seq.insert(index, cell)
        self._cells[cell.get_name()] = cell

    def append(self, cell):
        check_type(self._describe(), "cell", cell, Cell, "an n2d2 cell")
        self._seq.append(cell)
        self._cells[cell.get_name()] = cell

    def remove(self, cell):
        self._seq.remove(cell)
        del self._cells[cell.get_name()]

    def index(self, item):
        return self._seq.index(item)


class Sequence(Iterable):
    """Its cells one after the other."""

    def __call__(self, x):
        self._inputs(x)
        for cell in self._seq:
            x = cell(x)
        return x


class Layer(Iterable):
    """Its cells side by side on the same input(s); ``mapping[i][j]`` (optional) says whether
    input tensor i goes to cell j. Returns an ``Interface`` of their outputs."""

    def __init__(self, cells, mapping=None, name=None):
        Iterable.__init__(self, cells, name)
        self._mapping = mapping

    def __call__(self, x):
        from .tensor import Interface
        tensors = self._inputs(x)
        outputs = []
        for j, cell in enumerate(self._seq):
            chosen = [t for i, t in enumerate(tensors) if self._mapping is None or self._mapping[i][j]]
            if not chosen:
                raise WrongValue(f"{self._describe()}: mapping gives cell {j} no input")
            out = cell(chosen[0] if len(chosen) == 1 else Interface(chosen))
            outputs.extend(out.get_tensors())
        return Interface(outputs)


class DeepNetCell(Block):
    """A network our INI/ONNX builder made, used as one cell: ``load_from_ONNX(provider,
    path)``, ``load_from_INI(path)``; its cells are iterated and addressed by name
    (``model["resnetv15_conv0_fwd"]``) as the views of ``n2d2.cells.nn``."""

    def __init__(self, net, provider=None, name=None):
        from .deepnet import DeepNet
        from .nn import view_of
        self._net = net            # our deepnet.DeepNet
        self._embedded = DeepNet(provider=provider, input_shape=net.input_shape, core=net,
                                 views={n: view_of(c) for n, c in net.cells.items()})
        Block.__init__(self, list(self._embedded.get_cells().values()), name)
        self._inference = False

    @classmethod
    def load_from_ONNX(cls, provider, model_path, ini_file=None, ignore_cells=None,
                       ignore_input_size=False):
        """The ONNX model at ``model_path`` on ``provider``'s stimuli; ``ini_file``: an INI of
        override sections (``[onnx:Conv_def]``, ``[<node>]``) as a ``Type=ONNX`` section reads;
        ``ignore_cells``: node outputs to skip; ``ignore_input_size``: the provider's size wins."""
        from ..ini import load_ini, parse_ini_text
        from .provider import DataProvider
        check_type("DeepNetCell.load_from_ONNX", "provider", provider, DataProvider,
                   "an n2d2.provider.DataProvider")
        check_type("DeepNetCell.load_from_ONNX", "model_path", model_path, (str, os.PathLike),
                   "a path")
        keys = {"Input": "sp", "Type": "ONNX", "File": os.path.abspath(os.fspath(model_path)),
                "CNTK": "1"}   # N2D2's Python API fuses MatMul + Add (CNTK exports) too
        if ignore_cells:
            keys["Ignore"] = " ".join(ignore_cells)
        if ignore_input_size:
            keys["IgnoreInputSize"] = "1"
        if ini_file is not None:
            document = load_ini(os.fspath(ini_file))
            if "onnx" not in document:
                with open(os.fspath(ini_file)) as handle:
                    text = handle.read()
                document = parse_ini_text(text + "\n[onnx]\n", os.fspath(ini_file))
            section = document.section("onnx")
            for key, value in keys.items():
                section.set(key, value)
        else:
            text = "[onnx]\n" + "".join(f"{k}={v}\n" for k, v in keys.items())
            document = parse_ini_text(text, os.fspath(model_path) + ".ini")
        return cls(_build(document, provider), provider)

    @classmethod
    def load_from_INI(cls, path):
        """The network of an INI file (with its [database] and [sp]), as ``n2d2py NET.ini``
        builds it with ``global_variables.seed``."""
        from ..deepnet import DeepNet as Network
        return cls(Network.from_ini(os.fspath(path), device="cpu", seed=global_variables.seed))

    # -- running --------------------------------------------------------------------------------
    def __call__(self, x):
        from .tensor import Tensor
        from .provider import Provider
        if not isinstance(x, Tensor) or not isinstance(x.cell, Provider):
            raise WrongValue(f"{self._describe()}: the input must be a provider's batch "
                             f"(provider.read_batch(), read_random_batch())")
        deepnet, net = x.get_deepnet(), self._net
        shape = tuple(x.N2D2().shape[1:])
        if shape != tuple(net.input_shape):
            raise WrongValue(f"{self._describe()}: input of size {shape} (C, H, W), the network "
                             f"was built for {tuple(net.input_shape)}")
        views = self._embedded.get_cells()
        values = {"env": x.N2D2()}
        for name, cell in net.cells.items():
            inputs = [values[p] for p in cell.parents]
            if self._inference:
                with no_grad():
                    values[name] = cell.forward(inputs, training=False)
            else:
                values[name] = cell.forward(inputs, training=True)
            deepnet._add(views[name], cell.parents)
        outputs = [Tensor._wrap(values[v.get_name()], cell=v, deepnet=deepnet)
                   for v in self._embedded.get_output_cells()]
        return outputs[0] if len(outputs) == 1 else outputs

    def fit(self, learn_epoch, log_epoch=1, avg_window=10000, bench=False, ban_multi_device=False,
            valid_metric="Sensitivity", stop_valid=0, log_kernels=False):
        """Train ``learn_epoch`` epochs with the ``n2d2py`` command's loop (validation every
        ``log_epoch`` epochs on ``valid_metric``, best weights in ``weights_validation/``,
        early stop after ``stop_valid`` worse validations); returns its history."""
        from ..target import METRICS
        if valid_metric not in METRICS + ("RecognitionRate",):
            raise WrongValue(f"{self._describe()}: valid_metric={valid_metric!r}: expected one of "
                             f"{', '.join(METRICS)}")
        return self._scored_net().learn(epochs=learn_epoch, log_epoch=log_epoch,
                                        valid_metric=valid_metric, stop_valid=stop_valid,
                                        rng=global_variables.data_rng())

    def run_test(self, log=1000, report=100, nb_test=-1, test_index=-1, test_id=-1,
                 qat_sat=False, log_kernels=False, wt_round_mode="NONE", b_round_mode="NONE",
                 c_round_mode="NONE", act_scaling_mode="FLOAT_MULT", log_JSON=False,
                 log_outputs=0):
        """Score the Test set as ``n2d2py --test`` does (N2D2's final lines printed); with
        ``qat_sat``, the network fused by ``fuse_qat``. Returns the result (recognition rate
        in percent)."""
        import sys
        limit = None if nb_test < 0 else nb_test
        net = self._scored_net()
        if not qat_sat:
            return net.test(limit=limit, out=sys.stdout)
        from .quantizer import fuse_qat
        fused = fuse_qat(self._embedded, self._embedded.get_provider(), act_scaling_mode,
                         wt_round_mode, b_round_mode, c_round_mode)
        return fused.test(limit=limit, out=sys.stdout)

    def _scored_net(self):
        """Our network with a provider and a target (a TargetScore on its last cell when it has
        none, as N2D2 adds one)."""
        from ..build import target_loss_kind
        from ..target import TargetScore
        net = self._embedded.N2D2()
        if net.sp is None:
            raise WrongValue(f"{self._describe()}: no provider (set_provider(provider) first)")
        if not net.targets:
            last = list(net.cells.values())[-1]
            target = TargetScore(name=f"{last.name}.Target", cell=last.name)
            target.loss_kind = target_loss_kind(last)
            net.targets.append(target)
        return net

    def test(self):
        self._inference = True
        Block.test(self)
        return self

    def learn(self):
        self._inference = False
        Block.learn(self)
        return self

    # -- the network --------------------------------------------------------------------------------
    def get_embedded_deepnet(self):
        return self._embedded

    def get_deepnet(self):
        return self._embedded

    def get_input_cells(self):
        return self._embedded.get_input_cells()

    def get_output_cells(self):
        return self._embedded.get_output_cells()

    def set_provider(self, provider):
        self._embedded.set_provider(provider)

    def import_free_parameters(self, dir_name, ignore_not_exists=False):
        print(f"Importing DeepNetCell '{self._name}' parameters from {dir_name}")
        self._embedded.import_network_free_parameters(dir_name, ignore_not_exists)

    def export_free_parameters(self, dir_name, verbose=True):
        if verbose:
            print(f"Exporting DeepNetCell '{self._name}' parameters to {dir_name}")
        self._embedded.export_network_free_parameters(dir_name)

    def log_stats(self, path):
        self._embedded.log_stats(path)

    def summary(self):
        print(self._net.summary())


def _build(document, provider):
    """Our DeepNet of ``document``'s cells on ``provider`` (its stimuli shape and data)."""
    from ..build import build_cells_from
    from ..deepnet import DeepNet as Network
    shape = tuple(provider.N2D2().size)
    cells, targets, levels = build_cells_from(document, shape, global_variables.build_rng())
    model = global_variables.default_model
    for cell in cells.values():
        cell.model = model
    return Network(document, cells, targets, provider.N2D2(), provider.get_database().N2D2(),
                   shape, "cpu", model, levels)


__all__ = ["Cell", "Block", "Iterable", "Sequence", "Layer", "DeepNetCell"]
