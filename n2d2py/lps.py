"""Layer-wise Precision Scaling (Wess et al., IEEE TCAD 2018, Algorithm 1;
docs/QUANTIZERS.md).

Start from a trained float network M and its accuracy acc_M; give every weighted layer the same
bit-width; then, step by step, try lowering each layer by one bit, measure the direct-quantized
accuracy acc_Mq (DFP or Po2 levels, dfp.py), Δacc = acc_M − acc_Mq and the weight memory

    W_mem = Σ_n card(W_n)·b_n                                                (eq. 7)

and lower the layer with the smallest Δacc·W_mem, while that Δacc stays below ε (percentage
points). A negative Δacc (quantization helped) counts as 0, so ties go to the smallest W_mem.

    n2d2py NET.ini --lps --lps-epsilon 0.5 -w weights      (lps_main, wired by cli.py)

prints each step and writes the chosen bits as an INI snippet (``[conv1]`` / ``QWeight=DFP`` /
``QWeight.Range=2^b-1``) for the QR/WQR fine-tuning run.
"""
import os
import sys

from .errors import IniError

__all__ = ["weight_memory", "precision_scaling", "ini_snippet", "lps_main"]


def weight_memory(counts, bits):
    """W_mem = Σ_n card(W_n)·b_n in bits (eq. 7)."""
    return sum(counts[n] * bits[n] for n in counts)


def precision_scaling(counts, evaluate, baseline, epsilon, start_bits=8, min_bits=2, log=None):
    """Algorithm 1. ``counts`` {layer: number of weights} (build order), ``evaluate(bits)`` ->
    accuracy in % of the network quantized with ``bits`` {layer: b}, ``baseline`` acc_M in %.
    Returns (bits, steps) with steps a list of (layer, b, acc, Δacc, W_mem) actually taken."""
    log = log or (lambda line: None)
    bits = {n: start_bits for n in counts}
    acc = evaluate(bits)
    log(f"LPS start: {start_bits} bits everywhere, acc {acc:.2f}% (float {baseline:.2f}%), "
        f"W_mem {weight_memory(counts, bits)} bits")
    if baseline - acc >= epsilon:
        log(f"LPS: the starting point already loses {baseline - acc:.2f} >= {epsilon} points")
        return bits, []
    steps = []
    while True:
        trials = []
        for n in counts:
            if bits[n] <= min_bits:
                continue
            trial = dict(bits, **{n: bits[n] - 1})
            acc_q = evaluate(trial)
            drop, mem = baseline - acc_q, weight_memory(counts, trial)
            trials.append((max(drop, 0.0) * mem, mem, n, acc_q, drop))
            log(f"  try {n} -> {trial[n]} bits: acc {acc_q:.2f}% (Δacc {drop:+.2f}), "
                f"W_mem {mem} bits")
        if not trials:
            break
        _, mem, n, acc_q, drop = min(trials, key=lambda t: (t[0], t[1]))
        if drop >= epsilon:
            log(f"LPS stop: the best step ({n}) loses {drop:.2f} >= {epsilon} points")
            break
        bits[n] -= 1
        steps.append((n, bits[n], acc_q, drop, mem))
        log(f"LPS step {len(steps)}: {n} -> {bits[n]} bits, acc {acc_q:.2f}%, "
            f"W_mem {mem} bits, compression {32 * sum(counts.values()) / mem:.2f}x")
    return bits, steps


def ini_snippet(bits, scheme="DFP", comment=""):
    """``[layer]`` / ``QWeight=<scheme>`` / ``QWeight.Range=<2^b-1>`` for every layer."""
    lines = [f"; {line}" for line in comment.splitlines()] if comment else []
    for name, b in bits.items():
        lines += ["", f"[{name}]", f"QWeight={scheme}", f"QWeight.Range={2 ** b - 1}"]
    return "\n".join(lines) + "\n"


def _accuracy(net, set_name, limit):
    result = net.test(set_name, limit=limit)
    if result.recognition_rate is None:
        raise IniError("LPS needs a scored target (a classification [*.Target])")
    return result.recognition_rate


