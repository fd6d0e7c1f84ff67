#!/usr/bin/env python3
"""Data-parallel training (issue 20): equality with one process, throughput, allreduce cost, and
the alpha-beta model of ring allreduce at scale. Everything runs the ``n2d2py`` command in fresh
folders under a temporary directory, on the bundled MNIST subset.

  equality   ``mpiexec -n 2 n2d2py NET.ini --learn-epoch 1 --global-batch`` against
             ``n2d2py NET.ini --learn-epoch 1`` (the same INI: the same global batch), same
             seed. Prints the largest max|a-b|/max|a| over the parameter tensors of the final
             ``net_state/``, ||a-b||/||a|| over all of them, how many tensors are bitwise equal,
             and the validation and test lines of both runs. ``--control``: one process whose
             initial weights are perturbed by 1e-7 (relative), against the same reference:
             what the training itself makes of a last-bit difference. Also against one
             process on half batches accumulating 2 per update (``Solvers.IterationSize=2``):
             the same sums in the same order as 2 replicas, so bitwise equal. ``--steps S ...``:
             after S steps instead (``--learn``, batches drawn with replacement);
             ``--learning-rate R``: R instead of the INI's. Models: ``lenet``
             (models/LeNet.ini), ``lenet-bn-sync`` (the same with a BatchNorm cell behind each
             of its first two convolutions, ``--sync-batchnorm``), ``resnet20-nobn``
             (models/ResNet-20.ini on 32x32 MNIST, every BatchNorm taken out, convolutions with
             biases, residual branches starting at zero, lr 0.05) and ``resnet20-sync`` (the
             same with its BatchNorm cells, lr 0.1, ``--sync-batchnorm``).
  throughput 2 ranks x 1 thread against 1 process x 2 threads (n2d2py's batch threads, BLAS on
             one thread each: n2d2py/parallel.py), and 1 process x 1 thread for reference, one
             epoch each, the same INI and global batch: learning images/s (the command's
             "Learning done" line, validation included) and rank 0's gradient allreduce time
             per step (mean, median and least: the least is about the transfer alone, the
             rest is waiting for the other rank).
  allreduce  MPI_Allreduce of float32 buffers from 4 B to 64 MiB on 2 ranks here, and the
             alpha (latency) and beta (bandwidth) fitted to T = 2(K-1)/K n/beta + 2(K-1) alpha.
  model      the ring-allreduce time and the expected efficiency of ResNet-18 and MobileNet-v2
             gradients over 8-256 GPUs on 100 Gb/s links (assumptions printed with the table).

Usage: python tools/bench/data_parallel.py [equality|throughput|allreduce|model|all]
           [--model lenet|lenet-bn-sync|resnet20-nobn|resnet20-sync|all] [--repeat N]
           [--control] [--steps S ...] [--learning-rate R] [--keep DIR]
The CPU model and the load average are printed first: the machine is shared.
"""
import argparse
import os
import pathlib
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy

ROOT = pathlib.Path(__file__).resolve().parents[2]
BATCH = 128        # the global batch of every model here (BatchSize, $BATCH_SIZE)
MODELS = ("lenet", "lenet-bn-sync", "resnet20-nobn", "resnet20-sync")

# -- the networks -------------------------------------------------------------------------------
MNIST_32 = """[database]
Type=MNIST_IDX_Database
Validation=0.2

[sp]
SizeX=32
SizeY=32
NbChannels=1
BatchSize=${BATCH_SIZE}

[sp.Transformation_1]
Type=RescaleTransformation
Width=32
Height=32

"""


