"""The ``n2d2py`` command: N2D2's ``n2d2`` executable for INI networks: its options, console
lines and output files.

``main`` parses the options (N2D2's single-dash spellings are accepted), then runs a list of
stages over one ``Run`` context: seed, build, import, learn, reload, test. A new option adds its
arguments in ``add_arguments`` and a stage in ``STAGES``, at the place it belongs in N2D2's flow.
Any ``N2D2Error`` (and an OSError on a user file) prints one line and exits 2; Ctrl-C saves a
consistent state and exits 130.
"""
import argparse
import os
import re
import sys
import time

from .errors import N2D2Error, close_matches

DESCRIPTION = """\
Build, train and test a deep network described by an N2D2 INI file, as CEA's N2D2 does, in
Python on NumPy (or CuPy on a GPU). The INI file names the database ([database]), the input
pipeline ([sp]) and the cells; n2d2py reads it, trains on the Learn set, keeps the weights that
score best on the Validation set and reports the test score: the recognition rate, the
percentage of test images whose highest output is their label. N2D2's single-dash spellings
(-learn-epoch 5, -test, -w DIR) work too."""

EPILOG = """\
examples:
  n2d2py models/LeNet.ini --build-only        print the layers and their sizes, read no data
  n2d2py models/LeNet.ini --learn-epoch 5     train 5 epochs on the bundled MNIST digits, then test
  n2d2py models/LeNet.ini --test              test the weights of a previous run (weights_validation/)
  n2d2py models/LeNet.ini --test -w mydir     test the weights in mydir/
  n2d2py net.ini -learn 60000 -log 10000      N2D2 spelling: 60000 stimuli, validate every 10000

files a run writes, in the current directory (as N2D2 does):
  seed.dat                      the random seed of the run (read back by --test)
  <NET.ini>.png                 a picture of the network
  weights/                      the weights at the end of learning (N2D2's .syntxt text files,
                                with <cell>_weights_quant.distrib.{dat,png} histograms)
  weights_validation/           the weights that scored best on the Validation set
  net_state/                    the whole training state at the last log point (resume: -l DIR)
  net_state_validation/         the same, at the best validation score
  <target>/Success_validation.{dat,png}, Success_learning.dat
                                scores per log point and the learning curves (loss, scores)
  <target>/ConfusionMatrix_test.{dat,png}
                                the test pass's confusion matrix
  with --qat-sat: <NET.ini>.qat.png, weights_quantized/ (the fused integer network)
  with --calib N: calib_int<B>/ (per-layer table, statistics, histograms), <NET.ini>.ptq.png,
                  weights_quantized/
  with --export: <NET>.onnx, <NET>.int.onnx (with --qat-sat) or export_C_int8/ (C99 sources)
  with --bench: timings/inference_timings.dat; with --lps: lps_bits.ini (--lps-output)
  --infer writes only -o OUT.npy; --build-only and --report write nothing (but --report-csv/md)"""

METRICS = ("RecognitionRate", "Sensitivity", "Specificity", "Precision", "NegativePredictiveValue", "MissRate",
           "FallOut", "FalseDiscoveryRate", "FalseOmissionRate", "IU", "Accuracy", "F1Score",
           "Informedness", "Markedness")


