"""What calibration leaves in the run folder (``calib_int<B>/``): the per-layer table
(``layers.dat``; ``layers.md``, the same as a Markdown table), the statistics
(``outputs_range.bin``, ``outputs_histogram.bin``, ``calibration.json``: ``-calib-reload``
reads them back), ``outputs_range.dat`` (N2D2's text summary: cell, min, max, mean, standard
deviation) and one picture per observed cell, ``histograms/<k>_<cell>.png``: the output histogram
(log counts) with the chosen threshold and the largest value marked.

Table columns: the node, its statistics cell and observed range, the clipping mode and
threshold T, the code sign and step (T/Q), the weight scale (max|W|, per layer or the channels'
extremes), the rescale factor f (step_in·w/S/step_out; an ElemWise's per-input ratios), how the
mode applies it, the largest relative error of the applied factor, and Single-shift's weight
compensation p (the weights lose log2 p bits).
"""
import os
import re

__all__ = ["table_rows", "format_table", "format_markdown", "write_folder", "histogram_png"]

DISPLAY_BINS = 200
COLUMNS = ("layer", "statistics", "range", "clipping", "threshold", "codes", "step",
           "weight scale", "rescale f", "applied as", "error %", "shift p")


def _g(v, digits=5):
    return "-" if v is None else f"{v + 0.0:.{digits}g}"   # + 0.0: no "-0"


def _pair(v, digits=5):
    if v is None:
        return "-"
    lo, hi = v
    return _g(lo, digits) if lo == hi else f"{_g(lo, digits)}..{_g(hi, digits)}"


def table_rows(fused):
    """The table as lists of strings (one per node with a rescale), in execution order."""
    out = []
    for name in fused.nodes:
        row = fused.rows.get(name)
        if row is None:
            continue
        rng = row.get("range")
        T = row.get("T")
        dead = " (dead: T=1)" if row.get("dead") else ""
        out.append([name, row.get("stat") or "-",
                    "-" if rng is None else f"[{_g(rng[0])}, {_g(rng[1])}]",
                    row.get("mode", "-"), _g(T) + dead,
                    f"{'s' if row['sign'] == 'signed' else 'u'}{fused.options.bits}",
                    _g(row["step"]), _pair(row.get("w")), _pair(row["f"]), row["rescale"],
                    f"{100.0 * row['error']:.3g}", _g(row.get("p"), 4)])
    return out


def format_table(fused):
    rows = [list(COLUMNS)] + table_rows(fused)
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
                     for r in rows) + "\n"


def format_markdown(fused):
    rows = table_rows(fused)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _file_stem(index, name):
    """A safe, unique picture name for a cell (cell names may hold '/' or anything else)."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")[:80] or "cell"
    return f"{index:03d}_{clean}"


def histogram_png(path, name, hist, stats, T, mode, bits):
    """The histogram of ``name``'s outputs with the threshold ``T`` marked."""
    import numpy
    from ..report.plots import _figure
    fig = _figure(6, 3.6)
    ax = fig.add_subplot(1, 1, 1)
    counts = hist.counts.astype(numpy.float64)
    live = numpy.flatnonzero(counts)
    if live.size:   # shown on at most DISPLAY_BINS bars: the calibration bins summed
        first, last = int(live[0]), int(live[-1]) + 1
        group = -(-(last - first) // DISPLAY_BINS)
        shown = counts[first:last]
        shown = numpy.pad(shown, (0, (-len(shown)) % group)).reshape(-1, group).sum(axis=1)
        edges = hist.lo + (first + numpy.arange(len(shown) + 1) * group) * hist.width
        ax.stairs(numpy.maximum(shown, 0.5), edges, fill=True, linewidth=0,
                  color="#4a6fa5", baseline=0.5)
        ax.set_yscale("log")
    if T is not None:
        ax.axvline(T, color="#c0392b", linewidth=1.5, label=f"threshold {T:.4g} ({mode})")
        if hist.lo < 0:
            ax.axvline(-T, color="#c0392b", linewidth=1.5)
    ax.axvline(stats.max, color="#555555", linestyle=":", linewidth=1,
               label=f"max {stats.max:.4g}")
    ax.set_xlabel("output value")
    ax.set_ylabel("count")
    ax.set_title(f"{name}: {stats.count:.0f} values, {bits}-bit codes", fontsize=9)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    fig.savefig(path)
    return path


def write_folder(fused, folder, pictures=True):
    """Write the calibration folder atomically; returns it."""
    from ..folders import write_folder_atomically
    stats = fused.stats

    def write(tmp):
        info = dict(fused.fingerprint)
        if getattr(fused, "equalization", None) is not None:
            info["equalization"] = fused.equalization.as_dict()
        stats.save(tmp, info)
        with open(os.path.join(tmp, "layers.dat"), "w") as f:
            f.write(format_table(fused))
        with open(os.path.join(tmp, "layers.md"), "w") as f:
            f.write(format_markdown(fused))
        with open(os.path.join(tmp, "outputs_range.dat"), "w") as f:
            for name, r in stats.ranges.items():
                f.write(f"{name} {r.min:.6g} {r.max:.6g} {r.mean:.6g} {r.std:.6g}\n")
        if not pictures:
            return
        os.makedirs(os.path.join(tmp, "histograms"))
        thresholds = {}
        for row in fused.rows.values():
            if row.get("stat"):
                thresholds[row["stat"]] = (row["T"], row["mode"])
        for k, (name, hist) in enumerate(stats.histograms.items()):
            T, mode = thresholds.get(name, (None, None))
            histogram_png(os.path.join(tmp, "histograms", _file_stem(k, name) + ".png"), name,
                          hist, stats.ranges[name], T, mode, fused.options.bits)
    write_folder_atomically(folder, write)
    return folder