def add_lps_arguments(parser):
    group = parser.add_argument_group("layer-wise precision scaling (Wess et al. 2018)")
    group.add_argument("--lps", action="store_true",
                       help="with -w DIR: lower each layer's weight bits while the validation "
                            "accuracy stays within --lps-epsilon points; writes lps_bits.ini")
    group.add_argument("--lps-epsilon", type=float, default=0.5, metavar="P",
                       help="largest accuracy drop allowed, in points (default 0.5)")
    group.add_argument("--lps-bits", type=int, default=8, metavar="B", help="start bits (8)")
    group.add_argument("--lps-min-bits", type=int, default=2, metavar="B", help="lowest bits (2)")
    group.add_argument("--lps-scheme", default="DFP", choices=("DFP", "Po2"),
                       help="weight quantizer the search uses (DFP or Po2)")
    group.add_argument("--lps-output", default="lps_bits.ini", metavar="FILE",
                       help="where to write the chosen bits as an INI snippet")
    group.add_argument("--lps-limit", type=int, default=None, metavar="N",
                       help="stimuli per evaluation (default: the whole set)")


def lps_main(ini_path, args, out=None, net=None):
    """``--lps``: load the net and ``-w`` weights, search, print, write the snippet.

    ``args`` attributes (all optional but ``weights``): ``lps_epsilon`` (0.5), ``lps_bits``
    (start, 8), ``lps_min_bits`` (2), ``lps_scheme`` (DFP|Po2), ``lps_output``
    (lps_bits.ini), ``lps_limit`` (stimuli per evaluation), ``weights``/``w``.
    """
    from .deepnet import DeepNet
    from .quantizers import make_weight_quantizer
    from .quantizers.constraints import weight_count, weighted_cells

    out = out or sys.stdout
    option = lambda name, default: getattr(args, name, None) if getattr(args, name, None) is not None else default  # noqa: E731
    epsilon, scheme = float(option("lps_epsilon", 0.5)), option("lps_scheme", "DFP")
    if net is None:  # the CLI passes its net, weights already imported
        net = DeepNet.from_ini(ini_path)
        weights = option("weights", option("w", None))
        if weights:
            net.import_weights(weights)
    set_name = "Validation" if len(net.database.sets.get("Validation", ())) else "Test"
    cells = weighted_cells(net.cells)
    saved = {c.name: c.qweight for c in cells}
    limit = option("lps_limit", None)

    def evaluate(bits):
        for c in cells:
            c.qweight = None if bits is None else make_weight_quantizer(
                scheme, {"Range": str(2 ** bits[c.name] - 1), "Regularization": "None"})
        return _accuracy(net, set_name, limit)

    baseline = evaluate(None)
    counts = {c.name: weight_count(c) for c in cells}
    bits, steps = precision_scaling(counts, evaluate, baseline, epsilon,
                                    int(option("lps_bits", 8)), int(option("lps_min_bits", 2)),
                                    log=lambda line: print(line, file=out, flush=True))
    final = evaluate(bits)
    for c in cells:
        c.qweight = saved[c.name]
    mem = weight_memory(counts, bits)
    comment = (f"Layer-wise Precision Scaling ({scheme}, epsilon={epsilon} points, {set_name} set)\n"
               f"float acc {baseline:.2f}%, quantized acc {final:.2f}%, W_mem {mem} bits, "
               f"compression {32 * sum(counts.values()) / mem:.2f}x\n"
               "bits: " + " ".join(str(bits[n]) for n in counts))
    path = option("lps_output", "lps_bits.ini")
    from .folders import replace_file_atomically   # a full disk names the file
    text = ini_snippet(bits, scheme, comment)
    replace_file_atomically(path, lambda f: f.write(text))
    print(f"LPS result: {' '.join(f'{n}={b}' for n, b in bits.items())}; "
          f"acc {final:.2f}% (float {baseline:.2f}%); written to {os.path.abspath(path)}", file=out)
    return bits
