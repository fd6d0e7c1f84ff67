#!/usr/bin/env python3
"""Training-step throughput of n2d2py vs PyTorch (CPU), measured in one run.

One step = forward + softmax cross-entropy + backward + SGD update (lr 0.05, momentum 0.9,
Decay 5e-4: N2D2's rule, spec/ini.md §4.2) on random data, batch 128 by default:

  * lenet    N2D2's models/LeNet.ini topology (conv 1→6 5x5 relu, maxpool 2, conv 6→16 5x5
             relu (full connections, as the peer), maxpool 2, conv 16→120 5x5 relu, fc 120→84
             relu, dropout 0.5, fc 84→10; no biases; 32x32 input);
  * resnet20 ResNet-20 for CIFAR-10 (3 stages of 3 basic blocks, BatchNorm, identity shortcuts
             zero-padded in channels, "option A").

The peer is ``../shared/bench/torch_reference.py`` (or ``--peer-script``), run as a separate
process with the same batch, steps and threads; it prints one JSON line. Without PyTorch the
ratio is skipped. For LeNet the script also prints the peak memory of one step (tracemalloc,
which NumPy reports its buffers to) and a cProfile of a few steps (``--profile N`` rows).

Usage: python tools/bench/train_step.py [--model lenet|resnet20|all] [--batch 128] [--steps 20]
                                        [--threads N] [--peer-script PATH] [--profile 15]

To time ``models/LeNet.ini`` through the INI layer instead, replace ``build_lenet`` by a builder
returning ``Model(params, forward)`` from a DeepNet (its Parameters and its forward to logits).
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
DEFAULT_PEER = ROOT.parent / "shared" / "bench" / "torch_reference.py"
INPUT_SHAPES = {"lenet": (1, 32, 32), "resnet20": (3, 32, 32)}
NB_CLASSES = 10
SGD_KEYS = dict(learning_rate=0.05, momentum=0.9, decay=5e-4)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=["lenet", "resnet20", "all"], default="all")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=20, help="timed steps (after 3 warm-up steps)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="BLAS/OpenMP threads (0: library default)")
    p.add_argument("--peer-script", type=pathlib.Path, default=DEFAULT_PEER)
    p.add_argument("--no-peer", action="store_true", help="skip the PyTorch measurement")
    p.add_argument("--profile", type=int, default=15, help="cProfile rows for LeNet (0: none)")
    return p.parse_args(argv)


def set_threads(threads):
    """BLAS thread pools read these once, when NumPy loads: call before importing n2d2py."""
    if threads:
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[name] = str(threads)


class Model:
    """What the timing loop needs: learnable Parameters and ``forward(x, training) -> logits``."""

    def __init__(self, params, forward):
        self.params, self.forward = params, forward


# n2d2py is imported inside the functions below, not at the top: ``--threads`` must set the BLAS
# environment variables before NumPy is first imported (main() does that, then builds).

def _learnable(rng, shape, filler):
    """A Parameter filled by ``filler`` (per-tensor fans) with its own SGD solver."""
    from n2d2py.autograd import Parameter
    from n2d2py.fillers import fans
    from n2d2py.solvers import SGDSolver
    p = Parameter(filler.fill(shape, *fans(shape), rng))
    p.solver = SGDSolver(**SGD_KEYS)
    return p


def build_lenet(rng):
    """models/LeNet.ini as functions (HeFiller weights, NoBias=1)."""
    import n2d2py.functions as F
    from n2d2py.fillers import HeFiller
    he = HeFiller()
    W = [_learnable(rng, s, he) for s in
         ((6, 1, 5, 5), (16, 6, 5, 5), (120, 16, 5, 5), (84, 120), (10, 84))]

    def forward(x, training=True):
        h = F.max_pool2d(F.relu(F.conv2d(x, W[0])), (2, 2), (2, 2), (0, 0))
        h = F.max_pool2d(F.relu(F.conv2d(h, W[1])), (2, 2), (2, 2), (0, 0))
        h = F.relu(F.conv2d(h, W[2]))
        h = F.dropout(F.relu(F.linear(h, W[3])), 0.5, training, rng)
        return F.linear(h, W[4])
    return Model(W, forward)


def build_resnet20(rng):
    """ResNet-20 (CIFAR): conv3x3-BN-ReLU, 3x3 blocks of 16/32/64 channels, global average
    pool, fc 64→10 with bias. Shortcuts: stride-2 subsampling (a 1x1 max pool) and zero
    channels concatenated on both sides, as the peer's ``F.pad`` does."""
    import numpy
    import n2d2py.functions as F
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
        return lambda x, training: F.batch_norm(x, scale, bias, *stats, 1e-5, training, 0.1)

    def block(cin, cout, stride):
        W1, bn1, W2, bn2 = conv(cin, cout), bn(cout), conv(cout, cout), bn(cout)

        def forward(x, training):
            y = F.relu(bn1(F.conv2d(x, W1, stride=(stride, stride), padding=(1, 1)), training))
            y = bn2(F.conv2d(y, W2, padding=(1, 1)), training)
            s = F.max_pool2d(x, (1, 1), (stride, stride), (0, 0)) if stride > 1 else x
            if cout != cin:
                n, _, h, w = s.shape
                lo, hi = (cout - cin) // 2, cout - cin - (cout - cin) // 2
                s = F.concat([numpy.zeros((n, lo, h, w), numpy.float32), s,
                              numpy.zeros((n, hi, h, w), numpy.float32)], axis=1)
            return F.relu(y + s)
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
        h = F.relu(stem_bn(F.conv2d(x, stem, padding=(1, 1)), training))
        for b in blocks:
            h = b(h, training)
        return F.linear(F.global_avg_pool2d(h), fc, fc_bias)
    return Model(params, forward)


