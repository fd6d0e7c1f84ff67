#!/usr/bin/env python3
"""Inference throughput of n2d2py vs onnxruntime on our own exported ONNX files (CPU), one run.

For each network (N2D2's trained QAT test models, bundled in tests/data/n2d2 with their
weights), on the bundled MNIST test digits (the same inputs for every side):

  * ``--test`` (float)    ``DeepNet.test`` on the Test set: the whole pass the ``--test`` command
                          runs (batches from the StimuliProvider, forward without gradients,
                          scoring), and the forward alone on the digits as one array; against
                          onnxruntime running ``export_onnx(net)`` (QDQ: the quantizers
                          simulated in float, as our forward) on that array;
  * fused integer         ``FusedNet.forward`` (the ``--qat-sat`` engine: exact integer sums on
                          BLAS) on the uint8 codes, against onnxruntime running
                          ``export_integer_onnx(fused)`` (ConvInteger/MatMulInteger) on them;
                          the codes of every fused node are compared (they must be equal).

Each ratio is n2d2py images/s over onnxruntime's, the two timed alternately in the same run
(best of ``--repeat``); onnxruntime gets ``--threads`` intra-op threads, n2d2py as many
(``N2D2PY_THREADS``, BLAS pinned to one per thread). Prints the CPU model.

Usage: python tools/bench/inference.py [--threads 1] [--repeat 3] [--models lenet-sat mobilenet]
"""
import argparse
import json
import os
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
N2D2 = ROOT / "tests" / "data" / "n2d2" / "tests_data"
#: name -> (INI, weights folder)
MODELS = {
    "lenet-sat": (N2D2 / "mnist_model" / "LeNet-bn-SAT.ini", "weights_test_SAT"),
    "mobilenet": (N2D2 / "mnist_multibranch_model" / "MobileNet_v2_mini.ini",
                  "mobilenet-v2-weights-8b"),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    p.add_argument("--limit", type=int, default=1000, help="test digits (at most 1000 bundled)")
    p.add_argument("--results", action="store_true",
                   help="also print one 'RESULT {json}' line per network (for speed.py)")
    return p.parse_args(argv)


def best_rate(fn, count, repeat):
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return count / best


def alternate(sides, count, repeat):
    """images/s of each ``sides`` callable, timed in turn ``repeat`` times (best of each)."""
    for fn in sides:
        fn()
    best = [float("inf")] * len(sides)
    for _ in range(repeat):
        for i, fn in enumerate(sides):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return [count / b for b in best]


def session(model, threads):
    import onnxruntime
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = threads
    return onnxruntime.InferenceSession(model.SerializeToString(), options,
                                        providers=["CPUExecutionProvider"])


def bench_model(name, args):
    import numpy
    from n2d2py.autograd import no_grad
    from n2d2py.deepnet import DeepNet
    from n2d2py.onnx.export import export_onnx
    from n2d2py.onnx.export_integer import export_integer_onnx
    from n2d2py.qat import fuse_qat
    ini, weights = MODELS[name]
    net = DeepNet.from_ini(str(ini))
    net.import_weights(str(ini.parent / weights))
    net.sp.batch_size = 100
    x = numpy.concatenate([b[0] for b in net.sp.batches("Test", False, None, args.limit)])
    n = len(x)
    rows = []

    # float: the whole --test pass, then forward vs onnxruntime on the same array
    test_rate = best_rate(lambda: net.test(limit=n), n, args.repeat)

    def forward():
        with no_grad():
            return net.forward(x)[net.targets[0].cell].data
    float_session = session(export_onnx(net), args.threads)
    input_name = float_session.get_inputs()[0].name
    theirs = float_session.run(None, {input_name: x})[0]
    ours = forward()
    agree = (ours.reshape(n, -1).argmax(1) == theirs.reshape(n, -1).argmax(1)).mean()
    diff = float(numpy.abs(ours.reshape(theirs.shape) - theirs).max())
    ours_rate, ort_rate = alternate([forward, lambda: float_session.run(None, {input_name: x})],
                                    n, args.repeat)
    rows.append((name, "float --test pass", test_rate, None, None, ""))
    rows.append((name, "float forward (QDQ ONNX)", ours_rate, ort_rate, ours_rate / ort_rate,
                 f"max |diff| {diff:.1e}, argmax agree {agree * 100:.1f} %"))

    # fused integer engine vs the integer ONNX
    fused = fuse_qat(net)
    codes = fused.input_codes(x)
    u8 = codes.astype(numpy.uint8)
    checked = export_integer_onnx(fused, None, all_outputs=True)
    outputs = session(checked, args.threads).run(None, {"env": u8})
    names = [o.name for o in checked.graph.output]
    expected = fused.forward(codes, keep=names)
    equal = sum(numpy.array_equal(numpy.asarray(expected[k]).astype(numpy.int64),
                                  got.astype(numpy.int64))
                for k, got in zip(names, outputs) if got.dtype.kind in "iu")
    integer_nodes = sum(got.dtype.kind in "iu" for got in outputs)
    int_session = session(export_integer_onnx(fused), args.threads)
    ours_rate, ort_rate = alternate([lambda: fused.forward(codes),
                                     lambda: int_session.run(None, {"env": u8})], n, args.repeat)
    fused_test = best_rate(lambda: fused.test(limit=n), n, args.repeat)
    rows.append((name, "fused integer --qat-sat test pass", fused_test, None, None, ""))
    rows.append((name, "fused integer engine (integer ONNX)", ours_rate, ort_rate,
                 ours_rate / ort_rate, f"codes equal on {equal}/{integer_nodes} nodes"))
    result = {"model": name, "float_ratio": rows[1][4], "integer_ratio": rows[3][4],
              "codes_equal": equal == integer_nodes}
    return rows, result


def main(argv=None):
    args = parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "N2D2PY_THREADS"):
        os.environ[var] = str(args.threads)
    sys.path.insert(0, str(ROOT))
    from n2d2py.backend import keep_freed_memory
    keep_freed_memory()  # as the n2d2py command does (backend.py says why)
    try:
        import onnxruntime
    except ImportError:
        print("inference: onnxruntime is not installed (pip install onnxruntime): no peer, "
              "nothing measured", flush=True)
        return
    print(f"inference, {args.threads} thread(s), best of {args.repeat}; onnxruntime "
          f"{onnxruntime.__version__}", flush=True)
    print(f"{'network':10s} {'path':38s} {'n2d2py img/s':>13s} {'ORT img/s':>10s} "
          f"{'ratio':>6s}  check", flush=True)
    for name in args.models:
        rows, result = bench_model(name, args)
        for model, path, ours, theirs, ratio, note in rows:
            print(f"{model:10s} {path:38s} {ours:13.0f} "
                  f"{'' if theirs is None else f'{theirs:10.0f}':>10s} "
                  f"{'' if ratio is None else f'{ratio:6.2f}':>6s}  {note}", flush=True)
        if args.results:
            print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