def resnet20(batchnorm):
    """models/ResNet-20.ini on 32x32 MNIST digits (1 channel); without ``batchnorm`` every
    BatchNorm cell becomes an activation cell and the convolutions get their biases back."""
    text = (ROOT / "models" / "ResNet-20.ini").read_text()
    start, end = text.index("[database]"), text.index("[conv_def]")
    text = text[:start] + MNIST_32 + text[end:]
    if not batchnorm:
        text = text.replace("[bn_relu_def]\nType=BatchNorm\nActivationFunction=Rectifier\n"
                            "ConfigSection=bn.config", "[bn_relu_def]\nType=Activation\n"
                            "ActivationFunction=Rectifier")
        text = text.replace("[bn_def]\nType=BatchNorm\nActivationFunction=Linear\n"
                            "ConfigSection=bn.config", "[bn_def]\nType=Activation\n"
                            "ActivationFunction=Linear")
        text = text.replace("[common.config]\nNoBias=1", "[common.config]\nNoBias=0")
        # without BatchNorm, a residual branch starts as zero (Fixup's rule) so that 9 blocks
        # do not blow the activations up at He's initialisation
        text = re.sub(r"(\[s\d\.\d_conv2\] conv_def\n)",
                      r"\1WeightsFiller=ConstantFiller\nWeightsFiller.Value=0\n", text)
        text = text.replace("$LR=0.1", "$LR=0.05")
        assert "Type=BatchNorm" not in text
    return text


def lenet_batchnorm():
    """models/LeNet.ini with a BatchNorm cell (ReLU after it) behind each of its first two
    convolutions, whose ReLU moves into the BatchNorm cell."""
    text = (ROOT / "models" / "LeNet.ini").read_text()
    for conv, pool in (("conv1", "pool1"), ("conv2", "pool2")):
        start = text.index(f"[{conv}]")
        end = text.index(f"[{pool}]")
        text = text[:start] + text[start:end].replace("ActivationFunction=Rectifier",
                                                      "ActivationFunction=Linear") + text[end:]
        text = text.replace(f"[{pool}]\nInput={conv}\n",
                            f"[{conv}.bn]\nInput={conv}\nType=BatchNorm\nNbOutputs=[{conv}]NbOutputs\n"
                            f"ActivationFunction=Rectifier\n\n[{pool}]\nInput={conv}.bn\n")
    assert text.count("Type=BatchNorm") == 2
    return text


def network(model, learning_rate=None):
    """(INI text, command options) of ``model``; ``learning_rate`` replaces the INI's."""
    if model.startswith("lenet"):
        text = lenet_batchnorm() if model == "lenet-bn-sync" else \
            (ROOT / "models" / "LeNet.ini").read_text()
        before = "WeightsSolver.LearningRate=0.05"
    else:
        text = resnet20(model == "resnet20-sync")
        before = re.search(r"\$LR=[\d.]+", text).group(0)
    if learning_rate is not None:
        assert text.count(before) == 1
        text = text.replace(before, before.split("=")[0] + f"={learning_rate}")
    return text, (["--sync-batchnorm"] if model.endswith("-sync") else [])


