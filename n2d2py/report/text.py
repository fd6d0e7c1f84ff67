"""N2D2's console text: build summary, learning/validation/test lines, and the
``ConfusionMatrix_*.dat`` file. Numbers use the C++ default stream format."""
import math

from ..target import fmt

__all__ = ["fmt", "bar", "metric_lines", "final_lines", "confusion_text", "write_confusion",
           "network_summary", "quantization_lines"]


def bar(fraction, width=30):
    """``=====>    `` progress bar of ``width`` characters."""
    filled = int(round(max(0.0, min(1.0, fraction)) * width))
    if filled >= width:
        return "=" * width
    return "=" * filled + ">" + " " * (width - filled - 1)


def metric_lines(target):
    """N2D2's confusion-table metrics, each averaged over the classes that have samples, on
    two lines."""
    m = {name: 100 * target.metric(name) for name in
         ("Sensitivity", "Specificity", "Precision", "Accuracy", "F1Score", "Informedness")}
    return (f"    Per class, averaged: Sensitivity {fmt(m['Sensitivity'])}% / Specificity "
            f"{fmt(m['Specificity'])}% / Precision {fmt(m['Precision'])}%\n"
            f"    Accuracy {fmt(m['Accuracy'])}% / F1-score {fmt(m['F1Score'])}% / "
            f"Informedness {fmt(m['Informedness'])}%")


def final_lines(target):
    """The headline ``Final recognition rate``: the percentage of images whose highest output
    is their label (N2D2 averages per-batch rates instead, the same number when every batch is
    full); then the per-class metrics, top-N when asked, and the confusion matrix."""
    correct = int(target.confusion.trace()) if target.confusion is not None else 0
    total = int(target.confusion.sum()) if target.confusion is not None else 0
    rate = 100 * target.accuracy
    lines = [f"Final recognition rate: {fmt(rate)}%    ({correct}/{total} images; error rate: "
             f"{fmt(100 - rate)}%)", metric_lines(target)]
    if target.top_n > 1:
        lines.append(f"    Top-{target.top_n} recognition rate: {fmt(100 * target.recognition_rate_top_n)}%")
    if target.confusion is not None:
        lines.append(confusion_text(target.confusion))
    return "\n".join(lines)


MAX_PRINTED_CLASSES = 40


def confusion_text(confusion, names=None):
    """Confusion matrix as a table: rows are targets, columns estimated classes."""
    n = len(confusion)
    if n > MAX_PRINTED_CLASSES:
        return (f"Confusion matrix: {n} x {n} (rows: target), too large to print: see "
                f"ConfusionMatrix_*.dat in the target's folder")
    names = [str(i) for i in range(n)] if names is None else [str(x) for x in names]
    width = max(4, max(len(str(int(confusion.max()))) if confusion.size else 1, max(map(len, names))) + 1)
    header = " " * (width + 1) + "".join(f"{name:>{width}}" for name in names) + "  (estimated)"
    rows = [f"{names[i]:>{width}} " + "".join(f"{int(v):>{width}}" for v in confusion[i])
            for i in range(n)]
    return "\n".join(["Confusion matrix (rows: target):", header] + rows)


def write_confusion(path, confusion):
    """``target estimated # %`` header, then one line per pair (count, fraction of the row)."""
    with open(path, "w") as f:
        f.write("target estimated # %\n")
        for i, row in enumerate(confusion):
            total = row.sum()
            for j, count in enumerate(row):
                share = count / total if total else 0.0
                f.write(f"{i} {j} {int(count)} {fmt(share)}\n")


def _dims(shape):
    """(C, H, W) -> N2D2's innermost-first ``W H C``."""
    c, h, w = shape
    return f"{w} {h} {c}"


def nb_synapses(cell):
    """Learnable weights of a cell (N2D2's shared synapses): its ``cost().weights`` (connected
    kernels), else its Parameters of group "weights" (an imported PRelu's slopes)."""
    return cell.cost().weights or \
        sum(int(p.size) for p in cell.parameters() if getattr(p, "group", "") == "weights")


def with_options(obj, name=None):
    """``SAT, 4 bits (Range=15, ApplyScaling=1)``: the type, the bits of a quantizer, and the
    keys that differ from their defaults."""
    text = name or getattr(obj, "type_name", None) or type(obj).__name__
    bits = obj.bits() if hasattr(obj, "bits") else None
    if bits:
        text += f", {bits} bits"
    changed = [f"{key.ini}={int(value) if isinstance(value, bool) else fmt(value) if isinstance(value, float) else value}"
               for key in type(obj).keys().values()
               if (value := obj.__dict__.get(key.attr, key.default)) != key.default]
    return text + (f" ({', '.join(changed)})" if changed else "")


def quantization_lines(cell):
    """What a cell ended with, after its section and any override: ``# Activation:`` (and its
    ``QAct``), ``# QWeight:`` when it has one."""
    act = "none" if cell.activation is None else with_options(cell.activation)
    if cell.qact is not None:
        act += f"; QAct: {with_options(cell.qact)}"
    lines = [f"  # Activation: {act}"]
    if cell.qweight is not None:
        lines.append(f"  # QWeight: {with_options(cell.qweight)}")
    return lines


def network_summary(net):
    """N2D2's build log (``Layer: name [Type(Model)]`` ...) and totals, as one string."""
    lines, totals = [], {"neurons": 0, "synapses": 0, "virtual": 0}
    for name, cell in net.cells.items():
        type_name = getattr(type(cell), "type_name", type(cell).__name__)
        model = (net.document.section(name).get("Model", net.model).strip()
                 if name in net.document else net.model)   # ONNX-imported cells have no section
        lines.append(f"Layer: {name} [{type_name}({model})]")
        synapses = nb_synapses(cell)
        out_positions = cell.out_shape[1] * cell.out_shape[2]
        if cell.n2d2_shared_synapses:
            lines.append(f"  # Shared synapses: {synapses}")
            lines.append(f"  # Virtual synapses: {synapses * out_positions}")
            totals["virtual"] += synapses * out_positions
        elif synapses:
            lines.append(f"  # Synapses: {synapses}")
            totals["virtual"] += synapses
        totals["synapses"] += synapses
        totals["neurons"] += int(math.prod(cell.out_shape))
        for shape in cell.in_shapes:
            lines.append(f"  # Inputs dims: {_dims(shape)}")
        lines.append(f"  # Outputs dims: {_dims(cell.out_shape)}")
        lines.extend(quantization_lines(cell))
    for target in net.targets:
        lines.append(target.summary())
    lines.append(f"Total number of neurons: {totals['neurons']}")
    lines.append(f"Total number of synapses: {totals['synapses']}")
    lines.append(f"Total number of virtual synapses: {totals['virtual']}")
    return "\n".join(lines)
