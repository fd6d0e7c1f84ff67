"""The command line's ONNX side: ``n2d2py MODEL.onnx ...`` (as ``n2d2 MODEL.onnx``),
``--infer IN.npy -o OUT.npy`` and ``--export ONNX|C``.

``cli.py`` adds ``add_arguments`` to its parser and the stages ``stage_infer`` (before the
seed: inference reads no database and writes no seed.dat) and ``stage_export`` (after the -w
import; N2D2's ``-export`` also exits before learning).
"""
import os

from ..errors import N2D2Error, OnnxError

EXPORT_TYPES = ("ONNX", "C")


def add_arguments(parser):
    group = parser.add_argument_group("ONNX and export")
    group.add_argument("--infer", metavar="IN.npy",
                       help="run the network (NET.ini or MODEL.onnx) on the array in IN.npy "
                            "(.npz: one array per ONNX input) and write -o OUT.npy (.npz when "
                            "there are several outputs); with -w DIR for an INI")
    group.add_argument("-o", dest="output", metavar="OUT.npy", default="out.npy",
                       help="with --infer: where to write the outputs (default out.npy)")
    group.add_argument("--export", metavar="TYPE", type=str.upper, choices=EXPORT_TYPES,
                       help="ONNX: write <ini basename>.onnx (float, or QDQ with SAT/LSQ "
                            "quantizers) after importing -w weights; with --qat-sat the fused "
                            "integer network as <ini basename>.int.onnx; C: the fused integer "
                            "network's C99 sources (n2d2py.qat), in export_C_int8/")
    group.add_argument("--export-stimuli", "--export-nb-stimuli-max", dest="export_stimuli",
                       type=int, metavar="N",
                       help="with --export C: also write the first N test stimuli with their "
                            "labels (stimuli.bin; -1: all) and the integer engine's classes "
                            "(expected.txt): 'make run' scores them, 'make check' compares")
    group.add_argument("--pack-weights", action="store_true",
                       help="with --export C: store the weights at their bit width (two 4-bit "
                            "or four 2-bit weights per byte), unpacked in the kernels")


def is_onnx(path):
    return os.fspath(path).lower().endswith(".onnx")


def stage_infer(run):
    """``--infer``: one inference, nothing else; an ``.onnx`` run directly has no database, so
    learning and testing are refused (N2D2 would run them on an empty set)."""
    args = run.args
    if args.infer:
        from .runner import infer_file
        device = "cpu" if args.device == "auto" else args.device
        path = infer_file(args.ini, args.infer, args.output, device=device, weights=args.weights)
        run.say(f"Outputs of '{args.ini}' on '{args.infer}' written to '{path}'")
        return "stop"
    calib = getattr(args, "calib", 0)
    if is_onnx(args.ini) and (args.test or args.learn or args.learn_epoch or calib):
        option = "--test" if args.test else "--learn-epoch" if args.learn_epoch else \
            "--learn" if args.learn else "--calib"
        raise OnnxError(f"{option} needs a database, and an .onnx file run directly has none: "
                        f"write an INI with [database], [sp] and a Type=ONNX section "
                        f"(File={args.ini}); an .onnx file alone supports --build-only, "
                        f"--infer and --export")
    return None


def build_net(args, device, seed):
    """The DeepNet of an ``.onnx`` positional argument (``cli.stage_build``): ``from_ini`` on the
    document N2D2 makes up for it; when the graph has no Softmax (no automatic target), a plain
    ``Target`` on the last imported cell, so that inference and export work."""
    from ..deepnet import DeepNet
    from ..target import Target
    from .section import onnx_document
    if not os.path.isfile(args.ini):
        raise FileNotFoundError(2, "No such file", args.ini)
    net = DeepNet.from_ini(onnx_document(args.ini), device=device, seed=seed, load_data=False,
                           require_target=False)
    if not net.cells:
        raise OnnxError(f"'{args.ini}' imports no cell")
    if not net.targets:
        last = list(net.cells)[-1]
        net.targets.append(Target(name=f"{last}.Target", cell=last))
        net.targets[0].loss_kind = None
    return net


def stage_export(run):
    """``--export ONNX`` → ``<ini basename>.onnx``; with ``--qat-sat`` the fused integer network
    as ``<ini basename>.int.onnx`` (``export_integer.py``); ``--export C`` → ``n2d2py.qat``'s C99
    export of the fused integer network. All stop the run, as N2D2's ``-export`` does."""
    args = run.args
    c_options = [o for o, v in (("--export-stimuli", getattr(args, "export_stimuli", None)),
                                ("--pack-weights", getattr(args, "pack_weights", False)))
                 if v not in (None, False)]
    if c_options and getattr(args, "export", None) != "C":
        raise N2D2Error(f"{' and '.join(c_options)} go with --export C")
    if not getattr(args, "export", None) or getattr(args, "calib", 0):
        return None   # --calib exports the calibrated network (ptq/command.py)
    base = os.path.splitext(os.path.basename(args.ini))[0]
    if args.export == "ONNX" and not getattr(args, "qat_sat", False):
        from .export import export_onnx
        path = f"{base}.onnx" if not is_onnx(args.ini) else f"{base}.export.onnx"
        export_onnx(run.net, path)
        run.say(f"ONNX export written to '{path}'")
        return "stop"
    fused = fuse(run.net, args)
    if args.export == "ONNX":
        from .export_integer import export_integer_onnx
        path = f"{base}.int.onnx"
        export_integer_onnx(fused, path)
        run.say(f"Integer ONNX export of the fused network written to '{path}'")
        return "stop"
    from ..qat.export_c import export_c_command
    export_c_command(fused, "export_C_int8", getattr(args, "pack_weights", False),
                     getattr(args, "export_stimuli", None), run.say)
    return "stop"


def fuse(net, args):
    """``qat.fuse_qat`` with the ``--qat-sat`` options of ``args`` (N2D2's defaults if absent)."""
    from ..qat import fuse_qat
    get = lambda name, default: getattr(args, name, None) or default  # noqa: E731
    return fuse_qat(net, get("act_rescaling_mode", "Floating-point"), get("wt_round_mode", "NONE"),
                    get("b_round_mode", "NONE"), get("c_round_mode", "NONE"),
                    n2d2_compat=bool(get("n2d2_compat", False)))


__all__ = ["add_arguments", "stage_infer", "stage_export", "build_net", "is_onnx"]
