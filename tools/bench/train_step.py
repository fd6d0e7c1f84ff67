#!/usr/bin/env python3
"""Training-step throughput of n2d2py vs PyTorch (CPU), measured in one run.

One step = forward + softmax cross-entropy + backward + solver updates on random data, batch
128 by default (SGD lr 0.05, momentum 0.9, Decay 5e-4 for lenet, resnet20 and mobilenetv2, as
the peer; lenet-sat uses its INI's solvers):

  * lenet       ``models/LeNet.ini`` built by ``DeepNet.from_ini(path, load_data=False)``, one
                step = ``DeepNet.learn_batch`` (the real path: cells, Mapping mask on conv2,
                Target, solvers with the INI's keys). The peer is the same topology with full
                conv2 connections;
  * lenet-sat   LeNet with BatchNorm and SAT quantization (``QWeight=SAT`` R=15/255,
                ``QAct=SAT``), N2D2's ``tests_data/mnist_model/LeNet-bn-SAT.ini``, timed against
                the same INI with every ``QWeight*``/``QAct*`` line removed (the float step):
                prints the QAT/float step-time ratio (no PyTorch peer);
  * resnet20    ResNet-20 for CIFAR-10 as n2d2py functions (3 stages of 3 basic blocks,
                BatchNorm, identity shortcuts zero-padded in channels, "option A", as the peer);
  * mobilenetv2 MobileNet-v2 for 32x32 inputs as n2d2py functions (inverted residuals with
                depthwise 3x3 convolutions, ReLU6, 1280 features), as the peer.

The peer is ``peers/torch_reference.py`` (or ``--peer-script``) in its own process, started in
``--serve`` mode: its steps and ours alternate (one of ours, one of its, ...) so both see the
same machine load. Without PyTorch the ratio is skipped. Each line gives images/s and ms/step
from the mean wall time, and the median CPU time of a step (``process_time``, steadier on a
shared machine) for both sides; ``--repeat N`` measures N times and prints the best ratio.
For lenet and lenet-sat the script also prints the peak memory of one step (tracemalloc, which
NumPy reports its buffers to, plus the conv work arrays kept between steps) and a cProfile of
a few steps (``--profile N`` rows). ``--threads N`` pins BLAS, OpenMP, PyTorch and n2d2py's own
threads (``n2d2py/parallel.py``) to N. ``tools/bench/speed.py`` runs this for every model.
See tools/bench/README.md for the latest numbers.

Usage: python tools/bench/train_step.py [--model lenet|lenet-sat|resnet20|mobilenetv2|all]
                                        [--batch 128] [--steps N] [--threads N] [--repeat N]
                                        [--peer-script PATH] [--profile 15] [--sat-ini PATH]
"""
import argparse
import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_PEER = ROOT / "tools" / "bench" / "peers" / "torch_reference.py"
INPUT_SHAPES = {"lenet": (1, 32, 32), "lenet-sat": (1, 32, 32), "resnet20": (3, 32, 32),
                "mobilenetv2": (3, 32, 32)}
LENET_INI = ROOT / "models" / "LeNet.ini"
SAT_INI = ROOT / "tests" / "data" / "n2d2" / "tests_data" / "mnist_model" / "LeNet-bn-SAT.ini"
NB_CLASSES = 10
#: (timed steps, warm-up steps) per model: about 10 s of n2d2py steps each on one core
DEFAULT_STEPS = {"lenet": (20, 3), "lenet-sat": (20, 3), "resnet20": (10, 2),
                 "mobilenetv2": (3, 1)}
