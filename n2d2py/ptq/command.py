"""``n2d2py NET.ini -w DIR --calib N [--test] [--export C|ONNX]``: the CLI side of
post-training quantization (N2D2's ``-calib`` options and spellings).

``run_calibration(run)`` (the ``cli`` stage after learning and weight reloading): calibrate,
write ``calib_int<B>/`` (table, statistics, histogram pictures), ``weights_quantized/`` and
the picture of the integer network (``<ini>.ptq.png``); with ``--export`` the C99 sources
(``export_C_int<B>/``, ``qat/export_c.py``: integer-only in the integer rescaling modes; a
network it cannot express is refused before anything is written; ``--pack-weights``,
``--export-stimuli N``) or the integer ONNX model (``<ini>.int.onnx``); with ``--test`` the Test
set is scored three times: the float network, the fake-quantized one (N2D2's simulator) and the
integer engine.
"""
import os
import time

from ..errors import N2D2Error

__all__ = ["add_ptq_arguments", "run_calibration", "options_from"]


def _flag_value(text):
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)


def add_ptq_arguments(parser):
    group = parser.add_argument_group(
        "post-training quantization (-calib): a trained float network to an integer one")
    group.add_argument("--calib", type=int, default=0, metavar="N",
                       help="calibrate on the first N Validation stimuli (Test when Validation "
                            "is empty; -1: all of them) and quantize to --nbbits integers")
    group.add_argument("--calib-reload", action="store_true",
                       help="reuse the statistics of a previous calibration (calib_int<B>/)")
    group.add_argument("--nbbits", type=int, default=8, metavar="B",
                       help="bits of weights and activations, 2 to 16 (default 8)")
    group.add_argument("--act-clipping-mode", default="MSE", metavar="M",
                       help="activation thresholds: None (max), MSE (default), KL-Divergence, "
                            "Quantile")
    group.add_argument("--act-quantile-value", type=float, default=0.9999, metavar="Q",
                       help="the quantile of --act-clipping-mode Quantile (default 0.9999)")
    group.add_argument("--wt-clipping-mode", default="None", metavar="M",
                       help="weight clipping before scaling: None (default), MSE, KL-Divergence")
    group.add_argument("--act-rescale-per-output", nargs="?", const=True, default=False,
                       type=_flag_value, metavar="0|1",
                       help="one weight scale per output channel (default: per layer)")
    group.add_argument("--no-unsigned", action="store_true",
                       help="signed codes everywhere (default: ReLU outputs unsigned)")
    group.add_argument("--no-cle", action="store_true",
                       help="no cross-layer equalization of consecutive layers' weight ranges "
                            "before calibrating (on by default, as N2D2's)")


def options_from(args):
    from .options import PTQOptions
    return PTQOptions(bits=args.nbbits, act_clipping_mode=args.act_clipping_mode,
                      wt_clipping_mode=args.wt_clipping_mode,
                      act_scaling_mode=getattr(args, "act_rescaling_mode", "Floating-point"),
                      per_output=args.act_rescale_per_output, quantile=args.act_quantile_value,
                      unsigned=not args.no_unsigned,
                      cross_layer_equalization=not getattr(args, "no_cle", False))


