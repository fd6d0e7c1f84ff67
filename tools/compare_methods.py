"""Train the float baseline and each quantization method with the same budget and print the
seeds' Table 1 (seed 000): method, precision (uniform/mixed), additional learnable parameters per
layer, accuracy, size (MB = 10^6 bytes) and GBitOps (spec/methods.md §6), plus a Pareto plot
(accuracy vs GBitOps).

    python tools/compare_methods.py models/LeNet.ini --epochs 1 --out compare/

Each method's INI is the net's INI with ``QWeight=...`` lines inserted into every Conv/Fc
section (written to a temporary folder, ``N2D2_MODELS`` still pointing at the original folder).
Weights are quantized, activations stay float (32 bits) and the network input counts 8 bits;
first and last layers are quantized like the rest. Mixed-precision methods get the size target
of uniform ``--target-bits`` weights. The loop is constraints.learn_batch (task loss + method
penalties), one ``on_epoch`` per epoch; FracBits is frozen (rounded) before the test.
"""
import argparse
import os
import re
import sys
import tempfile
import time

import numpy

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from n2d2py.deepnet import DeepNet  # noqa: E402
from n2d2py.ini import load_ini  # noqa: E402
from n2d2py.quantizers import constraints  # noqa: E402

UNIFORM, MIXED = "uniform", "mixed"


def method_keys(name, bits, target_bytes, schedule_batches):
    """(precision, {QWeight key: value}) of one method."""
    r = str(2 ** bits - 1)
    table = {
        "Base": (UNIFORM, {}),
        "LSQ": (UNIFORM, {"QWeight": "LSQ", "QWeight.Range": r}),
        "SAT": (UNIFORM, {"QWeight": "SAT", "QWeight.Range": r, "QWeight.ApplyScaling": "1"}),
        "DQ": (MIXED, {"QWeight": "DQ", "QWeight.TargetSize": f"{target_bytes:g}"}),
        "FracBits": (MIXED, {"QWeight": "FracBits", "QWeight.ApplyScaling": "1",
                             "QWeight.TargetSize": f"{target_bytes:g}",
                             "QWeightSolver.LearningRate": "0.1"}),  # NNCF's lr multiplier
        "DFP": (UNIFORM, {"QWeight": "DFP", "QWeight.Range": r}),
        "Po2": (UNIFORM, {"QWeight": "Po2", "QWeight.Range": r}),
        "DQA": (MIXED, {"QWeight": "DQA", "QWeight.TemperatureSteps": str(schedule_batches)}),
    }
    return table[name]


def weighted_sections(document):
    return [s.name for s in document.sections.values() if s.name and s.get("Type", "") in ("Conv", "Fc")]


def derive_ini(text, sections, keys):
    """Insert ``key=value`` lines right after each ``[section]`` header."""
    if not keys:
        return text
    lines = "".join(f"{k}={v}\n" for k, v in keys.items())
    for name in sections:
        pattern = re.compile(rf"^\[{re.escape(name)}\][ \t]*(;[^\n]*)?\n", re.M)
        text, n = pattern.subn(lambda m: m.group(0) + lines, text, count=1)
        if n != 1:
            raise SystemExit(f"compare_methods: section [{name}] not found in the INI text")
    return text


def extra_parameters(net):
    """Learnable quantizer parameters per quantized layer (the seed's column)."""
    counts = [sum(int(p.data.size) for p in c.qweight.parameters())
              for c in constraints.weighted_cells(net.cells) if c.qweight is not None]
    return max(counts) if counts else 0


def cost(net):
    """(MB, GBitOps, per-layer bits); n2d2py.stats.cost_table when it exists."""
    rows, total = constraints.cost_summary(net.cells)
    try:
        from n2d2py.stats import cost_table
        table = cost_table(net)
        total = {"bytes": float(table["total"]["bytes"]), "bitops": float(table["total"]["bitops"])}
    except Exception:  # the stats package is optional here: fall back to constraints' count
        pass
    return total["bytes"] / 1e6, total["bitops"] / 1e9, [r["wbits"] for r in rows]


