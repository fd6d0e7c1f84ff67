"""``n2d2py NET.ini --test --qat-sat -w DIR``: the CLI side of the fusion
(docs/FUSION.md).

``run_qat_sat(net, args, out)`` runs N2D2's order on a DeepNet whose weights are imported: fuse
with the four modes, draw the fused graph (``<ini>.qat.png``), write ``weights_quantized/``
atomically, test the fused network and print N2D2's "Final recognition rate" lines; with
``args.export`` also write the C99 sources there (``export_c.export_c_command``; a network they
cannot express is refused before anything is written). ``args`` is any object with the
attributes below (argparse namespace); missing ones take N2D2's defaults:

``act_rescaling_mode`` ("Floating-point"), ``wt_round_mode``, ``b_round_mode``, ``c_round_mode``
("NONE"), ``n2d2_compat`` (False), ``nb_test`` (-1: all), ``export`` (None, or "C": C99 sources
in export_C_int8/, or a folder), ``pack_weights`` (False), ``export_stimuli`` (None: no
stimuli; N, -1: all), ``ini`` (for the PNG
name), ``workdir`` (".").

``add_qat_arguments(parser)`` adds those options (N2D2's single-dash spellings work through the
CLI's ``normalise_argv``).
"""
import os
import sys

from .fuse import fuse_qat

__all__ = ["run_qat_sat", "add_qat_arguments"]


def add_qat_arguments(parser):
    group = parser.add_argument_group("quantization-aware training (-qat-sat)")
    group.add_argument("--qat-sat", action="store_true",
                       help="fuse BatchNorm + SAT quantizers into an integer network, then test it")
    group.add_argument("--act-rescaling-mode", default="Floating-point", metavar="M",
                       help="Floating-point (default), Fixed-point16, Fixed-point32, Single-shift, "
                            "Double-shift (also for --calib)")
    for name in ("wt", "b", "c"):
        what = {"wt": "weights", "b": "biases", "c": "clip values"}[name]
        group.add_argument(f"--{name}-round-mode", default="NONE", metavar="M",
                           help=f"NONE (default) or RINTF: round the fused {what}")
    group.add_argument("--n2d2-compat", action="store_true",
                       help="reproduce N2D2's fused simulation bit for bit (signed FC saturation, ...)")


def run_qat_sat(net, args, out=None):
    """Fuse, draw, export, test (see the module docstring). Returns (FusedNet, TestResult)."""
    out = sys.stdout if out is None else out
    get = lambda name, default: getattr(args, name, default) if getattr(args, name, None) is not None else default  # noqa: E731
    fused = fuse_qat(net, get("act_rescaling_mode", "Floating-point"), get("wt_round_mode", "NONE"),
                     get("b_round_mode", "NONE"), get("c_round_mode", "NONE"),
                     n2d2_compat=get("n2d2_compat", False))
    workdir = get("workdir", ".")
    o = fused.options
    out.write(f"Fusing BatchNorm and SAT quantizers (act rescaling {o.act_scaling_mode}, weights "
              f"{o.w_mode}, biases {o.b_mode}, clips {o.c_mode}"
              f"{', N2D2-compatible' if o.n2d2_compat else ''})\n")
    export = get("export", None)  # --export C (cli's export stage handles it without --test)
    program = None
    if export:                    # refused (nothing written) when the C code cannot express it
        from .export_c import CProgram
        program = CProgram(fused, get("pack_weights", False))
    ini = get("ini", None)
    png = os.path.join(workdir, (os.path.basename(ini) if ini else "network") + ".qat.png")
    try:
        from .draw import draw_fused
        draw_fused(fused, png)
    except Exception as exc:   # a picture must never stop a run
        out.write(f"Notice: fused network picture not written ({exc})\n")
    from .export import export_weights_quantized
    export_weights_quantized(fused, os.path.join(workdir, "weights_quantized"))
    if export:
        from .export_c import export_c_command
        folder = "export_C_int8" if str(export).upper() == "C" else export
        export_c_command(fused, folder, program.pack_weights, get("export_stimuli", None),
                         lambda line: out.write(line + "\n"))
    nb_test = get("nb_test", -1)
    result = fused.test(limit=nb_test if nb_test >= 0 else None, out=out)
    out.write(f"Test pass (fused integer network): {result.nb_stimuli} stimuli in "
              f"{result.seconds:.2f} s\n")
    out.flush()
    return fused, result