BUILDERS = {"lenet": build_lenet, "resnet20": build_resnet20}


def train_step(model, x, targets, batch):
    import n2d2py.functions as F
    from n2d2py.autograd import Variable
    loss = F.softmax_cross_entropy(model.forward(Variable(x), True), targets)
    loss.backward()
    for p in model.params:
        p.solver.update(p, batch)
    return loss


def random_batch(name, batch, rng):
    import numpy
    x = rng.standard_normal((batch, *INPUT_SHAPES[name])).astype(numpy.float32)
    labels = rng.integers(0, NB_CLASSES, batch)
    return x, numpy.eye(NB_CLASSES, dtype=numpy.float32)[labels]


def time_n2d2py(name, batch, steps, warmup):
    import numpy
    rng = numpy.random.default_rng(0)
    model = BUILDERS[name](rng)
    x, t = random_batch(name, batch, rng)
    for _ in range(warmup):
        train_step(model, x, t, batch)
    start = time.perf_counter()
    for _ in range(steps):
        loss = train_step(model, x, t, batch)
    dt = (time.perf_counter() - start) / steps
    return {"images_per_s": round(batch / dt, 1), "step_ms": round(dt * 1e3, 2),
            "loss": float(loss.data)}, (model, x, t)


def peak_memory_mib(model, x, t, batch):
    """Peak traced bytes of one step (NumPy buffers included) and the process's max RSS."""
    import resource
    import tracemalloc
    tracemalloc.start()
    train_step(model, x, t, batch)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss   # KiB on Linux
    return round(peak / 2 ** 20, 1), round(rss_kib / 2 ** 10, 1)


def profile(model, x, t, batch, rows, steps=3):
    import cProfile
    import io
    import pstats
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(steps):
        train_step(model, x, t, batch)
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(rows)
    return out.getvalue()


def run_peer(script, name, batch, steps, threads):
    """The peer's JSON dict, or a string saying why there is none."""
    if importlib.util.find_spec("torch") is None:   # not imported here: the peer runs apart
        return "PyTorch not installed"
    if not script.is_file():
        return f"peer script not found: {script}"
    cmd = [sys.executable, str(script), name, "--batch", str(batch), "--steps", str(steps)]
    if threads:
        cmd += ["--threads", str(threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        return f"peer failed: {done.stderr.strip().splitlines()[-1:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(name, args):
    ours, (model, x, t) = time_n2d2py(name, args.batch, args.steps, args.warmup)
    line = (f"{name:9s} batch {args.batch}: n2d2py {ours['images_per_s']:8.1f} img/s "
            f"({ours['step_ms']:.1f} ms/step)")
    peer = "skipped (--no-peer)" if args.no_peer else run_peer(
        args.peer_script, name, args.batch, args.steps, args.threads)
    if isinstance(peer, dict):
        line += (f" | PyTorch {peer['version']} CPU x{peer['threads']} "
                 f"{peer['images_per_s']:8.1f} img/s ({peer['step_ms']:.1f} ms/step)"
                 f" | ratio n2d2py/PyTorch {ours['images_per_s'] / peer['images_per_s']:.3f}")
    else:
        line += f" | {peer}"
    print(line, flush=True)
    if name == "lenet":
        traced, rss = peak_memory_mib(model, x, t, args.batch)
        print(f"lenet     peak memory of one step: {traced} MiB traced (tracemalloc), "
              f"process max RSS {rss} MiB", flush=True)
        if args.profile:
            print(profile(model, x, t, args.batch, args.profile), flush=True)


NEEDED = ("conv2d", "max_pool2d", "relu", "linear", "dropout", "batch_norm", "concat",
          "global_avg_pool2d", "softmax_cross_entropy")


def main(argv=None):
    args = parse_args(argv)
    set_threads(args.threads)
    sys.path.insert(0, str(ROOT))
    import n2d2py.functions as F
    missing = [n for n in NEEDED if not callable(getattr(F, n, None))]
    if missing:
        sys.exit(f"train_step.py: n2d2py.functions lacks {', '.join(missing)}")
    for name in (["lenet", "resnet20"] if args.model == "all" else [args.model]):
        report(name, args)


if __name__ == "__main__":
    main()
