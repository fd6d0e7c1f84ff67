"""Train the float baseline and each quantization method with the same budget and print a comparison
table (the layout of docs/METHODS.md): method, precision (uniform/mixed), additional learnable
parameters per layer, accuracy, size (MB = 10^6 bytes) and GBitOps (counted by
``n2d2py.stats.cost_table``, docs/METHODS.md), plus a Pareto plot (accuracy vs GBitOps) and a
Markdown table.

    python tools/compare_methods.py models/LeNet.ini --epochs 5 --out compare_lenet
    python tools/compare_methods.py models/ResNet-20.ini --epochs 160 --out compare_resnet20

How each method is built and trained (docs/METHODS.md has the measured tables):

* Each method's INI is the net's INI with ``QWeight=...`` lines inserted into every Conv/Fc
  section and ``QAct=...`` lines into every cell whose activation is a ``Rectifier`` (the ReLUs)
  where the method has an activation quantizer (SAT: CG-PACT, LSQ, DQ; FracBits uses SAT's
  CG-PACT as its base activation quantizer). DFP, Po2 and DQA quantize
  weights only (as their papers do): their activations stay float and count 32 bits. The derived
  INIs are written into ``--out``/<method>/ (``N2D2_MODELS`` still points at the original
  folder), so ``n2d2py <out>/<method>/<method>.ini --learn-epoch E`` repeats one row.
* First/last layer convention (``--first-last``): ``8bit`` (default) keeps the first and the
  last weighted layer at 8-bit weights, as N2D2's QAT LeNet example does
  (ini_examples/LeNet_SAT4.ini); each method keeps its own quantizer there, fixed at
  8 bits. Their input activations are the network input (8-bit image data) for the first layer
  and the previous layer's quantized activations for the last. ``quantized``: every layer like
  the rest.
* Mixed-precision methods (DQ, FracBits) get ``QWeight.TargetSize`` = the size of the uniform
  methods' network (``--bits`` weights, 8-bit first/last): the same memory budget.
* Training is the real training path, the one the CLI runs: ``DeepNet.from_ini`` then
  ``net.learn(epochs=...)`` (validation and checkpoints each epoch), then ``net.test("Test")``
  on the weights of the last epoch (no best-validation reload: the mixed methods are scored
  where their constraint has pulled them). The constraint penalties (DQ/FracBits size target,
  DFP/Po2 QR/WQR, DQA's attention regulariser) are added by the training step
  (``DeepNet.learn_batch``: ``constraints.constraint_loss``). FracBits' b are rounded and frozen
  before the test (``Quantizer.freeze``: end of its search phase).
"""
import argparse
import io
import os
import re
import sys
import time

import numpy

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from n2d2py.deepnet import DeepNet  # noqa: E402
from n2d2py.errors import N2D2Error  # noqa: E402
from n2d2py.ini import load_ini  # noqa: E402
from n2d2py.quantizers import constraints  # noqa: E402
from n2d2py.stats import cost_table, write_report  # noqa: E402

UNIFORM, MIXED = "uniform", "mixed"
METHODS = ("Base", "LSQ", "SAT", "DQ", "FracBits", "DFP", "Po2", "DQA")
WEIGHTED = ("Conv", "Deconv", "Fc")
COLUMNS = ("Method", "Precision", "+params/layer (w+a)", "Accuracy %", "Size MB", "GBitOps")


# -- the methods ---------------------------------------------------------------------------
def r_of(bits):
    return str(2 ** int(bits) - 1)


def weight_keys(name, bits, fixed, target_bytes, schedule_batches):
    """{QWeight key: value} of one weighted cell; ``fixed``: a first/last layer kept at
    ``bits`` (the mixed methods' learned bits are pinned there)."""
    r = r_of(bits)
    if name == "Base":
        return {}
    if name == "LSQ":
        return {"QWeight": "LSQ", "QWeight.Range": r}
    if name == "SAT":
        return {"QWeight": "SAT", "QWeight.Range": r, "QWeight.ApplyScaling": "1"}
    if name in ("DFP", "Po2"):
        return {"QWeight": name, "QWeight.Range": r}
    target = {"QWeight.TargetSize": f"{target_bytes:.6g}"}
    if name == "DQ":
        keys = {"QWeight": "DQ", **target}
        if fixed:
            keys.update({"QWeight.Bits": str(bits), "QWeight.BitsMin": str(bits),
                         "QWeight.BitsMax": str(bits)})
        return keys
    if name == "FracBits":
        keys = {"QWeight": "FracBits", "QWeight.ApplyScaling": "1", **target,
                "QWeightSolver.LearningRate": "0.1"}  # NNCF's lr multiplier
        if fixed:
            keys.update({"QWeight.Bits": str(bits), "QWeight.Frozen": "1"})
        return keys
    if name == "DQA":
        keys = {"QWeight": "DQA", "QWeight.TemperatureSteps": str(schedule_batches)}
        if fixed:
            keys["QWeight.Quantizers"] = f"MinMax{bits}"
        return keys
    raise SystemExit(f"compare_methods: unknown method '{name}' (known: {', '.join(METHODS)})")