def run_method(name, ini_path, text, sections, args, folder, log):
    document = load_ini(ini_path)
    probe = DeepNet.from_ini(document)
    n_batches = -(-len(probe.database.sets["Learn"]) // probe.sp.batch_size)
    if args.limit:
        n_batches = min(n_batches, -(-args.limit // probe.sp.batch_size))
    n_weights = sum(constraints.weight_count(c) for c in constraints.weighted_cells(probe.cells))
    precision, keys = method_keys(name, args.bits, n_weights * args.target_bits / 8,
                                  n_batches * args.epochs)
    path = os.path.join(folder, f"{name}.ini")
    with open(path, "w") as f:
        f.write(derive_ini(text, sections, keys))
    env = {"N2D2_MODELS": os.path.dirname(os.path.abspath(ini_path))}
    net = DeepNet.from_ini(path, seed=args.seed, env=env)
    rng = numpy.random.default_rng(args.seed)
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        constraints.on_epoch(net.cells, epoch)
        for x, labels, _ in net.sp.batches("Learn", True, rng, args.limit):
            loss, penalty = constraints.learn_batch(net, x, labels)
        log(f"  {name} epoch {epoch}: loss {loss:.4f} penalty {penalty:.4f}")
    params = extra_parameters(net)  # before freezing: FracBits' b stops being learnable
    constraints.freeze_bits(net.cells)
    acc = 100.0 * net.test("Test").recognition_rate
    mb, gbitops, bits = cost(net)
    return {"method": name, "precision": precision, "params": params, "acc": acc,
            "mb": mb, "gbitops": gbitops, "bits": bits, "seconds": time.perf_counter() - start}


def print_table(results, out):
    out.write(f"{'Method':<10}{'Precision':<10}{'+params/layer':>14}{'Accuracy %':>12}"
              f"{'Size MB':>10}{'GBitOps':>10}  bits per layer (weights)\n")
    for r in results:
        out.write(f"{r['method']:<10}{r['precision']:<10}{r['params']:>14}{r['acc']:>12.2f}"
                  f"{r['mb']:>10.4f}{r['gbitops']:>10.4f}  "
                  f"{' '.join(f'{b:g}' for b in r['bits'])}\n")
    out.write("(MB = 10^6 bytes of weights, biases excluded; BitOps = MACs x weight bits x input "
              "bits, activations float 32 b, input 8 b; first/last layers quantized)\n")


def pareto_plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    pts = sorted(results, key=lambda r: r["gbitops"])
    front, best = [], -1.0
    for r in pts:
        if r["acc"] > best:
            front.append(r)
            best = r["acc"]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter([r["gbitops"] for r in pts], [r["acc"] for r in pts])
    for r in pts:
        ax.annotate(r["method"], (r["gbitops"], r["acc"]), textcoords="offset points", xytext=(4, 4))
    ax.plot([r["gbitops"] for r in front], [r["acc"] for r in front], "--", label="Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel("GBitOps")
    ax.set_ylabel("accuracy (%)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ini")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--methods", default="Base,LSQ,SAT,DQ,FracBits,DFP,Po2,DQA")
    parser.add_argument("--bits", type=int, default=4, help="bits of the uniform methods")
    parser.add_argument("--target-bits", type=float, default=4.0,
                        help="mixed methods: size target = weights x this / 8 bytes")
    parser.add_argument("--limit", type=int, default=None, help="learning stimuli per epoch")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="compare_methods")
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    with open(args.ini) as f:
        text = f.read()
    sections = weighted_sections(load_ini(args.ini))
    results = []
    with tempfile.TemporaryDirectory() as folder:
        for name in args.methods.split(","):
            results.append(run_method(name.strip(), args.ini, text, sections, args, folder,
                                      lambda line: print(line, flush=True)))
    print_table(results, sys.stdout)
    png = os.path.join(args.out, "pareto.png")
    pareto_plot(results, png)
    print(f"Pareto plot: {png}")
    return results


if __name__ == "__main__":
    main()
