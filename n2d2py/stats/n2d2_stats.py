"""N2D2's ``stats/`` files: stats.log, stats.dat, stats_relative.dat.

N2D2 sums five counters over every cell (its ``Cell::Stats``); each cell says which apply to it
(``n2d2_neurons``, ``n2d2_nodes``, ``count_n2d2(counter)`` calling the ``Counter`` rule below):

* neurons: output size (C·H·W) of Conv, Deconv, Fc, Dropout and Softmax cells;
* nodes: output size of every cell except Reshape, Scaling, Transpose, Normalize, TargetBias;
* synapses (free parameters): Conv/Deconv connected kernels x kernel size, Fc outputs x inputs,
  **biases included** (one per output when ``NoBias=0``);
* virtual synapses = connections for Conv/Deconv/Fc: the multiply-adds that touch real input,
  i.e. kernel taps that fall on **padding are not counted** (unlike cost.py, which counts
  them as every paper does), plus one per output channel for the bias; Pool adds its window
  sizes (clipped at the input's far edge) to the connections.

``stats.log`` prints the input, the free parameters and the layers' data (nodes) in kB (10^3)
and KiB at 1, 2 and 4 bytes per value (int-8, float-16, float-32), and the connections as
"MACS / input data" in millions. Numbers use the C++ default stream format (6 significant
digits). Counts are independent of the bits chosen for the cost report.
"""
import os
from dataclasses import dataclass, fields

import numpy

def fmt(value):
    """C++ ``ostream << double`` default format."""
    return f"{value:.6g}"


@dataclass
class CellStats:
    neurons: int = 0
    nodes: int = 0
    synapses: int = 0
    virtual_synapses: int = 0
    connections: int = 0

    def __iadd__(self, other):
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self


# -- per-axis counts (N2D2's dims are X first; a separable sum over positions) ----------------
def conv_taps(size_in, kernel, stride, padding, dilation):
    """Σ over output positions of the kernel taps that land inside the input, along one axis."""
    extent = dilation * (kernel - 1) + 1
    size_out = (size_in + 2 * padding - extent + stride) // stride
    return _taps_inside(size_out, size_in, kernel, stride, padding, dilation)


def deconv_taps(size_in, size_out, kernel, stride, padding, dilation):
    """Σ over input positions of the kernel taps that land inside the output, along one axis."""
    return _taps_inside(size_in, size_out, kernel, stride, padding, dilation)


def _taps_inside(positions, size, kernel, stride, padding, dilation):
    """Σ over ``positions`` kernel placements (``i * stride - padding``) of the taps inside
    ``[0, size)``."""
    extent = dilation * (kernel - 1) + 1
    total = 0
    for i in range(positions):
        s_min = max(padding - i * stride, 0)
        s_max = min(max(size + padding - i * stride, 0), extent)
        total += (s_max - s_min - 1) // dilation + 1
    return total


def pool_window_sum(size_in, size_out, kernel, stride):
    """Σ over output positions of the pooling window clipped at the input's far edge (no
    padding term; a window starting past the input counts whole, as N2D2's unsigned
    arithmetic does)."""
    total = 0
    for o in range(size_out):
        left = size_in - o * stride
        total += kernel if left < 0 else min(left, kernel)
    return total


def connected_pairs(cell):
    """Connected (output, input channel) pairs of a Conv/Deconv (per parent maps)."""
    pairs = 0
    for mask, shape in zip(cell.masks, cell.in_shapes):
        pairs += int(mask.sum()) if mask is not None else cell.nb_outputs * shape[0]
    return pairs


# -- per cell ---------------------------------------------------------------------------------
class Counter:
    """The counting rules; a cell's ``count_n2d2`` picks one."""

    @staticmethod
    def outputs(cell):
        """Neurons and nodes only (``n2d2_neurons``, ``n2d2_nodes``)."""
        out_size = int(numpy.prod(cell.out_shape))
        return CellStats(neurons=out_size if cell.n2d2_neurons else 0,
                         nodes=out_size if cell.n2d2_nodes else 0)

    @staticmethod
    def bias(cell):
        return 0 if getattr(cell, "no_bias", True) else cell.nb_outputs

    def conv(self, cell):
        """Conv/Deconv: connected kernels x kernel size (+ biases); taps on real input."""
        s, bias = self.outputs(cell), self.bias(cell)
        kx, ky = cell.kernel_dims
        pairs = connected_pairs(cell)
        s.synapses = pairs * kx * ky + bias
        s.virtual_synapses = s.connections = pairs * _positions(cell) + bias
        return s

    def fc(self, cell):
        s, bias = self.outputs(cell), self.bias(cell)
        inputs = sum(int(numpy.prod(shape)) for shape in cell.in_shapes)
        s.synapses = s.virtual_synapses = s.connections = cell.nb_outputs * (inputs + (bias > 0))
        return s

    def pool(self, cell):
        """Window sizes (clipped at the input's far edge) as connections."""
        s = self.outputs(cell)
        pairs = cell.nb_outputs if cell.mask is None else int(cell.mask.sum())
        (c, h, w), (_, oh, ow) = cell.in_shapes[0], cell.out_shape
        (kx, ky), (sx, sy) = cell.pool_dims, cell.stride_dims
        s.connections = pairs * pool_window_sum(w, ow, kx, sx) * pool_window_sum(h, oh, ky, sy)
        return s


