#!/usr/bin/env python3
"""Every speed number the project tracks, in one command (~5-10 minutes on 2 cores):

    python tools/bench/speed.py [--repeat 3] [--quick]

1. the machine: CPU model, cores, load average (before and after), BLAS, peers' versions;
2. training steps, one thread each side (``train_step.py --threads 1 --model all``): LeNet,
   LeNet-SAT QAT vs its float twin, ResNet-20, MobileNet-v2 at 32 px, each against PyTorch
   stepped in turn with ours in the same run;
3. thread scaling: ResNet-20 steps with 1 and 2 threads, alternated, n2d2py and PyTorch;
4. inference (``inference.py --threads 1``): the ``--test`` pass, float forward and the fused
   integer engine against onnxruntime on our exported float and integer ONNX files;
5. the acceptance summary: each ratio against its target (tools/bench/README.md).

Every sub-benchmark runs in its own process (BLAS thread pools are fixed when NumPy loads) and
prints its own lines; this script passes them through and collects their ``RESULT`` lines.
``--quick``: one repetition and fewer steps (a smoke test, not a measurement).
"""
import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]

#: (what, key, target, comparison) for the summary
TARGETS = [
    ("ResNet-20 step, n2d2py/PyTorch images/s (goal 1.0)", ("train", "resnet20"), 0.8, ">="),
    ("LeNet step, n2d2py/PyTorch images/s", ("train", "lenet"), 1.0, ">="),
    ("MobileNet-v2 (32 px) step, n2d2py/PyTorch images/s", ("train", "mobilenetv2"), None, ""),
    ("LeNet-SAT QAT/float step time (CPU)", ("train", "lenet-sat"), 1.3, "<="),
    ("ResNet-20 2 threads / 1 thread images/s", ("scaling", "n2d2py"), 1.6, ">="),
    ("(PyTorch: 2 threads / 1 thread)", ("scaling", "pytorch"), None, ""),
]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="one repetition, few steps (smoke test)")
    p.add_argument("--skip", nargs="*", default=[], choices=["train", "scaling", "inference"])
    return p.parse_args(argv)


def cpu_model():
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average():
    try:
        return "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        return "n/a"


def machine():
    code = ("import numpy, json, threadpoolctl;"
            "info=[(i['internal_api'], i['version'], i.get('architecture')) "
            "for i in threadpoolctl.threadpool_info()];"
            "print(json.dumps([numpy.__version__, info]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    numpy_info = done.stdout.strip() or done.stderr.strip().splitlines()[-1:]
    versions = []
    for module in ("torch", "onnxruntime"):
        got = subprocess.run([sys.executable, "-c",
                              f"import {module}; print({module}.__version__)"],
                             capture_output=True, text=True)
        versions.append(f"{module} {got.stdout.strip() or 'not installed'}")
    got = subprocess.run([sys.executable, "-c", "from n2d2py.functions import _onednn; "
                          "print(_onednn.describe())"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    versions.append(got.stdout.strip() or "oneDNN: " + got.stderr.strip()[-200:])
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical CPUs; Python {platform.python_version()}; "
          f"NumPy and BLAS {numpy_info}; {', '.join(versions)}", flush=True)


def run(script, *options, env=None):
    """Run a sub-benchmark, echo its lines, return its RESULT dicts."""
    cmd = [sys.executable, str(HERE / script), *options, "--results"]
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    environ.update(env or {})
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=environ)
    results = []
    for line in proc.stdout:
        if line.startswith("RESULT "):
            results.append(json.loads(line[7:]))
        else:
            print("  " + line.rstrip(), flush=True)
    if proc.wait() != 0:
        print(f"  ({script} exited with status {proc.returncode})", flush=True)
    return results


def section(title):
    print(f"\n== {title} (load average {load_average()}, {time.strftime('%H:%M:%S')})",
          flush=True)


def scaling(args):
    """ResNet-20 images/s at 1 and 2 threads, alternated; n2d2py then PyTorch."""
    steps = ["--steps", "3", "--warmup", "1"] if args.quick else []
    repeat = 1 if args.quick else args.repeat
    rates = {(side, t): [] for side in ("n2d2py", "pytorch") for t in (1, 2)}
    for _ in range(repeat):
        for threads in (1, 2):
            got = run("train_step.py", "--model", "resnet20", "--threads", str(threads),
                      "--no-peer", "--profile", "0", *steps)
            rates[("n2d2py", threads)] += [r["images_per_s"] for r in got]
            got = run("train_step.py", "--model", "resnet20", "--threads", str(threads),
                      "--pytorch-only", *steps)
            rates[("pytorch", threads)] += [r["images_per_s"] for r in got]
    out = {}
    for side in ("n2d2py", "pytorch"):
        one, two = rates[(side, 1)], rates[(side, 2)]
        if one and two:
            out[side] = max(two) / max(one)
            print(f"  {side:7s} ResNet-20 images/s, best of {repeat}: 1 thread {max(one):.1f}, "
                  f"2 threads {max(two):.1f}: x{out[side]:.2f}", flush=True)
    return out


def summary(found):
    section("acceptance (tools/bench/README.md; the lead's numbers come from a quiet machine)")
    for what, key, target, op in TARGETS:
        value = found.get(key)
        if value is None:
            print(f"  {what:58s} not measured", flush=True)
            continue
        verdict = ""
        if target is not None:
            ok = value >= target if op == ">=" else value <= target
            verdict = f"target {op} {target}: {'met' if ok else 'MISSED'}"
        print(f"  {what:58s} {value:6.3f}  {verdict}", flush=True)
    for name in ("lenet-sat", "mobilenet"):
        value = found.get(("inference", name))
        if value is not None:
            ok = value["integer_ratio"] >= 0.5 and value["codes_equal"]
            print(f"  {'fused integer engine / onnxruntime integer ONNX, ' + name:58s} "
                  f"{value['integer_ratio']:6.3f}  target >= 0.5, codes identical: "
                  f"{'met' if ok else 'MISSED'} (codes equal: {value['codes_equal']}; float "
                  f"forward / onnxruntime {value['float_ratio']:.3f})", flush=True)


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    section("machine")
    machine()
    found = {}
    repeat = ["--repeat", "1" if args.quick else str(args.repeat)]
    if "train" not in args.skip:
        section("training step, batch 128, 1 thread each side, PyTorch stepped in turn")
        quick = ["--steps", "3", "--warmup", "1", "--profile", "0"] if args.quick else \
            ["--profile", "0"]
        for r in run("train_step.py", "--model", "all", "--threads", "1", *repeat, *quick):
            found[("train", r["model"])] = r["best_ratio"]
    if "scaling" not in args.skip:
        section("thread scaling, ResNet-20, batch 128 (1 and 2 threads alternated)")
        for side, value in scaling(args).items():
            found[("scaling", side)] = value
    if "inference" not in args.skip:
        section("inference, 1 thread each side, 1000 bundled MNIST test digits")
        for r in run("inference.py", "--threads", "1", *repeat):
            found[("inference", r["model"])] = r
    summary(found)
    print(f"\n(total {time.perf_counter() - start:.0f} s, load average now {load_average()})",
          flush=True)


if __name__ == "__main__":
    main()