SGD_KEYS = dict(learning_rate=0.05, momentum=0.9, decay=5e-4)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=["lenet", "lenet-sat", "resnet20", "mobilenetv2", "all"],
                   default="all")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=0,
                   help="timed steps (0: the model's default, DEFAULT_STEPS)")
    p.add_argument("--warmup", type=int, default=0, help="warm-up steps (0: the model's default)")
    p.add_argument("--repeat", type=int, default=1,
                   help="measure each model this many times and print the best ratio too")
    p.add_argument("--threads", type=int, default=0, help="BLAS/OpenMP threads (0: library default)")
    p.add_argument("--peer-script", type=pathlib.Path, default=DEFAULT_PEER)
    p.add_argument("--no-peer", action="store_true", help="skip the PyTorch measurement")
    p.add_argument("--profile", type=int, default=15,
                   help="cProfile rows for lenet and lenet-sat (0: none)")
    p.add_argument("--sat-ini", type=pathlib.Path, default=SAT_INI,
                   help="the SAT LeNet INI of --model lenet-sat")
    p.add_argument("--pytorch-only", action="store_true",
                   help="time the PyTorch peer alone (speed.py's thread scaling)")
    p.add_argument("--results", action="store_true",
                   help="also print one 'RESULT {json}' line per model (for speed.py)")
    return p.parse_args(argv)


def set_threads(threads):
    """BLAS thread pools read these once, when NumPy loads: call before importing n2d2py."""
    if threads:
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                     "N2D2PY_THREADS"):
            os.environ[name] = str(threads)


class Model:
    """What the timing loop needs: ``step(x, labels)`` runs one training step, returns the loss."""

    def __init__(self, step):
        self.step = step


# n2d2py is imported inside the functions below, not at the top: ``--threads`` must set the BLAS
# environment variables before NumPy is first imported (main() does that, then builds).

def deepnet_model(source):
    """A DeepNet from an INI path or text (no data read): its step is ``learn_batch``."""
    from n2d2py import DeepNet
    from n2d2py.ini import parse_ini_text
    if isinstance(source, pathlib.Path):
        net = DeepNet.from_ini(source, load_data=False)
    else:
        net = DeepNet.from_ini(parse_ini_text(source[1], str(source[0])), load_data=False)
    return Model(lambda x, labels: net.learn_batch(x, labels)[0])


def build_lenet(rng, args):
    return deepnet_model(LENET_INI)


def float_twin(text):
    """The INI text without its quantizers: every ``QWeight*``/``QAct*`` line dropped."""
    return "\n".join(line for line in text.splitlines()
                     if not line.lstrip().startswith(("QWeight", "QAct")))


def build_lenet_sat(rng, args, quantized=True):
    text = args.sat_ini.read_text()
    return deepnet_model((args.sat_ini, text if quantized else float_twin(text)))


def _learnable(rng, shape, filler):
    """A Parameter filled by ``filler`` (per-tensor fans) with its own SGD solver."""
    from n2d2py.autograd import Parameter
    from n2d2py.fillers import fans
    from n2d2py.solvers import SGDSolver
    p = Parameter(filler.fill(shape, *fans(shape), rng))
    p.solver = SGDSolver(**SGD_KEYS)
    return p


