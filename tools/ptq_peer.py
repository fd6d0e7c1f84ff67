"""Post-training quantization side by side: n2d2py's ``--calib`` modes and onnxruntime's
``quantize_static`` (MinMax, Entropy, Percentile) on the same float model, the same calibration
stimuli and the same test stimuli.

    python tools/ptq_peer.py models/LeNet.ini -w weights_validation --bits 8 4

n2d2py: every activation clipping mode (None, MSE, KL-Divergence, Quantile), every weight
clipping mode (None, MSE, KL-Divergence; ``--wt-clipping-mode`` picks some), weight scales per
layer and per output channel, Floating-point rescaling, cross-layer equalization (N2D2's
default; ``--no-cle``: without); the integer engine's and the
fake-quantized network's Test scores, and the weights' bytes at B bits. onnxruntime: the DeepNet
exported as float ONNX (``n2d2py.onnx.export_onnx``), ``quantize_static`` in QDQ format with
unsigned activations and signed weights (QUInt8/QInt8 at 8 bits, QUInt4/QInt4 at 4 bits, the
smallest width it has; weights are never clipped), per tensor and per channel, calibrated on the
same stimuli one at a time (its Entropy and Percentile calibrators stack their batches, so a
shorter last batch is refused);
scored with its default session (QLinear integer kernels where it has them), or with graph
optimisations off when that session refuses the model (4-bit tensors into MaxPool), which runs
the QDQ graph in float. onnxruntime is optional: without it only n2d2py's rows are printed.
Calibration time (wall clock, same run): n2d2py's ``calibrate`` (statistics pass, thresholds,
integer network) and onnxruntime's ``quantize_static`` (its calibration pass and the QDQ model).
Output: a Markdown table (``--out`` writes it to a file too).
"""
import argparse
import contextlib
import os
import sys
import tempfile
import time

import numpy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tools", "bench"))
from loader import cpu_model  # noqa: E402  (tools/bench/loader.py: the CPU's name)

MODES = ("None", "MSE", "KL-Divergence", "Quantile")
ORT_METHODS = ("MinMax", "Entropy", "Percentile")
WEIGHT_MODES = ("None", "MSE", "KL-Divergence")


def stimuli(net, set_name, limit=None):
    xs, ys = [], []
    for x, labels, _ in net.sp.batches(set_name, False, None, limit):
        xs.append(x)
        ys.append(labels)
    return numpy.concatenate(xs), numpy.concatenate(ys)


def ours(net, bits, calib, weight_modes, cle=True):
    from n2d2py.ptq import PTQOptions, calibrate
    from n2d2py.qat.export_c import weight_memory
    rows = []
    for weight_mode in weight_modes:
        for per_output in (False, True):
            for mode in MODES:
                options = PTQOptions(bits, mode, weight_mode, per_output=per_output,
                                     cross_layer_equalization=cle)
                start = time.perf_counter()
                fused = calibrate(net, options, calib)
                seconds = time.perf_counter() - start
                integer = fused.test().recognition_rate
                fake = fused.fake_quantized().test().recognition_rate
                size = sum(r["range_bytes"] for r in weight_memory(fused))
                per = "channel" if per_output else "layer"
                rows.append((bits, "n2d2py", mode, weight_mode, per, fake, integer, size,
                             seconds))
                print(f"  n2d2py {bits} bits, {mode}, weights {weight_mode}, per {per}: "
                      f"{integer:.2f} %", file=sys.stderr)
    return rows