def act_keys(name, bits, alpha=1.0):
    """{QAct key: value} of one ReLU cell (empty: the method keeps float activations).
    ``alpha``: CG-PACT's initial clip. N2D2's QAT examples use 6.0 after a BatchNorm; in a net
    without BatchNorm (models/LeNet.ini) the activations are ~0.1-0.5 and 4 bits over [0, 6]
    (step 0.4) round almost all of them to 0 (10% accuracy): 1.0 (N2D2's code default) fits."""
    r = r_of(bits)
    if name in ("SAT", "FracBits"):   # CG-PACT
        return {"QAct": "SAT", "QAct.Range": r, "QAct.Alpha": f"{alpha:g}"}
    if name == "LSQ":
        return {"QAct": "LSQ", "QAct.Range": r}
    if name == "DQ":
        return {"QAct": "DQ", "QAct.Bits": str(bits)}
    return {}


def precision_of(name):
    return MIXED if name in ("DQ", "FracBits", "DQA") else UNIFORM


# -- INI surgery ---------------------------------------------------------------------------
def net_sections(net):
    """(weighted cells in build order, cells whose activation is a Rectifier) of a built net."""
    weighted, relu = [], []
    for name, cell in net.cells.items():
        if cell.type_name in WEIGHTED:
            weighted.append(name)
        if net.document.section(name).get("ActivationFunction", "") == "Rectifier":
            relu.append(name)
    return weighted, relu


def derive_ini(text, keys_by_section):
    """Insert ``key=value`` lines right after each ``[section]`` header (template bases after
    the header are kept: ``[conv1] conv_def``)."""
    for name, keys in keys_by_section.items():
        if not keys:
            continue
        lines = "".join(f"{k}={v}\n" for k, v in keys.items())
        pattern = re.compile(rf"^\[{re.escape(name)}\][^\n]*\n", re.M)
        text, n = pattern.subn(lambda m: m.group(0) + lines, text, count=1)
        if n != 1:
            raise SystemExit(f"compare_methods: section [{name}] not found in the INI text")
    return text


def method_sections(name, weighted, relu, args, target_bytes, schedule_batches):
    ends = {weighted[0], weighted[-1]} if args.first_last == "8bit" and weighted else set()
    out = {}
    for s in weighted:
        fixed = s in ends
        out[s] = weight_keys(name, 8 if fixed else args.bits, fixed, target_bytes,
                             schedule_batches)
    for s in relu:
        out.setdefault(s, {}).update(act_keys(name, args.act_bits, args.alpha))
    return out


# -- measuring -------------------------------------------------------------------------------
def extra_parameters(net):
    """Learnable quantizer values per quantized layer, (weights, activations): the largest
    count over the cells (the seed's column)."""
    w = [sum(int(p.data.size) for p in c.qweight.parameters())
         for c in net.cells.values() if getattr(c, "qweight", None) is not None]
    a = [sum(int(p.data.size) for p in c.qact.parameters())
         for c in net.cells.values() if getattr(c, "qact", None) is not None]
    return max(w, default=0), max(a, default=0)


def cost(net):
    """The stats package's cost table of the trained net: every cell at its quantizers' bits
    (first/last as configured: the INI already pins them)."""
    return cost_table(net, first_last="as-configured")


