"""Model size, BitOps and N2D2's stats of a network (docs/METHODS.md says how size and
BitOps are counted).

    table = cost_table(deepnet, weight_bits=4, act_bits=4)       # cost.py
    print(format_text(table))                                    # table.py
    total, per_cell = n2d2_stats(deepnet)                        # n2d2_stats.py

Entry points for the command and the learning flow:

* ``report_main(ini_path, args)``: ``n2d2py NET.ini --report [--report-bits W/A]
  [--report-first-last RULE] [--report-override CELL=W/A] [--report-csv FILE]
  [--report-md FILE]``; builds the cells without reading data, prints the table and N2D2's
  stats.log figures. ``add_report_arguments(parser)`` declares those options.
* ``write_report(deepnet, folder)``: ``report.csv`` and ``report.md`` after training.
"""
import os
import sys

from ..errors import N2D2Error
from .cost import FIRST_LAST_RULES, CostTable, LayerCost, cost_table, range_bits
from .n2d2_stats import n2d2_stats, stats_log_text, write_n2d2_stats
from .table import format_csv, format_markdown, format_text

__all__ = ["cost_table", "CostTable", "LayerCost", "range_bits", "n2d2_stats", "stats_log_text",
           "write_n2d2_stats", "format_text", "format_csv", "format_markdown", "report_main",
           "write_report", "add_report_arguments", "parse_bits", "parse_overrides",
           "build_without_data"]


def parse_bits(text, option="--report-bits"):
    """``"W/A"`` (or ``"B"`` for B/B) -> (W, A) positive integers."""
    parts = str(text).strip().split("/")
    try:
        bits = tuple(int(p) for p in parts)
    except ValueError:
        bits = ()
    if len(bits) == 1:
        bits = bits * 2
    if len(bits) != 2 or min(bits) < 1 or max(bits) > 64:
        raise N2D2Error(f"expected W/A bits such as 4/4 or 8/32, got '{text}'", key=option)
    return bits


def parse_overrides(items):
    """``["conv1=8/8", "fc=8/32"]`` -> ``{"conv1": (8, 8), "fc": (8, 32)}``."""
    overrides = {}
    for item in items or ():
        name, sep, bits = str(item).partition("=")
        if not sep or not name.strip():
            raise N2D2Error(f"expected CELL=W/A, got '{item}'", key="--report-override")
        overrides[name.strip()] = parse_bits(bits, "--report-override")
    return overrides


def add_report_arguments(parser):
    """The report's options, in their own group of the ``n2d2py`` parser."""
    group = parser.add_argument_group("model size and BitOps report")
    group.add_argument("--report", action="store_true",
                       help="print per-layer weights, MACs, bits, size and BitOps, and N2D2's "
                            "stats; read no data, train nothing")
    group.add_argument("--report-bits", metavar="W/A",
                       help="count every weighted layer at W-bit weights and A-bit activations "
                            "(default: the QWeight/QAct Range of each cell, else 32/32)")
    group.add_argument("--report-first-last", default="as-configured", choices=FIRST_LAST_RULES,
                       help="bits of the first and last weighted layers (default as-configured)")
    group.add_argument("--report-override", action="append", metavar="CELL=W/A",
                       help="bits of one layer (mixed precision); repeat for several")
    group.add_argument("--report-csv", metavar="FILE", help="also write the table as CSV")
    group.add_argument("--report-md", metavar="FILE", help="also write the table as Markdown")


def build_without_data(ini_path):
    """The DeepNet built from the [sp] sizes, reading no database (``--build-only``'s path)."""
    from ..deepnet import DeepNet
    return DeepNet.from_ini(ini_path, device="cpu", load_data=False)


def table_from_args(net, args):
    bits = parse_bits(args.report_bits) if getattr(args, "report_bits", None) else (None, None)
    return cost_table(net, weight_bits=bits[0], act_bits=bits[1],
                      first_last=getattr(args, "report_first_last", None) or "as-configured",
                      overrides=parse_overrides(getattr(args, "report_override", None)))


def _write(path, text):
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    from ..folders import replace_file_atomically   # a full disk names the file
    replace_file_atomically(path, lambda f: f.write(text))


def report_main(ini_path, args, out=None):
    """``n2d2py NET.ini --report``: print the cost table and N2D2's stats.log figures; write
    CSV/Markdown when asked. ``args`` is the parsed Namespace (``add_report_arguments``) or a
    list of option strings. Returns the exit status (0)."""
    out = out or sys.stdout
    if args is None or isinstance(args, (list, tuple)):
        import argparse
        parser = argparse.ArgumentParser(prog="n2d2py --report")
        add_report_arguments(parser)
        args = parser.parse_args(list(args or []))
    net = build_without_data(ini_path)
    table = table_from_args(net, args)
    shape = "x".join(str(d) for d in net.input_shape)
    out.write(f"Model size and BitOps of {ini_path} (input {shape})\n")
    out.write(format_text(table))
    total, _ = n2d2_stats(net)
    out.write("\nN2D2 stats/stats.log (padding taps not counted, biases counted):\n")
    out.write(stats_log_text(total, net.input_shape))
    if getattr(args, "report_csv", None):
        _write(args.report_csv, format_csv(table))
    if getattr(args, "report_md", None):
        _write(args.report_md, format_markdown(table))
    out.flush()
    return 0


def write_report(deepnet, folder, **options):
    """Write ``report.csv`` and ``report.md`` into ``folder`` (after training: the quantizers'
    Range gives the bits). ``options`` go to ``cost_table``. Returns the CostTable."""
    table = cost_table(deepnet, **options)
    _write(os.path.join(folder, "report.csv"), format_csv(table))
    _write(os.path.join(folder, "report.md"), format_markdown(table))
    return table