def add_arguments(parser):
    """Every option, grouped as in ``n2d2 -h``. Later features add their own group here."""
    parser.add_argument("ini", metavar="NET.ini", help="the network description (N2D2 INI file, "
                        "or an .onnx model run directly)")
    learning = parser.add_argument_group("learning")
    learning.add_argument("--learn-epoch", type=int, default=0, metavar="N",
                          help="train N epochs (Learn set shuffled, without replacement)")
    learning.add_argument("--learn", type=int, default=0, metavar="N",
                          help="train on N stimuli drawn at random (with replacement)")
    learning.add_argument("--log-epoch", type=int, default=1, metavar="N",
                          help="with --learn-epoch: epochs between validations (default 1)")
    learning.add_argument("--log", type=int, default=1000, metavar="N",
                          help="with --learn: stimuli between validations (default 1000)")
    learning.add_argument("--valid-metric", default="RecognitionRate", choices=METRICS, metavar="M",
                          help="validation score that picks the best weights: RecognitionRate "
                               "(default: images right, %%) or one of N2D2's metrics averaged "
                               "over classes (Sensitivity, N2D2's default; Accuracy, F1Score, ...)")
    learning.add_argument("--stop-valid", type=int, default=0, metavar="N",
                          help="stop after N validations without improvement (0: never)")
    learning.add_argument("--seed", type=int, default=0, metavar="N",
                          help="random seed (0: time-based when learning, else read seed.dat)")
    learning.add_argument("-l", "--load-state", dest="load_state", metavar="DIR",
                          help="resume the training saved in DIR (net_state/ or "
                               "net_state_validation/, written at each log point and on Ctrl-C): "
                               "weights, solver and schedule state, position, random generators; "
                               "--learn-epoch/--learn N are the totals to reach")
    data = parser.add_argument_group("data loading (image folders, .npy: ILSVRC2012, GTSRB, NumPy)")
    data.add_argument("--workers", type=int, default=None, metavar="N",
                      help="processes decoding and transforming images (default: [sp] Workers, "
                           "else cores - 1; 0: in the main process); same batches for any N")
    data.add_argument("--skip-bad-images", action="store_true",
                      help="leave out images that cannot be decoded and count them, instead of "
                           "stopping at the first one (N2D2 stops)")
    testing = parser.add_argument_group("testing and weights")
    testing.add_argument("--test", action="store_true", help="run the test pass on the Test set")
    testing.add_argument("--nb-test", type=int, default=-1, metavar="N",
                         help="test only the first N Test stimuli")
    testing.add_argument("-w", dest="weights", metavar="DIR",
                         help="import weights from DIR before learning/testing (/dev/null: none)")
    testing.add_argument("--w-ignore", action="store_true",
                         help="tolerate missing weight files when reloading weights")
    other = parser.add_argument_group("other")
    other.add_argument("--build-only", action="store_true",
                       help="build the network and print its layers; read no data, write nothing")
    other.add_argument("--device", default="auto", choices=("auto", "cpu", "gpu"),
                       help="where to compute (auto: GPU for DefaultModel=Frame_CUDA when CuPy "
                            "is usable, else CPU)")
    other.add_argument("--debug", action="store_true",
                       help="on an internal error (a bug in n2d2py), show its traceback")
    other.add_argument("--bench", action="store_true",
                       help="write per-layer inference timings to timings/inference_timings.dat")
    from .onnx.cli import add_arguments as add_onnx_arguments
    add_onnx_arguments(parser)
    from .qat.command import add_qat_arguments
    add_qat_arguments(parser)
    from .ptq.command import add_ptq_arguments
    add_ptq_arguments(parser)
    from .stats import add_report_arguments
    add_report_arguments(parser)
    from .lps import add_lps_arguments
    add_lps_arguments(parser)
    from .distributed.command import add_arguments as add_distributed_arguments
    add_distributed_arguments(parser)