def onnxruntime_rows(net, bits, calib, folder):
    try:
        import onnxruntime as ort
        from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod,
                                              QuantFormat, QuantType, quantize_static)
    except ImportError:
        return [], "onnxruntime is not installed: its rows are left out"
    from n2d2py.onnx.export import export_onnx
    from n2d2py.scoring import set_size
    from n2d2py.ptq.calibration import calibration_set
    set_name = calibration_set(net)
    limit = None if calib < 0 else min(calib, set_size(net, set_name))
    cal_x, _ = stimuli(net, set_name, limit)
    test_x, test_y = stimuli(net, "Test")
    model = os.path.join(folder, "float.onnx")
    export_onnx(net, model)
    input_name = ort.InferenceSession(model).get_inputs()[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(range(len(cal_x)))

        def get_next(self):
            i = next(self.items, None)
            return None if i is None else {input_name: cal_x[i:i + 1]}

    def score(path):
        try:
            session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
            how = "default session"
        except Exception:   # int4 tensors the optimised graph cannot place (MaxPool)
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
            how = "QDQ in float (optimisations off)"
        out = session.run(None, {input_name: test_x})[0].reshape(len(test_x), -1)
        return 100.0 * float((out.argmax(axis=1) == test_y).mean()), how

    types = {8: (QuantType.QUInt8, QuantType.QInt8), 4: (QuantType.QUInt4, QuantType.QInt4)}
    if bits not in types:
        return [], f"onnxruntime has no {bits}-bit type"
    rows, hows = [], set()
    for method in ORT_METHODS:
        for per_channel in (False, True):
            path = os.path.join(folder, f"q{bits}_{method}_{int(per_channel)}.onnx")
            start = time.perf_counter()
            with contextlib.redirect_stdout(sys.stderr):   # its calibrators print
                quantize_static(model, path, Reader(), quant_format=QuantFormat.QDQ,
                                activation_type=types[bits][0], weight_type=types[bits][1],
                                calibrate_method=getattr(CalibrationMethod, method),
                                per_channel=per_channel)
            seconds = time.perf_counter() - start
            rate, how = score(path)
            hows.add(how)
            per = "channel" if per_channel else "tensor"
            rows.append((bits, "onnxruntime", method, "None", per, None, rate, None, seconds))
            print(f"  onnxruntime {bits} bits, {method}, per {per}: {rate:.2f} % "
                  f"({how})", file=sys.stderr)
    return rows, f"onnxruntime {ort.__version__}, {bits} bits: {', '.join(sorted(hows))}"


def table(float_rate, rows, notes):
    lines = [f"Float network: {float_rate:.2f} %", "",
             "| bits | tool | activation clipping | weight clipping | weight scales | "
             "fake-quantized % | integer % | weight bytes | calibration s |",
             "|---:|---|---|---|---|---:|---:|---:|---:|"]
    for bits, tool, mode, weight_mode, per, fake, integer, size, seconds in rows:
        fake_text = "" if fake is None else f"{fake:.2f}"
        size_text = "" if size is None else f"{size:.0f}"
        lines.append(f"| {bits} | {tool} | {mode} | {weight_mode} | per {per} | {fake_text} | "
                     f"{integer:.2f} | {size_text} | {seconds:.1f} |")
    lines += [""] + [f"* {n}" for n in notes]
    best = {}
    for bits, tool, _, _, _, _, integer, _, _ in rows:
        best[(bits, tool)] = max(best.get((bits, tool), 0.0), integer)
    for bits in sorted({r[0] for r in rows}, reverse=True):
        if (bits, "onnxruntime") in best:
            ok = best[(bits, "n2d2py")] >= best[(bits, "onnxruntime")]
            lines.append(f"* {bits} bits: best n2d2py {best[(bits, 'n2d2py')]:.2f} %, best "
                         f"onnxruntime {best[(bits, 'onnxruntime')]:.2f} %: "
                         f"{'n2d2py at least as accurate' if ok else 'onnxruntime ahead'}")
            seconds = {tool: numpy.median([r[8] for r in rows if r[0] == bits and r[1] == tool])
                       for tool in ("n2d2py", "onnxruntime")}
            lines.append(f"* {bits} bits, median calibration time: n2d2py {seconds['n2d2py']:.2f} "
                         f"s, onnxruntime {seconds['onnxruntime']:.2f} s (onnxruntime / n2d2py: "
                         f"{seconds['onnxruntime'] / seconds['n2d2py']:.1f}x)")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ini")
    parser.add_argument("-w", dest="weights", required=True)
    parser.add_argument("--bits", type=int, nargs="+", default=[8, 4])
    parser.add_argument("--calib", type=int, default=-1)
    parser.add_argument("--wt-clipping-mode", nargs="+", default=list(WEIGHT_MODES),
                        choices=WEIGHT_MODES, help="n2d2py's weight clipping modes to try")
    parser.add_argument("--no-cle", action="store_true",
                        help="n2d2py without cross-layer equalization (N2D2's -no-cle)")
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    from n2d2py.deepnet import DeepNet
    net = DeepNet.from_ini(args.ini)
    net.import_weights(args.weights)
    float_rate = net.test().recognition_rate
    rows, notes = [], []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        for bits in args.bits:
            rows += ours(net, bits, args.calib, args.wt_clipping_mode, not args.no_cle)
            peer, note = onnxruntime_rows(net, bits, args.calib, folder)
            rows += peer
            notes.append(note)
    notes.append(f"n2d2py: cross-layer equalization {'off (--no-cle)' if args.no_cle else 'on'}")
    notes.append(f"{time.perf_counter() - start:.0f} s on {cpu_model()}")
    text = table(float_rate, rows, notes)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