# -- running the command ------------------------------------------------------------------------
def environment(threads):
    env = dict(os.environ, N2D2_DATA="/nonexistent", MPLBACKEND="Agg",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(threads)
    return env


def command(folder, text, options, ranks, threads, seed=3, stimuli=None):
    """The command in ``folder``: one epoch, or ``--learn stimuli`` validated once, at the end
    (a log point cuts a batch, and one process accumulating half batches would cut it elsewhere)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "net.ini").write_text(text)
    length = ["--learn-epoch", "1"] if stimuli is None else \
        ["--learn", str(stimuli), "--log", str(stimuli)]
    argv = [sys.executable, "-m", "n2d2py.cli", "net.ini", *length, "--seed", str(seed), *options]
    if ranks > 1:
        argv = [shutil.which("mpiexec"), "-n", str(ranks), *argv, "--global-batch"]
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=folder, capture_output=True, text=True, env=environment(threads))
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(argv)}\n{proc.stderr[-2000:]}")
    return proc.stdout, time.perf_counter() - start


def state(folder):
    from n2d2py import checkpoint
    saved = checkpoint.load(folder / "net_state")
    names = [name for name, _, _ in saved.meta["network"]["parameters"]]
    return {names[int(k.split("/")[1])]: v for k, v in saved.arrays.items() if k.startswith("param/")}


def lines(out, *prefixes):
    return [line for line in out.splitlines() if line.startswith(prefixes)]


def learning_rate(out):
    """(images/s of the "Learning done" line, allreduce (mean, median, least) ms per step or None)."""
    rate = float(re.search(r"Learning done: .* \((\d+) img/s\)", out).group(1))
    match = re.search(r"Gradient allreduce \(rank 0\): ([\d.]+) ms per step, median ([\d.]+) ms, "
                      r"least ([\d.]+) ms", out)
    return rate, tuple(map(float, match.groups())) if match else None


# -- the measures -------------------------------------------------------------------------------
def differences(a, b):
    """(max over tensors of max|a-b|/max|a|, ||a-b|| / ||a|| over all parameters, bitwise equal
    tensors) of two {name: array} states."""
    worst = max(float(numpy.abs(a[k] - b[k]).max() / max(numpy.abs(a[k]).max(), 1e-30)) for k in a)
    diff = sum(float(((a[k].astype(numpy.float64) - b[k]) ** 2).sum()) for k in a)
    norm = sum(float((a[k].astype(numpy.float64) ** 2).sum()) for k in a)
    return worst, (diff / norm) ** 0.5, sum(bool(numpy.array_equal(a[k], b[k])) for k in a)


def perturbed_run(folder, stimuli=None, perturbation=1e-7):
    """The control: one process, in this process, every initial weight times (1 + 1e-7 N(0,1)):
    how far the training itself carries a last-bit difference in one epoch."""
    import io

    from n2d2py.deepnet import DeepNet
    os.environ.update(N2D2_DATA="/nonexistent")
    net = DeepNet.from_ini(str(folder / "net.ini"), seed=3)
    rng = numpy.random.default_rng(0)
    for p in net.parameters():
        p.data[...] = p.data * (1 + perturbation * rng.standard_normal(p.data.shape)).astype(p.data.dtype)
    net.weight_histograms = False
    net.learn(epochs=None if stimuli else 1, stimuli=stimuli, log=stimuli or 1000, rng=numpy.random.default_rng([3, 1]), out=io.StringIO(), seed=3,
              workdir=str(folder / "control"), reload_best=False)
    return {p.name: p.data.copy() for p in net.parameters()}


def accumulating(text):
    """The same training as 2 replicas on the INI's global batch, in one process: half the
    batch, gradients of 2 batches summed before each update (``Solvers.IterationSize=2``)."""
    text = re.sub(r"BatchSize=(\d+)", lambda m: f"BatchSize={int(m.group(1)) // 2}", text, count=1)
    text = text.replace("$BATCH_SIZE=128", "$BATCH_SIZE=64")
    return text.replace("[common.config]\n", "[common.config]\nSolvers.IterationSize=2\n")


def equality(model, base, control, steps=None, learning_rate=None):
    text, options = network(model, learning_rate)
    stimuli = None if steps is None else steps * BATCH
    base = base / (f"{steps}-steps" if steps else "epoch")
    one, _ = command(base / model / "one", text, options, ranks=1, threads=1, stimuli=stimuli)
    two, _ = command(base / model / "two", text, options, ranks=2, threads=1, stimuli=stimuli)
    a, b = state(base / model / "one"), state(base / model / "two")
    worst, norm, bitwise = differences(a, b)
    print(f"\n== {model}{f', learning rate {learning_rate}' if learning_rate else ''}: "
          f"{f'{steps} steps' if steps else '1 epoch'}, 2 ranks (--global-batch) against 1 "
          f"process, seed 3")
    print(f"parameter tensors: {len(a)}, bitwise equal: {bitwise}; max over tensors of "
          f"max|a-b|/max|a|: {worst:.3g}; ||a-b||/||a||: {norm:.3g}")
    if not model.endswith("-sync"):    # per-half BatchNorm statistics in one process: no twin
        command(base / model / "acc", accumulating(text), options, ranks=1, threads=1,
                stimuli=stimuli)
        worst, norm, bitwise = differences(state(base / model / "acc"), b)
        print(f"against 1 process on half batches, 2 accumulated per update (IterationSize=2): "
              f"bitwise equal {bitwise}/{len(a)} tensors; max relative difference {worst:.3g}")
    if control:
        (base / model / "one" / "control").mkdir(exist_ok=True)
        c = perturbed_run(base / model / "one", stimuli)
        worst, norm, _ = differences(a, c)
        print(f"control, 1 process with its initial weights perturbed by 1e-7 (relative): "
              f"{worst:.3g}; ||a-b||/||a||: {norm:.3g}")
    for label, out in (("1 process", one), ("2 ranks  ", two)):
        for line in lines(out, "epoch 1/1: loss", "Final recognition rate", "Learning done"):
            print(f"  {label}: {line}")
    same = lines(one, "epoch 1/1: loss", "Final recognition") == \
        lines(two, "epoch 1/1: loss", "Final recognition")
    print(f"validation and test lines identical: {same}")


def throughput(model, base, repeat):
    text, options = network(model)
    print(f"\n== {model}: learning images/s over one epoch (validation included), global batch "
          f"as the INI's")
    for k in range(repeat):
        alone, _ = command(base / f"{model}-t{k}" / "alone", text, options, ranks=1, threads=1)
        one, _ = command(base / f"{model}-t{k}" / "one", text, options, ranks=1, threads=2)
        two, _ = command(base / f"{model}-t{k}" / "two", text, options, ranks=2, threads=1)
        (r0, _), (r1, _), (r2, allreduce) = learning_rate(alone), learning_rate(one), learning_rate(two)
        steps = re.search(r"(\d+) steps\)", two).group(1)
        seconds = float(re.search(r"Learning done: \d+ images in ([\d.]+) s", two).group(1))
        print(f"  run {k + 1}: 1 process x 1 thread {r0:.0f} img/s | 1 process x 2 threads "
              f"{r1:.0f} img/s | 2 ranks x 1 thread "
              f"{r2:.0f} img/s (ratio {r2 / r1:.2f}) | {1e3 * seconds / int(steps):.1f} ms per "
              f"step | allreduce per step: mean {allreduce[0]:.2f} ms, median {allreduce[1]:.2f}, "
              f"least {allreduce[2]:.2f} ({steps} steps) | load {os.getloadavg()[0]:.1f}")


ALLREDUCE = r"""
import sys, time, numpy
from mpi4py import MPI
comm = MPI.COMM_WORLD
for exp in range(0, 25, 2):
    n = max(1, (4 << exp) // 4)
    a = numpy.ones(n, numpy.float32)
    times = []
    for _ in range(max(9, min(301, (256 << 20) // (n * 4)))):
        comm.Barrier()
        start = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, a)
        times.append(time.perf_counter() - start)
    if comm.rank == 0:
        sys.stdout.write(f"{n * 4} {min(times)} {numpy.median(times)}\n")
"""


def allreduce(base):
    """Each size timed call by call (after a barrier): the minimum (least disturbed on a
    shared machine) and the median; alpha and beta fitted to the minima."""
    script = base / "allreduce.py"
    script.write_text(ALLREDUCE)
    proc = subprocess.run([shutil.which("mpiexec"), "-n", "2", sys.executable, str(script)],
                          capture_output=True, text=True, env=environment(1))
    rows = [tuple(map(float, line.split())) for line in proc.stdout.split("\n") if line.strip()]
    print("\n== MPI_Allreduce (float32, in place), 2 ranks on this machine (shared memory)")
    print("        bytes    min us  median us   GB/s (min)")
    for size, low, median in rows:
        print(f"  {int(size):>11d} {low * 1e6:9.1f} {median * 1e6:10.1f} {size / low / 1e9:9.2f}")
    sizes = numpy.array([r[0] for r in rows])
    lows = numpy.array([r[1] for r in rows])
    alpha = float(lows[sizes <= 1024].min()) / 2
    for low, high in ((64 << 10, 4 << 20), (16 << 20, 64 << 20)):
        fit = (sizes >= low) & (sizes <= high)
        slope = numpy.polyfit(sizes[fit], lows[fit], 1)[0]
        print(f"  fit on the minima, {low >> 10} KiB to {high >> 10} KiB: beta = "
              f"{1 / slope / 1e9:.2f} GB/s; alpha = {alpha * 1e6:.1f} us per ring step "
              f"(2 ranks: T = 2 alpha + n / beta)")
    return alpha


def model_table(alpha=5e-6, link_gbit=100.0):
    beta = link_gbit / 8 * 1e9
    # parameters; assumed per-GPU training step at batch 64: fp32 on a V100-class GPU
    # (~900 and ~1300 images/s), and 4x shorter (mixed precision on a newer GPU)
    nets = {"ResNet-18": (11_689_512, 0.070), "MobileNet-v2": (3_504_872, 0.050)}
    print(f"\n== Ring allreduce model: T(K) = 2(K-1) alpha + 2(K-1)/K * 4n / beta, alpha = "
          f"{alpha * 1e6:.0f} us, beta = {link_gbit:.0f} Gb/s = {beta / 1e9:.1f} GB/s per GPU link")
    print("   efficiency E = t / (t + T) (n2d2py: one allreduce after backward); with full "
          "overlap t / max(t, T)")
    for name, (n, step) in nets.items():
        print(f"  {name}: {n / 1e6:.2f} M parameters = {4 * n / 2 ** 20:.1f} MiB of float32 "
              f"gradients; step t = {step * 1e3:.0f} ms (fp32) or {step * 250:.1f} ms (4x faster)")
        for k in (8, 16, 32, 64, 128, 256):
            t = 2 * (k - 1) * alpha + 2 * (k - 1) / k * 4 * n / beta
            print(f"    K={k:>3}: T = {t * 1e3:6.2f} ms   E = {step / (step + t):.3f} "
                  f"(overlapped {step / max(step, t):.3f})   4x faster GPU: E = "
                  f"{step / 4 / (step / 4 + t):.3f} (overlapped {step / 4 / max(step / 4, t):.3f})")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", nargs="?", default="all",
                   choices=["equality", "throughput", "allreduce", "model", "all"])
    p.add_argument("--model", choices=[*MODELS, "all"], default="all")
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--steps", type=int, nargs="*", default=[],
                   help="equality: after these numbers of steps (--learn) instead of 1 epoch")
    p.add_argument("--learning-rate", type=float,
                   help="equality: this learning rate instead of the INI's")
    p.add_argument("--control", action="store_true",
                   help="equality: also train one process from weights perturbed by 1e-7")
    p.add_argument("--keep", type=pathlib.Path, help="run in this folder and keep it")
    args = p.parse_args(argv)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    print(f"CPU: {cpu}, {os.cpu_count()} cores; load average {os.getloadavg()}")
    models = MODELS if args.model == "all" else (args.model,)
    base = args.keep or pathlib.Path(tempfile.mkdtemp(prefix="n2d2py-dp-"))
    try:
        if args.what in ("equality", "all"):
            for model in models:
                for steps in args.steps or [None]:
                    equality(model, base, args.control, steps, args.learning_rate)
        if args.what in ("throughput", "all"):
            for model in models:
                throughput(model, base, args.repeat)
        if args.what in ("allreduce", "all"):
            allreduce(base)
        if args.what in ("model", "all"):
            model_table()
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    print(f"load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