def run_calibration(run):
    """The ``--calib`` stage (see the module docstring). Returns "stop"."""
    from ..progress import Progress
    from .calibration import calibrate, calibration_set
    from .report import format_table, write_folder
    args, net = run.args, run.net
    if not (args.weights or run.learned or args.test):
        run.say("Notice: no -w DIR: calibrating the weights the network was built with (an "
                "ONNX model's, or the fillers' when untrained)")
    if getattr(args, "qat_sat", False):
        raise N2D2Error("--calib and --qat-sat are two ways to an integer network: give one "
                        "(--qat-sat fuses a SAT-trained network, --calib quantizes a float one)")
    options = options_from(args)
    folder = f"calib_int{options.bits}"
    run.say(f"Post-training quantization: {options.describe()}")
    progress = Progress(run.out)
    reload = args.calib_reload and os.path.isfile(os.path.join(folder, "outputs_range.bin"))
    if reload and not os.path.isfile(os.path.join(folder, "calibration.json")):
        run.say(f"Notice: '{folder}/' has no calibration.json (N2D2's files?): its statistics "
                f"are used as they are, nothing says they come from these weights")
    if args.calib_reload and not reload:
        run.say(f"Notice: --calib-reload: no statistics in '{folder}/' yet, calibrating")
    if not reload:
        set_name = calibration_set(net)
        from ..scoring import set_size
        total = set_size(net, set_name)
        total = total if args.calib < 0 else min(args.calib, total)
        run.say(f"Calibrating on {total} {set_name} stimuli...")
        progress.begin("calibration", total)
    start = time.perf_counter()
    fused = calibrate(net, options, args.calib, folder, reload, progress.step)
    progress.close()
    if fused.equalization is not None:
        run.say(fused.equalization.summary())
    what = "reloaded from" if fused.reloaded else f"{fused.stats.count} {fused.stats.set_name} " \
        f"stimuli in {time.perf_counter() - start:.2f} s; saved in"
    for notice in fused.notices:
        run.say(notice)
    program = None
    if getattr(args, "export", None) == "C":   # refused before anything is written
        from ..qat.export_c import CProgram
        program = CProgram(fused, getattr(args, "pack_weights", False))
    write_folder(fused, folder)
    run.say(f"Calibration statistics {what} '{folder}/' (layers.dat, histograms/)")
    run.out.write(format_table(fused))
    base = os.path.basename(args.ini)
    try:
        from ..qat.draw import draw_fused
        draw_fused(fused, f"{base}.ptq.png")
    except Exception as exc:   # a picture must never stop a run
        run.say(f"Notice: integer network picture not written ({exc})")
    from ..qat.export import export_weights_quantized
    export_weights_quantized(fused, "weights_quantized")
    run.say("Integer weights written to 'weights_quantized/' (scaling.json: every rescale)")
    if getattr(args, "export", None):
        export(run, fused, options, program)
    if args.test:
        test(run, fused)
    return "stop"


def export(run, fused, options, program):
    base = os.path.splitext(os.path.basename(run.args.ini))[0]
    if run.args.export == "ONNX":
        from ..onnx.export_integer import export_integer_onnx
        path = f"{base}.int.onnx"
        export_integer_onnx(fused, path)
        run.say(f"Integer ONNX export of the calibrated network written to '{path}'")
        return
    from ..qat.export_c import export_c_command
    folder = f"export_C_int{options.bits}"
    export_c_command(fused, folder, program.pack_weights, getattr(run.args, "export_stimuli", None),
                     run.say, program=program)


def test(run, fused):
    from ..scoring import set_size
    limit = run.args.nb_test if run.args.nb_test >= 0 else None
    if set_size(run.net, "Test") == 0:
        raise N2D2Error("--test: the Test set is empty")
    from ..report.text import final_lines
    rates = []
    for label, net, scorer in (
            ("float network", run.net, lambda: run.net.test(limit=limit)),
            ("fake-quantized network (N2D2's simulator: integer codes in float64)", fused,
             lambda: fused.fake_quantized().test(limit=limit)),
            ("integer network (integer engine, as the C and ONNX exports)", fused,
             lambda: fused.test(limit=limit))):
        start = time.perf_counter()
        result = scorer()
        run.say(f"Test pass, {label}: {result.nb_stimuli} images in "
                f"{time.perf_counter() - start:.2f} s")
        for target in net.targets:
            if target.scored:
                run.say("  " + final_lines(target).splitlines()[0])
        rates.append(result.recognition_rate)
    if rates[1] != rates[2]:
        run.say("Warning: the fake-quantized and integer scores differ: please report it")