def normalise_argv(argv):
    """N2D2 spells long options with one dash (``-learn-epoch``); argparse wants two."""
    out = []
    for token in argv:
        if re.fullmatch(r"-[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)+|-[A-Za-z][A-Za-z0-9]+", token) \
                and token not in ("-h",):
            token = "-" + token
        out.append(token)
    return out


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line, ``n2d2py: error: ...``, naming the closest option or
    value (a mistyped option is a typo, not a reason to read the whole usage)."""

    def error(self, message):
        match = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if match:
            choices = re.findall(r"'([^']*)'", match.group(2))
            message += close_matches(match.group(1), choices, n=1)
        self.exit(2, f"{self.prog}: error: {message}; n2d2py --help lists every option\n")

    def unknown(self, extra):
        """One line for the first argument nobody expected, with the closest option."""
        token = extra[0]
        if not token.startswith("-"):
            self.error(f"unexpected argument '{token}' (one NET.ini at a time)")
        name = token.split("=", 1)[0]
        self.error(f"unrecognized option '{name}'"
                   + close_matches(name, self._option_string_actions, n=1))


def parse_args(argv):
    parser = Parser(prog="n2d2py", description=DESCRIPTION, epilog=EPILOG,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args, extra = parser.parse_known_args(normalise_argv(argv))
    if extra:
        parser.unknown(extra)
    return args


class Run:
    """State shared by the stages of one command (``comm``: the ranks of a data-parallel run,
    ``distributed.SINGLE`` for one process; only rank 0 prints and writes)."""

    def __init__(self, args, out, comm=None):
        from .distributed.communicator import SINGLE
        from .progress import Discard
        self.comm = comm if comm is not None else SINGLE
        self.args, self.out = args, out if self.comm.writer else Discard()
        self.net, self.seed, self.learned, self.rng = None, None, False, None
        self.state = None  # checkpoint.Checkpoint of -l DIR

    def say(self, line=""):
        self.out.write(line + "\n")
        self.out.flush()


# -- the seed ----------------------------------------------------------------------------------
SEED_FILE = "seed.dat"
MAX_SEED = 2 ** 32 - 1     # N2D2's seed is an unsigned int


def check_seed(seed, where, file=None):
    """``seed`` (0: none given) must be 0..2^32-1; else an N2D2Error naming ``where``."""
    if not 0 <= seed <= MAX_SEED:
        raise N2D2Error(f"expected a seed from 1 to {MAX_SEED} (0: choose one), got {seed}",
                        file=file, key=None if file else where)
    return seed


def read_seed_file(path):
    """The seed a previous run wrote in ``path`` (``seed.dat``); anything else is an
    N2D2Error naming the file (a FIFO or device is never opened)."""
    from .io.files import regular_file_problem
    problem = regular_file_problem(path)
    if problem:
        raise N2D2Error(f"seed file {problem}", file=path)
    with open(path, "rb") as f:
        words = f.read(64).split()
    if not words or not re.fullmatch(rb"[0-9]{1,10}", words[0]) or int(words[0]) == 0:
        raise N2D2Error(f"expected the seed of a previous run (an integer from 1 to {MAX_SEED}); "
                        f"delete the file or give --seed N", file=path)
    return check_seed(int(words[0]), "seed", file=path)


# -- stages (the order of N2D2's main flow, exec/n2d2.cpp) -------------------------------------
def stage_seed(run):
    if run.comm.size > 1:     # rank 0 chooses (and reads -l DIR), the others receive
        from .distributed.command import share_seed
        share_seed(run, choose_seed)
    else:
        choose_seed(run)
    import numpy
    run.rng = numpy.random.default_rng([run.seed, 1])  # data order; the build uses `seed`


def choose_seed(run):
    args = run.args
    learning = bool(args.learn_epoch or args.learn)
    if args.load_state and learning and not args.build_only:
        from . import checkpoint
        run.state = checkpoint.load(args.load_state)
        saved = run.state.seed
        if args.seed and saved is not None and args.seed != saved:
            run.say(f"Notice: resuming with the seed of '{args.load_state}' ({saved}), not "
                    f"--seed {args.seed}")
        if saved is not None:
            args.seed = saved
    elif args.load_state:
        run.say("Notice: -l DIR is used only when learning (--learn-epoch N or --learn N)")
    check_seed(args.seed, "--seed")
    if args.seed:
        run.seed = args.seed
    elif learning:
        run.seed = int(time.time()) & 0x7FFFFFFF
    elif os.path.lexists(SEED_FILE) and not args.build_only:
        run.seed = read_seed_file(SEED_FILE)
    else:
        run.seed = 1  # N2D2 requires seed.dat here; without learning the seed rarely matters
    if not args.build_only:   # validated above: a refused seed never reaches the file
        from .folders import replace_file_atomically
        replace_file_atomically(SEED_FILE, lambda f: f.write(f"{run.seed}\n"))


def stage_build(run):
    from .deepnet import DeepNet
    args = run.args
    run.say(f"Loading network configuration file {args.ini}")
    if os.path.isdir(args.ini):
        raise IsADirectoryError(21, "is a directory, expected an INI or ONNX file", args.ini)
    if not os.path.isfile(args.ini):
        raise FileNotFoundError(2, "No such file", args.ini)
    device = None if args.device == "auto" else args.device
    from .onnx.cli import build_net, is_onnx
    if is_onnx(args.ini):  # an .onnx run directly, as N2D2 does (no database)
        run.net = build_net(args, device, run.seed)
    else:
        run.net = DeepNet.from_ini(args.ini, device=device, seed=run.seed, load_data=not args.build_only)
    for line in run.net.warnings():
        run.say(str(line))
    for warning in getattr(run.net.document, "warnings", ()):
        run.say(str(warning))
    run.say(run.net.summary())
    if args.build_only:
        return "stop"
    if run.net.sp is not None:
        if args.workers is not None:
            run.net.sp.workers = max(0, args.workers)
        run.net.sp.skip_bad_images |= args.skip_bad_images
    from .scoring import set_size
    for label, name in (("Learning", "Learn"), ("Validation", "Validation"), ("Testing", "Test")):
        run.say(f"{label} database size: {set_size(run.net, name)} images")
    if run.comm.writer:
        try:
            from .report.plots import network_graph_png
            network_graph_png(run.net, os.path.basename(args.ini) + ".png")
        except Exception as exc:  # a picture must never stop a run
            run.say(f"Notice: network picture not written ({exc})")
    return None


def stage_import(run):
    """``-w DIR``: missing files are notices, as in N2D2 (it imports them with
    ignoreNotExists). Replicas:
    rank 0 reads, ``stage_replicate`` gives the others its weights."""
    if run.args.weights and run.comm.writer:
        if os.fspath(run.args.weights) != os.devnull:
            run.say(f"Importing weights from directory '{run.args.weights}'.")
        for notice in run.net.import_weights(run.args.weights, ignore_missing=True):
            run.say(notice)


def stage_replicate(run):
    """A command launched as K processes (mpiexec, srun): the network becomes replica
    ``rank`` of K (distributed/command.py), starting from rank 0's weights."""
    if run.comm.size > 1:
        from .distributed.command import replicate
        replicate(run)


