"""PNG figures a run writes, as N2D2's: confusion matrix, learning curves and the
network graph (N2D2 draws it with graphviz; we lay it out by build level with matplotlib).
Each ``*_png`` function saves the figure its ``*_figure`` twin returns (tests read those).

Figures are drawn on an Agg canvas directly, so importing this module never changes the
process-wide matplotlib backend."""
import os

import numpy


def _figure(width, height):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


MAX_INCHES = 16
MAX_TICKS = 60


def _literal(text):
    """``text`` drawn as written: names and labels come from user files, and matplotlib reads
    ``$...$`` as maths (an unbalanced ``$`` is an error)."""
    return str(text).replace("$", r"\$")


def confusion_matrix_png(confusion, path, title="", names=None):
    """Row-normalised confusion matrix (rows: target) with the counts written in each cell."""
    m = numpy.asarray(confusion, dtype=numpy.float64)
    n = len(m)
    share = m / numpy.maximum(m.sum(axis=1, keepdims=True), 1)
    side = min(1.5 + 0.5 * n, MAX_INCHES)     # 1000 ImageNet classes: a picture, not a poster
    fig = _figure(side, side - 0.3)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    labels = [_literal(x) for x in (names if names is not None else ())][:n]
    labels += [str(i) for i in range(len(labels), n)]    # more outputs than database labels
    if n <= MAX_TICKS:
        ax.set_xticks(range(n), labels, rotation=90 if n > 10 else 0)
        ax.set_yticks(range(n), labels)
    ax.set_xlabel("estimated")
    ax.set_ylabel("target")
    ax.set_title(_literal(title))
    if n <= 30:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.5 else "black")
    fig.tight_layout()
    fig.savefig(path)


def learning_curves_png(history, path, title="Learning curves"):
    learning_curves_figure(history, title).savefig(path)


def learning_curves_figure(history, title="Learning curves"):
    """Per epoch (or log point of ``--learn N``): training and validation scores above, the
    training loss below, the best validation score marked. Returns the matplotlib Figure."""
    log = history.log
    by_epoch = bool(log) and all(entry["label"].startswith("epoch ") for entry in log)
    x = [int(e["label"].split()[1].split("/")[0]) if by_epoch else e["step"] for e in log]
    nan = float("nan")
    fig = _figure(7, 6)
    scores, losses = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    metric = "recognition rate" if history.metric == "RecognitionRate" else history.metric
    scores.plot(x, [nan if e["training"] is None else e["training"] for e in log], marker=".",
                label="training (images learnt in the epoch)")
    validation = [nan if e["validation"] is None else e["validation"] for e in log]
    if any(v == v for v in validation):
        scores.plot(x, validation, marker="o", label="validation")
        best = [(xi, v) for xi, v, e in zip(x, validation, log) if e["best"]]
        if best:
            bx, bv = best[-1]
            scores.plot([bx], [bv], marker="*", markersize=16, linestyle="none", color="C3",
                        label=f"best: {bv:.2f}% ({'epoch ' if by_epoch else ''}{bx})")
    scores.set_title(_literal(title))
    scores.set_ylabel(f"{metric} (%)")
    scores.grid(True, alpha=0.3)
    scores.legend(loc="lower right")
    losses.plot(x, [nan if e["loss"] is None else e["loss"] for e in log], marker=".", color="C2",
                label="training loss (mean over the epoch)")
    losses.set_xlabel("epoch" if by_epoch else "images learnt")
    losses.set_ylabel("loss")
    losses.grid(True, alpha=0.3)
    losses.legend(loc="upper right")
    if by_epoch:
        losses.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    return fig


def network_graph_png(net, path, title=None):
    network_graph_figure(net, title).savefig(path)


def network_graph_figure(net, title=None):
    """Cells as boxes placed by build level (top to bottom), arrows from each parent; each box
    names the cell, its Type and output size (C x H x W). Returns the matplotlib Figure."""
    from .text import nb_synapses
    labels = {"env": f"env (input)\n{'x'.join(str(d) for d in net.input_shape)}"}
    for name, cell in net.cells.items():
        labels[name] = (f"{name} [{getattr(type(cell), 'type_name', '')}]\n"
                        f"{'x'.join(str(d) for d in cell.out_shape)}")
    parents = {name: cell.parents for name, cell in net.cells.items()}
    levels = graph_levels(parents)
    if title is None:
        path = getattr(net.document, "path", None)
        weights = sum(nb_synapses(cell) for cell in net.cells.values())
        title = (f"{os.path.basename(os.fspath(path)) + ': ' if path else ''}{len(net.cells)} cells, "
                 f"{weights} weights (boxes: name [Type], output C x H x W)")
    return layered_graph_figure(levels, parents, labels, ("#e8f0fe", "#4a6fa5"), title)


MAX_ROWS = 300   # a taller picture (30 000 pixels) is no use to anyone: the CLI notes it


def graph_levels(parents):
    """``{name: row}``: ``env`` (and any other input) row 0, each cell one row below its lowest
    parent. Computed from the cells themselves, so the cells an ONNX section creates (which
    have no INI level of their own) are placed like INI cells. ``parents`` in build order."""
    levels = {"env": 0}
    for name, sources in parents.items():
        levels[name] = 1 + max((levels.get(p, 0) for p in sources), default=0)
        for p in sources:
            levels.setdefault(p, 0)
    return levels


def layered_graph_png(path, levels, parents, labels, colors=("#e8f0fe", "#4a6fa5"), title=""):
    layered_graph_figure(levels, parents, labels, colors, title).savefig(path)


def layered_graph_figure(levels, parents, labels, colors=("#e8f0fe", "#4a6fa5"), title=""):
    """A graph drawn as boxes in rows by ``levels`` (name -> row, top to bottom), with an arrow
    from each of ``parents[name]``; ``labels`` in the boxes, ``colors`` = (face, edge)."""
    rows = {}
    for name in labels:
        rows.setdefault(levels[name], []).append(name)
    if len(rows) > MAX_ROWS:
        raise ValueError(f"{len(rows)} levels of cells, more than the {MAX_ROWS} a picture shows")
    position = {name: (i - (len(names) - 1) / 2, -level)
                for level, names in rows.items() for i, name in enumerate(names)}
    width = max(len(v) for v in rows.values())
    fig = _figure(max(6.0, 2 + 2.6 * width), 1.4 + 1.0 * len(rows))
    ax = fig.add_subplot(1, 1, 1)
    for name, sources in parents.items():
        for parent in sources:
            # an edge that skips rows (a residual shortcut) bends, so boxes in between don't hide it
            skips = abs(levels[name] - levels[parent]) > 1
            ax.annotate("", xy=position[name], xytext=position[parent],
                        arrowprops=dict(arrowstyle="->", color="0.4", shrinkA=13, shrinkB=13,
                                        connectionstyle=f"arc3,rad={0.5 if skips else 0}"))
    for name, (x, y) in position.items():
        ax.text(x, y, _literal(labels[name]), ha="center", va="center", fontsize=9,
                bbox=dict(boxstyle="round", facecolor=colors[0], edgecolor=colors[1]))
    xs = [p[0] for p in position.values()]
    ax.set_xlim(min(xs) - 1.5, max(xs) + 1.5)
    ax.set_ylim(-len(rows), 1)
    ax.axis("off")
    if title:
        ax.set_title(_literal(title), fontsize=10)
    fig.tight_layout()
    return fig