def build_resnet20(rng, args):
    """ResNet-20 (CIFAR): conv3x3-BN-ReLU, 3x3 blocks of 16/32/64 channels, global average
    pool, fc 64→10 with bias. Shortcuts: stride-2 subsampling (a 1x1 max pool) and zero
    channels concatenated on both sides, as the peer's ``F.pad`` does. BN+ReLU is one
    ``batch_norm(..., relu_clipping=0)`` and the residual an ElemWise Sum with its ReLU, as
    the BatchNorm and ElemWise cells of an INI ResNet run them."""
    import numpy
    import n2d2py.functions as F
    from n2d2py.autograd import Variable
    from n2d2py.fillers import ConstantFiller, HeFiller, default_filler
    he, params = HeFiller(), []

    def conv(cin, cout):
        params.append(_learnable(rng, (cout, cin, 3, 3), he))
        return params[-1]

    def bn(c):
        scale = _learnable(rng, (c,), ConstantFiller(value=1.0))   # N2D2 BN: scale 1, bias 0
        bias = _learnable(rng, (c,), ConstantFiller(value=0.0))
        params.extend((scale, bias))
        stats = (numpy.zeros(c, numpy.float32), numpy.zeros(c, numpy.float32))
        return lambda x, training, relu=None: F.batch_norm(x, scale, bias, *stats, 1e-5,
                                                           training, 0.1, relu_clipping=relu)

    def block(cin, cout, stride):
        W1, bn1, W2, bn2 = conv(cin, cout), bn(cout), conv(cout, cout), bn(cout)

        def forward(x, training):
            y = bn1(F.conv2d(x, W1, stride=(stride, stride), padding=(1, 1)), training, 0.0)
            y = bn2(F.conv2d(y, W2, padding=(1, 1)), training)
            s = F.max_pool2d(x, (1, 1), (stride, stride), (0, 0)) if stride > 1 else x
            if cout != cin:
                n, _, h, w = s.shape
                lo, hi = (cout - cin) // 2, cout - cin - (cout - cin) // 2
                s = F.concat([numpy.zeros((n, lo, h, w), numpy.float32), s,
                              numpy.zeros((n, hi, h, w), numpy.float32)], axis=1)
            return F.elemwise([y, s], "Sum", relu_clipping=0.0)   # N2D2's ElemWise + Rectifier
        return forward

    stem, stem_bn = conv(3, 16), bn(16)
    blocks, cin = [], 16
    for cout, stride in ((16, 1), (32, 2), (64, 2)):
        for i in range(3):
            blocks.append(block(cin, cout, stride if i == 0 else 1))
            cin = cout
    fc = _learnable(rng, (NB_CLASSES, 64), he)
    fc_bias = _learnable(rng, (NB_CLASSES,), default_filler())
    params.extend((fc, fc_bias))

    def forward(x, training=True):
        h = stem_bn(F.conv2d(x, stem, padding=(1, 1)), training, 0.0)
        for b in blocks:
            h = b(h, training)
        return F.linear(F.global_avg_pool2d(h), fc, fc_bias)

    def step(x, labels):
        targets = numpy.eye(NB_CLASSES, dtype=numpy.float32)[labels]
        loss = F.softmax_cross_entropy(forward(Variable(x), True), targets)
        loss.backward()
        for p in params:
            p.solver.update(p, len(labels))
        return float(loss.data)
    return Model(step)