def stage_learn(run):
    args = run.args
    if not (args.learn_epoch or args.learn):
        return None
    from .quantizers.sat import step_gain_notice
    notice = step_gain_notice(run.net.cells.values())
    if notice:
        run.say(notice)
    start = time.perf_counter()
    history = run.net.learn(epochs=args.learn_epoch or None, stimuli=None if args.learn_epoch else args.learn,
                            log_epoch=args.log_epoch, log=args.log, valid_metric=args.valid_metric,
                            stop_valid=args.stop_valid, rng=run.rng, out=run.out,
                            reload_best=False, resume=run.state, seed=run.seed)
    seconds = time.perf_counter() - start
    run.say(f"Learning done: {history.stimuli} images in {seconds:.2f} s "
            f"({history.stimuli / max(seconds, 1e-9):.0f} img/s)")
    if run.net.replicas is not None:
        run.say(run.net.replicas.timing_line(seconds))
    run.learned = True
    return None


def stage_reload(run):
    """As N2D2 does after its loops: the best weights after learning; before a bare --test, the
    weights of a previous run unless -w was given."""
    from .scoring import reload_best_weights
    if run.learned or (run.args.test and not run.args.weights):
        folder = reload_best_weights(run.net, run.args.w_ignore)
        run.say(f"Weights loaded from '{folder}'")


def stage_calib(run):
    """``--calib N``: post-training quantization of the weights in hand (N2D2's
    ``-calib``; docs/PTQ.md)."""
    if run.args.calib:
        from .ptq.command import run_calibration
        return run_calibration(run)
    return None


def stage_test(run):
    args = run.args
    if not (run.learned or args.test):
        if not args.weights:
            run.say("Nothing to do: give --learn-epoch N, --learn N or --test (see --help)")
        return None
    if args.qat_sat:  # N2D2's -qat-sat: fuse, then test the integer network
        if run.comm.size > 1:      # rank 0 alone, on the whole sets
            if not run.comm.writer:
                return None
            from .distributed.replicas import detach
            detach(run.net)
        from .qat import run_qat_sat
        run_qat_sat(run.net, args, run.out)
        return None
    if args.bench:
        run.net.timings = {}
    limit = args.nb_test if args.nb_test >= 0 else None
    result = run.net.test(limit=limit, out=run.out, workdir=".")
    run.say(f"Test pass: {result.nb_stimuli} images in {result.seconds:.2f} s")
    if args.bench:
        os.makedirs("timings", exist_ok=True)
        from .folders import replace_file_atomically
        text = "".join(f"{name} {seconds:.6g}\n" for name, seconds in run.net.timings.items())
        replace_file_atomically(os.path.join("timings", "inference_timings.dat"),
                                lambda f: f.write(text))
    return None


def stage_infer(run):
    from .onnx.cli import stage_infer as infer
    return infer(run)


def stage_export(run):
    from .onnx.cli import stage_export as export
    return export(run)


def stage_report(run):
    """``--report``: size and BitOps per layer, built without data (issue: seeds' comparison)."""
    if run.args.report:
        from .stats import report_main
        report_main(run.args.ini, run.args, run.out)
        return "stop"
    return None


