"""Scoring passes without gradients, as the ``n2d2`` executable runs them: ``test`` (the Test set,
N2D2's final lines and confusion matrices), ``validate_and_keep`` (a Validation pass during
learning: BEST/LOWER lines, ``weights_validation/``, early stop) and ``reload_best_weights``."""
import os
import time

from .autograd import no_grad
from .folders import output_atomically, recover_folder
from .io.names import cell_file
from .progress import Progress
from .report import text


class TestResult:
    """Scores of one pass for the primary TargetScore, in percent like the command prints them.

    ``recognition_rate``: the headline score, the percentage of images whose highest output is
    their label (``correct`` of ``nb_stimuli``); ``metrics``: N2D2's per-class confusion-table
    metrics averaged over classes, in percent; ``confusion`` (rows: label, columns: output);
    ``per_target`` {target name: TargetScore}; ``seconds``. None/empty without a scored target."""

    def __init__(self, targets, seconds, nb_stimuli):
        scored = [t for t in targets if t.scored]
        self.per_target = {t.name: t for t in scored}
        primary = scored[0] if scored else None
        self.recognition_rate = 100.0 * primary.accuracy if primary else None
        self.confusion = None if primary is None or primary.confusion is None \
            else primary.confusion.copy()
        self.correct = int(self.confusion.trace()) if self.confusion is not None else 0
        self.metrics = {k: 100.0 * v for k, v in primary.metrics().items()} if primary else {}
        self.seconds, self.nb_stimuli = seconds, nb_stimuli

    def __repr__(self):
        return (f"<TestResult recognition_rate={self.recognition_rate}% "
                f"({self.correct}/{self.nb_stimuli})>")


def set_size(net, set_name):
    return len(net.database.sets[set_name]) if net.database is not None else 0


def run_pass(net, set_name, limit=None, progress=None):
    """Forward the whole set without gradients, scoring every target (``progress``: a
    ``progress.Progress`` to show it). Returns {"stimuli": n}.

    A data-parallel replica (``net.replicas``) scores its part of every batch; the replicas'
    scores are then summed (``DataParallel.reduce_scores``): each holds the whole pass's."""
    for target in net.targets:
        target.reset()
    count, sizes = 0, []
    if progress is not None:
        total = set_size(net, set_name)
        progress.begin(set_name.lower(), total if limit is None else min(limit, total))
    with no_grad():
        for x, labels, _ in net.sp.batches(set_name, False, None, limit):
            sizes.append(len(labels))
            if not len(labels):       # a replica's empty part of a last, small batch
                continue
            outputs = net.forward(x, training=False)
            success = [target.score(outputs[target.cell].data, labels) for target in net.targets]
            count += len(labels)
            if progress is not None:
                shown = len(labels) if net.replicas is None else \
                    min(net.sp.batch_size, progress.total - (len(sizes) - 1) * net.sp.batch_size)
                progress.step(shown, success=success[0] if net.targets[0].scored else None)
    if progress is not None:
        progress.close()
    if net.replicas is not None:
        count = net.replicas.reduce_scores(net.targets, sizes)
    return {"stimuli": count}


# -- test ------------------------------------------------------------------------------------
def test(net, set_name="Test", limit=None, out=None, workdir=None):
    """Score ``set_name``. With ``out``, print N2D2's final lines; with
    ``workdir``, write ``<target>/ConfusionMatrix_test.{dat,png}``. Returns a TestResult."""
    start = time.perf_counter()
    out = out if net.writer else None      # data-parallel: rank 0 prints and writes
    progress = Progress(out) if out is not None else None
    info = run_pass(net, set_name, limit, progress)
    result = TestResult(net.targets, time.perf_counter() - start, info["stimuli"])
    if out is not None:
        _write_final_lines(net, out)
    if workdir is not None and net.writer:
        _write_confusion_files(net, set_name, workdir)
    return result


def _write_final_lines(net, out):
    for target in net.targets:
        if target.scored:
            out.write(text.final_lines(target) + "\n")
    out.flush()


def _write_confusion_files(net, set_name, workdir):
    """``<workdir>/<target>/ConfusionMatrix_<set>.{dat,png}`` for every scored target."""
    kind = set_name.lower()
    for target in net.targets:
        if target.scored and target.confusion is not None:
            folder = cell_file(workdir, target.name, "")   # the name as a folder inside workdir
            os.makedirs(folder, exist_ok=True)
            base = os.path.join(folder, f"ConfusionMatrix_{kind}")
            output_atomically(base + ".dat", lambda tmp, t=target: text.write_confusion(tmp, t.confusion))
            from .report import plots
            output_atomically(base + ".png", lambda tmp, t=target: plots.confusion_matrix_png(
                t.confusion, tmp, f"{t.name}: {set_name}", _label_names(net)))


def _label_names(net):
    names = getattr(net.database, "label_names", None)
    return list(names) if names else None


# -- validation during learning ----------------------------------------------------------------
def validate_and_keep(net, history, state, metric, paths, progress=None):
    """One validation pass (``progress``: its bar), ``weights_validation/`` when the score is the
    best so far, early-stop bookkeeping. The caller prints the log point's line."""
    primary = net.targets[0]
    result = run_pass(net, "Validation", progress=progress)
    score = primary.metric(metric) if primary.scored else -result.get("loss", 0.0)
    history.validation.append((history.stimuli, score))
    if history.best is None or score > history.best:
        history.best, history.best_step, state["since_best"] = score, history.stimuli, 0
        net.export_weights(paths["weights_validation"])
    else:
        state["since_best"] += 1
    return _early_stop(history, state)


def _early_stop(history, state):
    """"stop" after ``stop_valid`` validations without improvement (``--stop-valid``), else None."""
    stop_after = state["stop_valid"]
    if stop_after and state["since_best"] >= stop_after:
        history.stopped_early = True
        return "stop"
    return None


def reload_best_weights(net, ignore_missing=False, workdir="."):
    """As N2D2 before a bare ``-test``: ``weights_validation/`` when the database has a
    Validation set, else ``weights/``. Returns the folder read."""
    folder = os.path.join(workdir, "weights_validation" if set_size(net, "Validation") > 0 else "weights")
    if net.replicas is not None:     # rank 0 reads, the others get what it read
        from .distributed.command import on_rank0
        on_rank0(net.replicas.comm, lambda: _import_best(net, folder, ignore_missing))
        net.replicas.broadcast_model()
        return folder
    return _import_best(net, folder, ignore_missing)


def _import_best(net, folder, ignore_missing):
    recover_folder(folder)
    if not os.path.isdir(folder):
        from .errors import WeightsError
        raise WeightsError(f"weights folder '{folder}' does not exist: train first with "
                           f"--learn-epoch N, or give the weights with -w DIR")
    net.import_weights(folder, ignore_missing)
    return folder
