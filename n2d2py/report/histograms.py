"""Weight-distribution files N2D2 writes with the weights (``exportNetworkFreeParameters``).

For every cell with a weight quantizer N2D2 calls ``logQuantFreeParametersDistrib`` with
``<cell>_weights_quant.distrib.dat``: the quantized weights, sorted, one per line, and a gnuplot
histogram of them saved as ``<cell>_weights_quant.distrib.png`` (the base name of the ``.dat``
plus ``.png``). The QAT documentation points users to these pictures to check the clamped weights
(stage 1 of SAT) and the quantized levels (stage 2). We draw the same histogram with matplotlib:
bins of width 0.0078 (< 1/128) centred on multiples of it, mean and standard deviation in a label,
the area outside [-1, 1] shaded, x range [min(-1, w_min) - 0.05, max(1, w_max) + 0.05].
"""
import numpy

from ..io.names import cell_file
from ..io.syntxt import open_for_writing

#: N2D2's gnuplot ``binwidth=0.0078``.
BIN_WIDTH = 0.0078


def distrib_paths(folder, cell_name, kind="weights_quant"):
    """``(<folder>/<cell>_<kind>.distrib.dat, <folder>/<cell>_<kind>.distrib.png)`` (the cell's
    name as a file name: ``io/names.py``)."""
    base = cell_file(folder, cell_name, f"_{kind}.distrib")
    return base + ".dat", base + ".png"


def write_distrib(folder, cell_name, values, kind="weights_quant", png=True):
    """Write the sorted ``values`` (``.dat``, 6 significant digits as C++ ``<<``) and, with
    ``png``, their histogram. Returns the paths written."""
    values = numpy.sort(numpy.asarray(values, dtype=numpy.float64).ravel())
    dat, image = distrib_paths(folder, cell_name, kind)
    with open_for_writing(dat) as handle:
        handle.write("".join("%.6g\n" % v for v in values.tolist()))
    if not png:
        return [dat]
    what = "quantized weights" if kind == "weights_quant" else kind.replace("_", " ")
    histogram_png(values, image, f"{cell_name}: {what}")
    return [dat, image]


def histogram_png(values, path, title="Weights"):
    histogram_figure(values, title).savefig(path)


def histogram_figure(values, title="Weights"):
    """N2D2's weight histogram (``FcCell::logFreeParametersDistrib`` gnuplot script), titled and
    with labelled axes. Returns the matplotlib Figure."""
    from .plots import _figure, _literal
    values = numpy.asarray(values, dtype=numpy.float64).ravel()
    lo = min(-1.0, float(values.min())) if values.size else -1.0
    hi = max(1.0, float(values.max())) if values.size else 1.0
    fig = _figure(6, 4)
    ax = fig.add_subplot(1, 1, 1)
    if values.size:
        # bin(x) = width*floor(x/width + 0.5): bins centred on multiples of the width; one
        # filled step artist (a bar per bin costs seconds in matplotlib)
        keys = numpy.floor(values / BIN_WIDTH + 0.5).astype(numpy.int64)
        counts = numpy.bincount(keys - keys.min())
        edges = (numpy.arange(keys.min(), keys.max() + 2) - 0.5) * BIN_WIDTH
        ax.stairs(counts, edges, fill=True, linewidth=0)
    ax.axvspan(lo - 0.05, -1.0, color="black", alpha=0.15, linewidth=0)
    ax.axvspan(1.0, hi + 0.05, color="black", alpha=0.15, linewidth=0)
    ax.set_xlim(lo - 0.05, hi + 0.05)
    ax.set_ylim(bottom=0)
    mean = values.mean() if values.size else 0.0
    std = values.std(ddof=1) if values.size > 1 else 0.0
    ax.text(0.62, 0.8, f"Average: {mean:.6g}\nStd. dev.: {std:.6g}", transform=ax.transAxes)
    ax.grid(True, alpha=0.3)
    ax.set_title(_literal(title))
    ax.set_xlabel(f"weight value (bins of {BIN_WIDTH}; shaded: outside [-1, 1])")
    ax.set_ylabel("number of weights")
    fig.tight_layout()
    return fig


def write_quant_distributions(net, folder, png=True):
    """``<cell>_weights_quant.distrib.{dat,png}`` for every cell of ``net`` with a weight
    quantizer, from the quantized weights of the current full-precision weights (all parents'
    tensors together, as N2D2 appends them). Returns the paths written."""
    from ..autograd import no_grad
    from ..backend import asnumpy
    written = []
    for name, cell in net.cells.items():
        qweight = getattr(cell, "qweight", None)
        if qweight is None or not getattr(cell, "weights", None):
            continue
        with no_grad():
            wq = qweight(list(cell.weights))
        values = numpy.concatenate([_connected(cell, k, asnumpy(w.data)) for k, w in enumerate(wq)])
        written += write_distrib(folder, name, values, png=png)
    return written


def _connected(cell, k, array):
    """The values of parent k's weights N2D2 keeps: a sparse Mapping's unconnected kernels
    (masked to 0 in the forward) are not weights of the cell."""
    masks = getattr(cell, "masks", None)
    groups = getattr(cell, "groups", None)
    if masks and masks[k] is not None and (groups is None or groups[k] == 1):
        layout = cell.layout(masks[k]) if hasattr(cell, "layout") else masks[k]
        return array[layout.astype(bool)].ravel()
    return array.ravel()


__all__ = ["BIN_WIDTH", "distrib_paths", "write_distrib", "histogram_png", "histogram_figure",
           "write_quant_distributions"]
