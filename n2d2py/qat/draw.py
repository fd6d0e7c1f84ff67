"""The fused graph as a PNG (N2D2 draws the network after ``fuseQATGraph``).

One box per fused node, placed by depth (top to bottom), arrows from each parent; the label gives
the node, its N2D2 Type, the output shape, the code range R and the rescaling mode.
"""
import os

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
    from ..report.plots import graph_levels, layered_graph_png
    parents = {name: node.parents for name, node in fused.nodes.items()}
    depth = graph_levels(parents)
    labels = {"env": f"env\n{'x'.join(str(d) for d in fused.input_shape)}, R={fused.input.R}"}
    labels.update({name: _label(node) for name, node in fused.nodes.items()})
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    layered_graph_png(path, depth, parents, labels, ("#eaf5e8", "#4a8a4a"),
                      title="Fused integer network (boxes: name [Type], output size, range R, "
                            "rescaling)")
    return path