def stage_lps(run):
    """``--lps``: Layer-wise Precision Scaling from trained ``-w`` weights (Wess et al.
    2018)."""
    if run.args.lps:
        from .lps import lps_main
        lps_main(run.args.ini, run.args, run.out, net=run.net)
        return "stop"
    return None


STAGES = [stage_infer, stage_report, stage_seed, stage_build, stage_import, stage_export,
          stage_lps, stage_replicate, stage_learn, stage_reload, stage_calib, stage_test]


def main(argv=None):
    """Entry point ``n2d2py``; returns the exit status (0, 2 on a user error, 130 on Ctrl-C,
    143 on SIGTERM: both save weights/ and net_state/ when learning)."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from .distributed.command import start
    try:
        comm = start(args)   # launched as K processes: this rank's communicator (DISTRIBUTED.md)
    except N2D2Error as exc:
        return fail(str(exc))
    from .backend import keep_freed_memory
    keep_freed_memory()
    run = Run(args, sys.stdout, comm)
    import contextlib
    import signal
    import threading
    from .signals import Terminated, deferred_signals, raise_terminated
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, raise_terminated)  # SIGTERM acts as Ctrl-C
    from .guard import user_input_errors
    import numpy
    # replicas hold Ctrl-C/SIGTERM all along: the training loop shares them at every step
    # (all replicas stop after the same one); outside it they wait for the command's end
    held = deferred_signals() if comm.size > 1 else contextlib.nullcontext()
    try:
        # anything unexpected: one line, no traceback; NaN and Inf are found and reported by
        # the training loop itself (one line naming the cell), not by NumPy's warnings
        with held, user_input_errors(place=args.ini, debug=args.debug), \
                run_folder_lock(args, comm), numpy.errstate(all="ignore"):
            for stage in STAGES:
                if stage(run) == "stop":
                    break
    except N2D2Error as exc:
        return fail(str(exc), comm, exc)
    except OSError as exc:
        place = exc.filename if exc.filename else ""
        return fail(f"{place}: {exc.strerror or exc}" if place else str(exc), comm)
    except KeyboardInterrupt as exc:
        saved = " (current weights saved in 'weights/')" if run.net is not None and \
            getattr(run.net, "history", None) is not None else ""
        sys.stdout.flush()
        word, code = ("terminated", 143) if isinstance(exc, Terminated) else ("interrupted", 130)
        if comm.writer:
            sys.stderr.write(f"\nn2d2py: {word}{saved}\n")
        return code
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        end_data(run)
        end_ranks(comm)
    return 0


def end_ranks(comm):
    """Replicas leave together (a rank that left early would look dead to the others'
    watchdogs while rank 0 still writes)."""
    if comm.size > 1:
        try:
            comm.barrier()
        finally:
            comm.close()


def end_data(run):
    """Stop the loader's workers; print how many unreadable images were skipped."""
    loader = sys.modules.get("n2d2py.data.loader")
    if loader is not None:
        loader.close_all()
    skipped = getattr(getattr(run.net, "sp", None), "skipped", None)
    if skipped:
        path, reason = next(iter(skipped.items()))
        sys.stdout.flush()
        sys.stderr.write(f"n2d2py: {len(skipped)} unreadable image(s) skipped (first: {path}: "
                         f"{reason})\n")


def run_folder_lock(args, comm=None):
    """The run folder's lock (``runlock.py``) for a command that writes in it; --build-only,
    --infer and --report write nothing there and run beside a training. Of the replicas of a
    data-parallel run, rank 0 (the one that writes) holds it."""
    import contextlib
    if args.build_only or args.infer or getattr(args, "report", False) or \
            (comm is not None and not comm.writer):
        return contextlib.nullcontext()
    from .runlock import RunLock
    return RunLock(".")


def fail(message, comm=None, exc=None):
    """Print the one error line; a data-parallel rank says it as its own and ends the run
    (``distributed.command.fail``)."""
    if comm is not None and comm.size > 1:
        from .distributed.command import fail as fail_rank
        return fail_rank(comm, message, exc)
    sys.stdout.flush()
    sys.stderr.write("n2d2py: error: " + " ".join(message.splitlines()) + "\n")
    return 2


if __name__ == "__main__":
    sys.exit(main())