def cell_stats(cell):
    """The five counters of one built cell."""
    return cell.count_n2d2(Counter())


def _positions(cell):
    """Kernel taps on real input summed over positions, for one (output, channel) pair
    (a transposed convolution, ``macs_per_weight`` over its input, scatters instead)."""
    _, h, w = cell.in_shapes[0]
    (kx, ky), (sx, sy) = cell.kernel_dims, cell.stride_dims
    (px, py), (dx, dy) = cell.padding_dims, cell.dilation_dims
    if cell.transposed:
        _, oh, ow = cell.out_shape
        return deconv_taps(w, ow, kx, sx, px, dx) * deconv_taps(h, oh, ky, sy, py, dy)
    return conv_taps(w, kx, sx, px, dx) * conv_taps(h, ky, sy, py, dy)


def n2d2_stats(cells):
    """``(total CellStats, {name: CellStats})`` over the cells in build order (a DeepNet, a dict
    or a list of built cells)."""
    from .cost import cells_of
    cells, _ = cells_of(cells)
    per_cell = {name: cell_stats(cell) for name, cell in cells.items()}
    total = CellStats()
    for s in per_cell.values():
        total += s
    return total, per_cell


# -- files ------------------------------------------------------------------------------------
def _memory_line(label, count):
    return "\n".join(f"{label} ({kind}): {fmt(n * count / 1000.0)} kB   "
                     f"({fmt(n * count / 1024.0)} KiB)"
                     for kind, n in (("int-8 bits", 1), ("float-16 bits", 2),
                                     ("float-32 bits", 4)))


def stats_log_text(total, input_shape):
    """The text of N2D2's ``stats/stats.log``."""
    input_data = int(numpy.prod(input_shape))
    return ("[Global stats]\n"
            f"Total number of neurons: {total.neurons}\n"
            f"Total number of nodes: {total.nodes}\n"
            f"Total number of synapses: {total.synapses}\n"
            f"Total number of virtual synapses: {total.virtual_synapses}\n"
            f"Total number of connections: {total.connections}\n\n"
            "[Memory]\n"
            f"{_memory_line('Input data', input_data)}\n"
            f"{_memory_line('Free parameters', total.synapses)}\n"
            f"{_memory_line('Layers data', total.nodes)}\n\n"
            "[Computing]\n"
            f"MACS / input data: {fmt(total.connections / 1.0e6)}M\n")


def _percent(part, whole):
    """N2D2 divides in single precision, then prints fixed with 2 decimals."""
    with numpy.errstate(divide="ignore", invalid="ignore"):
        ratio = float(numpy.float32(part) / numpy.float32(whole)) * 100.0
    return f"{ratio:.2f}"


def stats_dat_text(per_cell):
    lines = ["Cell ParamMemory Computing DataMemory"]
    lines += [f"{name} {s.synapses} {s.connections} {s.nodes}" for name, s in per_cell.items()]
    return "\n".join(lines) + "\n"


def stats_relative_text(total, per_cell):
    lines = ["Cell ParamMemory(%) Computing(%) DataMemory(%)"]
    lines += [f"{name} {_percent(s.synapses, total.synapses)} "
              f"{_percent(s.connections, total.connections)} {_percent(s.nodes, total.nodes)}"
              for name, s in per_cell.items()]
    return "\n".join(lines) + "\n"


def write_n2d2_stats(deepnet, folder="stats"):
    """Write ``stats.log``, ``stats.dat`` and ``stats_relative.dat`` into ``folder`` (N2D2 writes
    them before learning; N2D2's plots of the same figures are not drawn)."""
    total, per_cell = n2d2_stats(deepnet)
    os.makedirs(folder, exist_ok=True)
    texts = {"stats.log": stats_log_text(total, deepnet.input_shape),
             "stats.dat": stats_dat_text(per_cell),
             "stats_relative.dat": stats_relative_text(total, per_cell)}
    from ..folders import replace_file_atomically   # a full disk names the file
    for name, text in texts.items():
        replace_file_atomically(os.path.join(folder, name), lambda f, text=text: f.write(text))
    return total


__all__ = ["n2d2_stats", "cell_stats", "CellStats", "stats_log_text", "stats_dat_text",
           "stats_relative_text", "write_n2d2_stats", "conv_taps", "deconv_taps",
           "pool_window_sum"]
