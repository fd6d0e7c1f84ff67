"""Rendering of a ``CostTable`` (cost.py) as aligned text, CSV and Markdown.

Every form carries the same columns and the conventions (a report states
its rule for the first and last layers and lists per-layer bits, MACs, size and BitOps).
"""
import csv
import io

COLUMNS = ("layer", "type", "output (C,H,W)", "weights", "MACs", "w bits", "a bits",
           "size (bytes)", "BitOps")


def _bytes(value, thousands=""):
    """Whole bytes print as integers; a fractional size (odd count x 3 bits) keeps 1 decimal."""
    return f"{value:{thousands}.0f}" if float(value).is_integer() else f"{value:{thousands}.1f}"


def row_cells(row, thousands=True):
    n = (lambda v: f"{v:,}") if thousands else str
    shape = "x".join(str(d) for d in row.out_shape)
    if not row.weighted:
        return (row.name, row.type, shape, "", "", "", "", "", "")
    return (row.name, row.type, shape, n(row.weights), n(row.macs), str(row.w_bits),
            str(row.a_bits), _bytes(row.size_bytes), n(row.bitops))


def total_lines(table):
    """The totals, one ``label: value`` per line."""
    return [
        f"Parameters (Conv/Deconv/Fc weights): {table.parameters:,}"
        f"   (+ {table.other_parameters:,} biases/BatchNorm values, not counted)",
        f"MACs: {table.macs:,}",
        f"Model size: {table.size_mb:.4f} MB ({_bytes(table.size_bytes, ',')} bytes, "
        f"{table.size_kib:.2f} KiB)",
        f"BitOps: {table.gbitops:.4f} GBitOps ({table.bitops:,})",
        f"Activation memory: max {table.activation_max_bytes:,.0f} bytes, "
        f"sum {table.activation_sum_bytes:,.0f} bytes",
    ]


def format_text(table, weighted_only=False):
    """Aligned text table with the conventions above and the totals below."""
    rows = table.weighted_rows() if weighted_only else table.rows
    body = [COLUMNS] + [row_cells(r) for r in rows]
    widths = [max(len(line[i]) for line in body) for i in range(len(COLUMNS))]
    right = {3, 4, 5, 6, 7, 8}

    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    out = list(table.conventions) + ["", line(body[0]), line(["-" * w for w in widths])]
    out += [line(cells) for cells in body[1:]]
    return "\n".join(out + [""] + total_lines(table)) + "\n"


def format_markdown(table, weighted_only=False):
    rows = table.weighted_rows() if weighted_only else table.rows
    out = ["# Model size and BitOps", ""] + [f"* {c}" for c in table.conventions] + [""]
    out.append("| " + " | ".join(COLUMNS) + " |")
    out.append("|" + "|".join(["---"] * 3 + ["---:"] * 6) + "|")
    out += ["| " + " | ".join(row_cells(r)) + " |" for r in rows]
    out += [""] + [f"* {t}" for t in total_lines(table)]
    return "\n".join(out) + "\n"


def format_csv(table):
    """One line per cell (plain numbers), then ``TOTAL``. Plain CSV: the conventions are in the
    text and Markdown forms."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["layer", "type", "C", "H", "W", "weights", "MACs", "w_bits", "a_bits",
                     "size_bytes", "BitOps", "out_bits"])
    for r in table.rows:
        c, h, w = (tuple(r.out_shape) + (1, 1, 1))[:3]
        writer.writerow([r.name, r.type, c, h, w, r.weights, r.macs,
                         "" if r.w_bits is None else r.w_bits,
                         "" if r.a_bits is None else r.a_bits,
                         _bytes(r.size_bytes), r.bitops, r.out_bits])
    writer.writerow(["TOTAL", "", "", "", "", table.parameters, table.macs, "", "",
                     _bytes(table.size_bytes), table.bitops, ""])
    return buffer.getvalue()


__all__ = ["format_text", "format_markdown", "format_csv", "total_lines", "COLUMNS"]
