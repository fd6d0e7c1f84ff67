"""The fused graph as a PNG (N2D2 draws the network after ``fuseQATGraph``, spec/qat.md §5.1 step 4).

One box per fused node, placed by depth (top to bottom), arrows from each parent; the label gives
the node, its N2D2 Type, the output shape, the code range R and the rescaling mode.
"""
import os

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["draw_fused"]


def _label(node):
    shape = "x".join(str(d) for d in node.out_shape)
    rescaling = getattr(node, "rescaling", None)
    mode = "" if rescaling is None else \
        ("\nlogits" if rescaling.S is None else f"\n{rescaling.mode}, D={rescaling.D:g}")
    codes = f", R={node.R}" if node.R else ""
    return f"{node.name} [{node.type_name}]\n{shape}{codes}{mode}"


def draw_fused(fused, path):
    """Write ``path`` (PNG); returns it."""
    depth = {"env": 0}
    for name, node in fused.nodes.items():
        depth[name] = 1 + max(depth[p] for p in node.parents)
    rows = {}
    for name in depth:
        rows.setdefault(depth[name], []).append(name)
    position = {name: (i - (len(names) - 1) / 2, -level)
                for level, names in rows.items() for i, name in enumerate(names)}
    width = max(len(v) for v in rows.values())
    fig = Figure(figsize=(2 + 2.6 * width, 1 + 1.0 * len(rows)), dpi=100)
    FigureCanvasAgg(fig)   # an off-screen canvas: no pyplot global state, never a window
    ax = fig.add_subplot(1, 1, 1)
    for name, node in fused.nodes.items():
        for parent in node.parents:
            ax.annotate("", xy=position[name], xytext=position[parent],
                        arrowprops=dict(arrowstyle="->", color="0.4", shrinkA=12, shrinkB=12))
    for name, (x, y) in position.items():
        label = (f"env\n{'x'.join(str(d) for d in fused.input_shape)}, R=255"
                 if name == "env" else _label(fused.nodes[name]))
        ax.text(x, y, label, ha="center", va="center", fontsize=7,
                bbox=dict(boxstyle="round", facecolor="#eaf5e8", edgecolor="#4a8a4a"))
    xs = [p[0] for p in position.values()]
    ax.set_xlim(min(xs) - 1, max(xs) + 1)
    ax.set_ylim(-len(rows), 1)
    ax.axis("off")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