def batches_of(net, args):
    per_epoch = -(-len(net.database.sets["Learn"]) // net.sp.batch_size)
    if args.stimuli:
        return -(-args.stimuli // net.sp.batch_size)
    return per_epoch * args.epochs


def run_method(name, ini_path, text, plan, args, log):
    """Derive the INI, train through ``net.learn``, test, count. Returns the table row."""
    folder = os.path.join(args.out, name)
    os.makedirs(folder, exist_ok=True)
    keys = method_sections(name, plan["weighted"], plan["relu"], args, plan["target_bytes"],
                           plan["batches"])
    path = os.path.join(folder, f"{name}.ini")
    with open(path, "w") as f:
        f.write(derive_ini(text, keys))
    env = {"N2D2_MODELS": os.path.dirname(os.path.abspath(ini_path))}
    net = DeepNet.from_ini(load_ini(path, env=env), device=args.device, seed=args.seed)
    net.weight_histograms = False
    start = time.perf_counter()
    stream = io.StringIO()
    net.learn(epochs=None if args.stimuli else args.epochs, stimuli=args.stimuli,
              log=args.stimuli or 1000, out=stream, workdir=folder, reload_best=False,
              rng=numpy.random.default_rng(args.seed))
    with open(os.path.join(folder, "learn.log"), "w") as f:
        f.write(stream.getvalue())
    best = [line for line in stream.getvalue().splitlines() if ", validation " in line]
    params = extra_parameters(net)  # before freezing: FracBits' b stops being learnable
    for quantizer in net.quantizers():
        quantizer.freeze()
    result = net.test("Test", limit=args.test_limit)
    table = cost(net)
    write_report(net, folder)
    seconds = time.perf_counter() - start
    bits = [(r.name, r.w_bits, r.a_bits) for r in table.weighted_rows()]
    row = {"method": name, "precision": precision_of(name), "params": params,
           "acc": result.recognition_rate, "mb": table.size_mb, "gbitops": table.gbitops,
           "bytes": table.size_bytes, "bitops": table.bitops, "bits": bits,
           "seconds": seconds, "ini": path, "table": table}
    log(f"  {name}: {row['acc']:.2f}% test, {row['mb']:.4f} MB, {row['gbitops']:.4f} GBitOps, "
        f"{seconds:.0f} s; last validation: {best[-1].strip() if best else 'none'}")
    return row


# -- output ---------------------------------------------------------------------------------
def bits_text(bits):
    return " ".join(f"{w}/{a}" for _, w, a in bits)


def conventions(args, target_bytes):
    first_last = ("first and last weighted layers at 8-bit weights (each method's quantizer "
                  "pinned to 8 bits, as N2D2's QAT LeNet example; the first layer reads the 8-bit "
                  "image)" if args.first_last == "8bit"
                  else "first and last weighted layers quantized like the others")
    budget = f"{args.epochs} epochs" if not args.stimuli else f"{args.stimuli} stimuli"
    return [
        f"Uniform methods: {args.bits}-bit weights, {args.act_bits}-bit activations where the "
        f"method quantizes them (SAT, LSQ, DQ, FracBits); DFP, Po2 and DQA quantize weights only "
        f"(activations float, 32 bits).",
        f"Mixed methods: DQ and FracBits learn per-layer weight bits under the size target "
        f"{target_bytes:.0f} bytes (the uniform methods' size); DQA picks among 2/4/8-bit "
        f"min-max quantizers.",
        f"{first_last}.",
        "Size = Conv/Fc weights x weight bits / 8 (MB = 10^6 bytes, biases excluded); BitOps = "
        "MACs x weight bits x input-activation bits (n2d2py.stats.cost_table).",
        f"Training: net.learn, {budget} per method, seed {args.seed}; accuracy = test set, "
        f"weights of the last epoch.",
        "Constraint penalties (DQ/FracBits size target, DFP/Po2 QR/WQR, DQA regulariser): "
        "added to the loss by the training step (DeepNet.learn_batch).",
    ]


def table_lines(results):
    header = f"{'Method':<10}{'Precision':<10}{'+params/layer':>14}{'Accuracy %':>12}" \
             f"{'Size MB':>10}{'GBitOps':>10}  bits per layer (w/a)"
    lines = [header]
    for r in results:
        p = f"{sum(r['params'])} ({r['params'][0]}+{r['params'][1]})"
        lines.append(f"{r['method']:<10}{r['precision']:<10}{p:>14}{r['acc']:>12.2f}"
                     f"{r['mb']:>10.4f}{r['gbitops']:>10.4f}  {bits_text(r['bits'])}")
    return lines


def markdown(results, notes, command):
    out = ["# Quantization methods compared (Base, LSQ, SAT, DQ, FracBits, ... on one budget)", "",
           f"Command: `{command}`", ""]
    out += [f"* {n}" for n in notes] + [""]
    out.append("| " + " | ".join(COLUMNS) + " | bits per layer (w/a) | time s |")
    out.append("|---|---|---:|---:|---:|---:|---|---:|")
    for r in results:
        out.append(f"| {r['method']} | {r['precision']} | {sum(r['params'])} "
                   f"({r['params'][0]}+{r['params'][1]}) | {r['acc']:.2f} | {r['mb']:.4f} | "
                   f"{r['gbitops']:.4f} | {bits_text(r['bits'])} | {r['seconds']:.0f} |")
    return "\n".join(out) + "\n"


def pareto_front(results):
    front, best = [], -1.0
    for r in sorted(results, key=lambda r: (r["gbitops"], -r["acc"])):
        if r["acc"] > best:
            front.append(r)
            best = r["acc"]
    return front


def pareto_plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    front = pareto_front(results)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter([r["gbitops"] for r in results], [r["acc"] for r in results])
    for r in results:
        ax.annotate(r["method"], (r["gbitops"], r["acc"]), textcoords="offset points",
                    xytext=(4, 4))
    ax.plot([r["gbitops"] for r in front], [r["acc"] for r in front], "--", label="Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel("GBitOps")
    ax.set_ylabel("test accuracy (%)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -- main -----------------------------------------------------------------------------------
def plan_of(ini_path, args):
    """Sections to edit, the size target and the schedule length, from the float net."""
    probe = DeepNet.from_ini(load_ini(ini_path), device="cpu", seed=args.seed)
    weighted, relu = net_sections(probe)
    if not weighted:
        raise SystemExit(f"compare_methods: {ini_path} has no Conv/Fc cell to quantize")
    counts = {c.name: constraints.weight_count(c) for c in constraints.weighted_cells(probe.cells)}
    ends = {weighted[0], weighted[-1]} if args.first_last == "8bit" else set()
    target_bytes = sum(n * (8 if name in ends else args.bits) / 8 for name, n in counts.items())
    return {"weighted": weighted, "relu": relu, "target_bytes": target_bytes,
            "batches": batches_of(probe, args)}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ini")
    parser.add_argument("--epochs", type=int, default=5, help="epochs per method (default 5)")
    parser.add_argument("--stimuli", type=int, default=None,
                        help="instead of --epochs: N learning stimuli per method (N2D2's -learn)")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--bits", type=int, default=4, help="weight bits of the uniform methods")
    parser.add_argument("--act-bits", type=int, default=4, help="activation bits")
    parser.add_argument("--alpha", type=float, default=1.0,
                        help="initial CG-PACT clip of SAT/FracBits activations (default 1.0)")
    parser.add_argument("--first-last", default="8bit", choices=("8bit", "quantized"))
    parser.add_argument("--test-limit", type=int, default=None, help="test stimuli (all)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=("cpu", "gpu"))
    parser.add_argument("--out", default="compare_methods")
    return parser.parse_args(argv)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    names = [n.strip() for n in args.methods.split(",") if n.strip()]
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise SystemExit(f"compare_methods: unknown method(s) {', '.join(unknown)} "
                         f"(known: {', '.join(METHODS)})")
    os.makedirs(args.out, exist_ok=True)
    try:
        with open(args.ini) as f:
            text = f.read()
        plan = plan_of(args.ini, args)
        notes = conventions(args, plan["target_bytes"])
        for n in notes:
            print(n, flush=True)
        results = [run_method(name, args.ini, text, plan, args, lambda s: print(s, flush=True))
                   for name in names]
    except (N2D2Error, OSError) as exc:
        hint = ""
        if "cifar" in str(exc).lower():
            hint = " (set N2D2_DATA to the folder that holds cifar-10-batches-bin)"
        raise SystemExit(f"compare_methods: error: {exc}{hint}") from None
    print()
    print("\n".join(table_lines(results)))
    command = "python tools/compare_methods.py " + " ".join(argv)
    md = os.path.join(args.out, "table.md")
    with open(md, "w") as f:
        f.write(markdown(results, notes, command))
    png = os.path.join(args.out, "pareto.png")
    pareto_plot(results, png)
    print(f"Markdown table: {md}\nPareto plot: {png}")
    return results


if __name__ == "__main__":
    main()