# (expansion t, output channels c, repeats n, first stride s), as the peer's MOBILENET_V2_CIFAR
MOBILENET_V2_CIFAR = ((1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                      (6, 160, 3, 2), (6, 320, 1, 1))


def build_mobilenetv2(rng, args):
    """MobileNet-v2 for 32x32 inputs (the peer's ``mobilenetv2``): inverted residual blocks
    (1x1 expand, 3x3 depthwise, 1x1 project, each with BatchNorm; ReLU6 after the first two),
    identity residuals where the shape is kept, 1x1 conv to 1280, global average pool, fc.
    BN+ReLU6 is one ``batch_norm(..., relu_clipping=6)``, as a BatchNorm cell runs it."""
    import numpy
    import n2d2py.functions as F
    from n2d2py.autograd import Variable
    from n2d2py.fillers import ConstantFiller, HeFiller, default_filler
    he, params = HeFiller(), []

    def conv_bn(cin, cout, k=1, stride=1, groups=1, act=True):
        W = _learnable(rng, (cout, cin // groups, k, k), he)
        scale = _learnable(rng, (cout,), ConstantFiller(value=1.0))
        bias = _learnable(rng, (cout,), ConstantFiller(value=0.0))
        params.extend((W, scale, bias))
        stats = (numpy.zeros(cout, numpy.float32), numpy.ones(cout, numpy.float32))

        def forward(x):
            y = F.conv2d(x, W, stride=(stride, stride), padding=(k // 2, k // 2), groups=groups)
            return F.batch_norm(y, scale, bias, *stats, 1e-5, True, 0.1,
                                relu_clipping=6.0 if act else None)
        return forward

    def block(cin, cout, stride, t):
        hidden = cin * t
        layers = ([conv_bn(cin, hidden)] if t != 1 else []) + [
            conv_bn(hidden, hidden, 3, stride, groups=hidden), conv_bn(hidden, cout, act=False)]
        residual = stride == 1 and cin == cout

        def forward(x):
            y = x
            for layer in layers:
                y = layer(y)
            return x + y if residual else y
        return forward

    layers, cin = [conv_bn(3, 32, 3)], 32
    for t, c, n, s in MOBILENET_V2_CIFAR:
        for i in range(n):
            layers.append(block(cin, c, s if i == 0 else 1, t))
            cin = c
    layers.append(conv_bn(cin, 1280))
    fc = _learnable(rng, (NB_CLASSES, 1280), he)
    fc_bias = _learnable(rng, (NB_CLASSES,), default_filler())
    params.extend((fc, fc_bias))

    def step(x, labels):
        h = Variable(x)
        for layer in layers:
            h = layer(h)
        logits = F.linear(F.global_avg_pool2d(h), fc, fc_bias)
        targets = numpy.eye(NB_CLASSES, dtype=numpy.float32)[labels]
        loss = F.softmax_cross_entropy(logits, targets)
        loss.backward()
        for p in params:
            p.solver.update(p, len(labels))
        return float(loss.data)
    return Model(step)


BUILDERS = {"lenet": build_lenet, "lenet-sat": build_lenet_sat, "resnet20": build_resnet20,
            "mobilenetv2": build_mobilenetv2}


def random_batch(name, batch, rng):
    import numpy
    x = rng.standard_normal((batch, *INPUT_SHAPES[name])).astype(numpy.float32)
    return x, rng.integers(0, NB_CLASSES, batch)


def time_steps(models, x, labels, steps, warmup, peer=None):
    """Time ``steps`` steps of each model, interleaved (model 0, model 1, ..., the peer, model
    0, ...) so that every side sees the same machine load. Per model: images/s and ms/step of
    the mean wall time (what the peer reports), and the median CPU time of a step
    (``time.process_time``: with one BLAS thread it hardly moves when other processes share
    the cores). ``peer``: a ``Peer`` (PyTorch in its own process), stepped in the same
    rotation; its result comes last."""
    for _ in range(warmup):
        for model in models:
            model.step(x, labels)
    sides = len(models) + (peer is not None)
    wall, cpu = [[] for _ in range(sides)], [[] for _ in range(sides)]
    loss = None
    for _ in range(steps):
        for i, model in enumerate(models):
            w, c = time.perf_counter(), time.process_time()
            loss = model.step(x, labels)
            cpu[i].append(time.process_time() - c)
            wall[i].append(time.perf_counter() - w)
        if peer is not None:
            w, c = peer.steps(1)
            wall[-1] += w
            cpu[-1] += c
    return [summary(w, c, len(x), loss) for w, c in zip(wall, cpu)]


def summary(wall, cpu, batch, loss=None):
    dt = sum(wall) / len(wall)
    return {"images_per_s": round(batch / dt, 1), "step_ms": round(dt * 1e3, 2),
            "cpu_ms": round(sorted(cpu)[len(cpu) // 2] * 1e3, 2), "loss": loss}


class Peer:
    """``peers/torch_reference.py MODEL --serve`` in its own process: ``steps(n)`` runs n
    steps there and returns their wall and CPU seconds (measured in the peer)."""

    def __init__(self, script, name, batch, threads):
        cmd = [sys.executable, str(script), name, "--batch", str(batch), "--serve"]
        if threads:
            cmd += ["--threads", str(threads)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.info = self._reply()

    def _reply(self):
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read().strip().splitlines()[-1:]
            raise RuntimeError(f"peer failed: {err}")
        return json.loads(line)

    def steps(self, n):
        self.proc.stdin.write(f"{n}\n")
        self.proc.stdin.flush()
        reply = self._reply()
        return reply["wall_s"], reply["cpu_s"]

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("q\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


def start_peer(args, name):
    """A running ``Peer``, or a string saying why there is none."""
    if args.no_peer:
        return "skipped (--no-peer)"
    if importlib.util.find_spec("torch") is None:   # not imported here: the peer runs apart
        return "PyTorch not installed"
    if not args.peer_script.is_file():
        return f"peer script not found: {args.peer_script}"
    try:
        return Peer(args.peer_script, name, args.batch, args.threads)
    except RuntimeError as exc:
        return str(exc)


def time_n2d2py(name, args, variants=({},), peer=None):
    """Build ``name`` once per options dict of ``variants`` and time them interleaved (with
    ``peer``, if given, in the same rotation)."""
    import numpy
    rng = numpy.random.default_rng(0)
    models = [BUILDERS[name](rng, args, **options) for options in variants]
    x, labels = random_batch(name, args.batch, rng)
    return time_steps(models, x, labels, args.steps, args.warmup, peer), (models[0], x, labels)


def peak_memory_mib(model, x, labels):
    """Peak traced bytes of one step (NumPy buffers included) and the process's max RSS."""
    import resource
    import tracemalloc
    tracemalloc.start()
    model.step(x, labels)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss   # KiB on Linux
    return round(peak / 2 ** 20, 1), round(rss_kib / 2 ** 10, 1)


def profile(model, x, labels, rows, steps=5):
    import cProfile
    import io
    import pstats
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(steps):
        model.step(x, labels)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(rows)
    return out.getvalue()


def report(name, args):
    """One line per repetition, then the best of the repetitions (the least disturbed)."""
    ratios, rates = [], []
    for _ in range(args.repeat):
        line, ratio, rate = measure(name, args)
        print(line, flush=True)
        rates.append(rate)
        if ratio is not None:
            ratios.append(ratio)
    if args.repeat > 1 and ratios:
        if name == "lenet-sat":
            what, best = "QAT/float CPU step time", min(ratios)
        else:
            what, best = "n2d2py/PyTorch images/s", max(ratios)
        print(f"{name:9s} best of {args.repeat}: {what} {best:.3f} (all: "
              f"{', '.join(f'{r:.3f}' for r in ratios)})", flush=True)
    if args.results and any(r is not None for r in rates):   # for tools/bench/speed.py
        best = (min(ratios) if name == "lenet-sat" else max(ratios)) if ratios else None
        print("RESULT " + json.dumps({"model": name, "threads": args.threads, "ratios": ratios,
                                      "best_ratio": best,
                                      "images_per_s": max(r for r in rates if r is not None)}),
              flush=True)
    if name.startswith("lenet") and not args.pytorch_only:
        _, (model, x, labels) = time_n2d2py(name, argparse.Namespace(**{**vars(args), "steps": 1}))
        traced, rss = peak_memory_mib(model, x, labels)
        print(f"{name:9s} peak memory of one step: {traced} MiB traced (tracemalloc), "
              f"process max RSS {rss} MiB, work arrays kept between steps "
              f"{scratch_mib()} MiB", flush=True)
        if args.profile:
            print(profile(model, x, labels, args.profile), flush=True)


def scratch_mib():
    """MiB held by the conv/pool work arrays (n2d2py/functions/_im2col.py ``scratch``): made
    before tracemalloc starts, so not in its peak, but part of the working set."""
    from n2d2py.functions import _im2col
    held = getattr(_im2col, "_scratch", None)
    arrays = vars(held).values() if held is not None else ()
    return round(sum(a.nbytes for a in arrays) / 2 ** 20, 1)


def measure(name, args):
    """(report line, ratio): n2d2py vs the peer, or for lenet-sat QAT vs its float twin."""
    if name == "lenet-sat":
        (ours, flt), _ = time_n2d2py(name, args, variants=({}, {"quantized": False}))
        ratio = ours["cpu_ms"] / flt["cpu_ms"]
        return (f"{name:9s} batch {args.batch}: QAT {ours['images_per_s']:8.1f} img/s "
                f"({ours['step_ms']:.1f} ms/step, CPU {ours['cpu_ms']:.1f} ms) | float twin "
                f"{flt['images_per_s']:8.1f} img/s ({flt['step_ms']:.1f} ms/step, CPU "
                f"{flt['cpu_ms']:.1f} ms) | QAT/float step time: CPU {ratio:.3f}, wall "
                f"{ours['step_ms'] / flt['step_ms']:.3f}"), ratio, ours["images_per_s"]
    if args.pytorch_only:
        return measure_peer_alone(name, args)
    peer = start_peer(args, name)
    try:
        results, _ = time_n2d2py(name, args, peer=peer if isinstance(peer, Peer) else None)
    finally:
        if isinstance(peer, Peer):
            peer.close()
    ours = results[0]
    line = (f"{name:11s} batch {args.batch}: n2d2py {ours['images_per_s']:8.1f} img/s "
            f"({ours['step_ms']:.1f} ms/step, CPU {ours['cpu_ms']:.1f} ms)")
    if not isinstance(peer, Peer):
        return line + f" | {peer}", None, ours["images_per_s"]
    theirs = results[1]
    ratio = ours["images_per_s"] / theirs["images_per_s"]
    cpu_ratio = theirs["cpu_ms"] / ours["cpu_ms"]
    return (line + f" | PyTorch {peer.info['version']} CPU x{peer.info['threads']} "
            f"{theirs['images_per_s']:8.1f} img/s ({theirs['step_ms']:.1f} ms/step, CPU "
            f"{theirs['cpu_ms']:.1f} ms) | ratio n2d2py/PyTorch {ratio:.3f} (CPU time "
            f"{cpu_ratio:.3f})"), ratio, ours["images_per_s"]


def measure_peer_alone(name, args):
    peer = start_peer(args, name)
    if not isinstance(peer, Peer):
        return f"{name:11s} PyTorch: {peer}", None, None
    try:
        wall, cpu = peer.steps(args.steps)
    finally:
        peer.close()
    theirs = summary(wall, cpu, args.batch)
    return (f"{name:11s} batch {args.batch}: PyTorch {peer.info['version']} CPU "
            f"x{peer.info['threads']} {theirs['images_per_s']:8.1f} img/s "
            f"({theirs['step_ms']:.1f} ms/step, CPU {theirs['cpu_ms']:.1f} ms)"), None, \
        theirs["images_per_s"]


NEEDED = ("conv2d", "max_pool2d", "relu", "linear", "dropout", "batch_norm", "concat",
          "global_avg_pool2d", "softmax_cross_entropy")


def main(argv=None):
    args = parse_args(argv)
    set_threads(args.threads)  # before NumPy loads (n2d2py.backend imports it)
    sys.path.insert(0, str(ROOT))
    from n2d2py.backend import keep_freed_memory
    keep_freed_memory()  # as the n2d2py command does (backend.py says why)
    import n2d2py.functions as F
    missing = [n for n in NEEDED if not callable(getattr(F, n, None))]
    if missing:
        sys.exit(f"train_step.py: n2d2py.functions lacks {', '.join(missing)}")
    for name in (list(BUILDERS) if args.model == "all" else [args.model]):
        steps, warmup = DEFAULT_STEPS[name]
        report(name, argparse.Namespace(**{**vars(args), "steps": args.steps or steps,
                                           "warmup": args.warmup or warmup}))


if __name__ == "__main__":
    main()
