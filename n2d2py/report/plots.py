"""PNG figures a run writes (spec/ini.md §6.3): confusion matrix, learning curves and the
network graph (N2D2 draws it with graphviz; we lay it out by build level with matplotlib).

Figures are drawn on an Agg canvas directly, so importing this module never changes the
process-wide matplotlib backend."""
import numpy


def _figure(width, height):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def confusion_matrix_png(confusion, path, title="", names=None):
    """Row-normalised confusion matrix (rows: target) with the counts written in each cell."""
    m = numpy.asarray(confusion, dtype=numpy.float64)
    n = len(m)
    share = m / numpy.maximum(m.sum(axis=1, keepdims=True), 1)
    fig = _figure(1.5 + 0.5 * n, 1.2 + 0.5 * n)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    labels = [str(x) for x in (names if names is not None else range(n))]
    ax.set_xticks(range(n), labels, rotation=90 if n > 10 else 0)
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("estimated")
    ax.set_ylabel("target")
    ax.set_title(title)
    if n <= 30:
        for i in range(n):
            for j in range(n):
                ax.text(j, i, int(m[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.5 else "black")
    fig.tight_layout()
    fig.savefig(path)


def learning_curves_png(history, path):
    """Learning success (running window) and validation score against stimuli seen."""
    fig = _figure(6, 4)
    ax = fig.add_subplot(1, 1, 1)
    if history.learning:
        steps, values = zip(*history.learning)
        ax.plot(steps, [100 * v for v in values], marker=".", label="learning (running success)")
    if history.validation:
        steps, values = zip(*history.validation)
        ax.plot(steps, [100 * v for v in values], marker="o", label=f"validation ({history.metric})")
    ax.set_xlabel("stimuli")
    ax.set_ylabel("%")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)


def network_graph_png(net, path):
    """Cells as boxes placed by build level (top to bottom), arrows from each parent."""
    labels = {"env": f"env\n{'x'.join(str(d) for d in net.input_shape)}"}
    for name, cell in net.cells.items():
        labels[name] = (f"{name} [{getattr(type(cell), 'type_name', '')}]\n"
                        f"{'x'.join(str(d) for d in cell.out_shape)}")
    levels = {"env": 0, **net.levels}
    parents = {name: cell.parents for name, cell in net.cells.items()}
    layered_graph_png(path, levels, parents, labels, ("#e8f0fe", "#4a6fa5"))


def layered_graph_png(path, levels, parents, labels, colors=("#e8f0fe", "#4a6fa5")):
    """A graph drawn as boxes in rows by ``levels`` (name -> row, top to bottom), with an arrow
    from each of ``parents[name]``; ``labels`` in the boxes, ``colors`` = (face, edge)."""
    rows = {}
    for name in labels:
        rows.setdefault(levels[name], []).append(name)
    position = {name: (i - (len(names) - 1) / 2, -level)
                for level, names in rows.items() for i, name in enumerate(names)}
    width = max(len(v) for v in rows.values())
    fig = _figure(2 + 2.4 * width, 1 + 0.9 * len(rows))
    ax = fig.add_subplot(1, 1, 1)
    for name, sources in parents.items():
        for parent in sources:
            # an edge that skips rows (a residual shortcut) bends, so boxes in between don't hide it
            skips = abs(levels[name] - levels[parent]) > 1
            ax.annotate("", xy=position[name], xytext=position[parent],
                        arrowprops=dict(arrowstyle="->", color="0.4", shrinkA=11, shrinkB=11,
                                        connectionstyle=f"arc3,rad={0.5 if skips else 0}"))
    for name, (x, y) in position.items():
        ax.text(x, y, labels[name], ha="center", va="center", fontsize=7,
                bbox=dict(boxstyle="round", facecolor=colors[0], edgecolor=colors[1]))
    xs = [p[0] for p in position.values()]
    ax.set_xlim(min(xs) - 1.5, max(xs) + 1.5)
    ax.set_ylim(-len(rows), 1)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path)
