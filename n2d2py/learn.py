"""Learning, validation and test loops of the ``n2d2`` executable (spec/ini.md §6.1, §6.2, §6.3).

``learn`` trains by epochs (``-learn-epoch``: Learn shuffled, without replacement) or by a number
of stimuli (``-learn``: batches drawn at random with replacement), validates at every log point,
keeps the best weights in ``weights_validation/`` (the primary target's ``-valid-metric``), stops
early after ``stop_valid`` validations without improvement, and finally reloads the best weights.
``test`` scores the Test set. Weight folders are written atomically (``write_folder_atomically``).
"""
import contextlib
import os
import shutil
import signal
import sys
import threading
import time

import numpy

from .autograd import no_grad
from .report import text

#: Running-success window of the progress line, in stimuli (N2D2's ``-ws``).
SUCCESS_WINDOW = 10000


# -- atomic weight folders -------------------------------------------------------------------
@contextlib.contextmanager
def deferred_sigint():
    """Hold Ctrl-C until the block ends (a solver step or a folder swap is never cut in half)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda *a: caught.append(a))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught:
            raise KeyboardInterrupt


def _fsync_tree(folder):
    for root, _, files in os.walk(folder):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(root)


def _fsync_dir(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories
    finally:
        os.close(fd)


def write_folder_atomically(folder, write):
    """Call ``write(tmp)`` on a fresh ``folder + ".tmp-<pid>"``, fsync it, then swap it in.

    Any exception (a crash, Ctrl-C) during ``write`` removes the temporary folder and leaves
    ``folder`` as it was. The swap itself (two renames: a folder cannot replace a non-empty
    one in a single rename) runs with Ctrl-C held back.
    """
    folder = os.path.normpath(os.fspath(folder))
    tmp, old = f"{folder}.tmp-{os.getpid()}", f"{folder}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        write(tmp)
        _fsync_tree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    with deferred_sigint():
        if os.path.isdir(folder):
            os.replace(folder, old)
        os.replace(tmp, folder)
        _fsync_dir(os.path.dirname(os.path.abspath(folder)))
    shutil.rmtree(old, ignore_errors=True)


# -- results ---------------------------------------------------------------------------------
class TestResult:
    """Scores of one pass for the primary TargetScore: ``recognition_rate`` (mean of per-batch
    success, N2D2's figure), ``accuracy`` (samples), ``confusion``, ``metrics`` {name: value},
    ``per_target`` {target name: TargetScore}, ``seconds``, ``nb_stimuli``."""

    def __init__(self, targets, seconds, nb_stimuli):
        scored = [t for t in targets if t.scored]
        self.per_target = {t.name: t for t in scored}
        primary = scored[0] if scored else None
        self.recognition_rate = primary.recognition_rate if primary else None
        self.accuracy = primary.accuracy if primary else None
        self.confusion = None if primary is None else primary.confusion.copy()
        self.metrics = primary.metrics() if primary else {}
        self.seconds, self.nb_stimuli = seconds, nb_stimuli

    def __repr__(self):
        return (f"<TestResult recognition_rate={self.recognition_rate} accuracy={self.accuracy} "
                f"stimuli={self.nb_stimuli}>")


class LearnHistory:
    """What a learning run did: validation ``(step, score)`` pairs, learning success per log
    point, the best score and where the weights went."""

    def __init__(self, metric):
        self.metric = metric
        self.validation, self.learning = [], []
        self.best, self.best_step, self.stopped_early = None, None, False
        self.stimuli = 0
        self.seconds = 0.0


# -- progress ----------------------------------------------------------------------------------
class Progress:
    """N2D2's carriage-return line on a terminal; one line per epoch (or log point) otherwise."""

    def __init__(self, out):
        self.out = out
        self.tty = hasattr(out, "isatty") and out.isatty()
        self.last = 0.0

    def update(self, line, force=False):
        if not self.tty:
            return
        now = time.perf_counter()
        if force or now - self.last > 0.2:
            self.out.write("\r" + line)
            self.out.flush()
            self.last = now

    def end(self, line):
        self.out.write(("\r" if self.tty else "") + line + "\n")
        self.out.flush()


class SuccessWindow:
    """Running learn success over the last ``size`` stimuli (N2D2's ``-ws`` window)."""

    def __init__(self, size=SUCCESS_WINDOW):
        self.size, self.items = size, []

    def add(self, n, success):
        self.items.append((n, success))
        total = sum(n for n, _ in self.items)
        while self.items and total - self.items[0][0] >= self.size:
            total -= self.items.pop(0)[0]

    @property
    def value(self):
        total = sum(n for n, _ in self.items)
        return sum(n * s for n, s in self.items) / total if total else 0.0


# -- loops -----------------------------------------------------------------------------------
def set_size(net, set_name):
    return len(net.database.sets[set_name]) if net.database is not None else 0


def learn(net, epochs=None, stimuli=None, log_epoch=1, log=1000, valid_metric="Sensitivity",
          stop_valid=0, rng=None, out=None, workdir=".", reload_best=True, ignore_missing=False):
    """Train ``net`` (spec/ini.md §6.1 items 6-7, §6.2). ``epochs`` wins over ``stimuli``.

    Validation runs every ``log_epoch`` epochs (or ``log`` stimuli) when the database has a
    Validation set; otherwise ``weights/`` is written at each log point. A KeyboardInterrupt
    saves the current weights to ``weights/`` (atomically) and is re-raised.
    """
    out = out if out is not None else sys.stdout
    rng = rng if rng is not None else numpy.random.default_rng(1)
    history = LearnHistory(valid_metric)
    net.history = history
    primary = net.targets[0]  # the first target picks the best checkpoint (spec §2.6)
    has_validation = set_size(net, "Validation") > 0
    progress, window = Progress(out), SuccessWindow()
    state = {"since_best": 0, "stop_valid": stop_valid}
    start = time.perf_counter()
    paths = _paths(workdir, primary)

    def log_point():
        history.learning.append((history.stimuli, window.value))
        if has_validation:
            if validate_and_keep(net, history, state, valid_metric, paths, out) == "stop":
                return "stop"
        else:
            net.export_weights(paths["weights"])
        return None

    try:
        if epochs:
            for epoch in range(1, epochs + 1):
                _learn_batches(net, net.sp.batches("Learn", True, rng, None), history, window,
                               progress, start, f"#epoch {epoch}")
                if epoch % max(1, log_epoch) == 0 or epoch == epochs:
                    progress.end(_learn_line(window, history, start, f"#epoch {epoch}", 1.0))
                    if log_point() == "stop":
                        break
        elif stimuli:
            done, next_log = 0, log
            while done < stimuli:
                batches = _random_batches(net, rng, min(log, stimuli - done))
                _learn_batches(net, batches, history, window, progress, start, f"#{done}")
                done = history.stimuli
                if done >= next_log or done >= stimuli:
                    progress.end(_learn_line(window, history, start, f"#{done}", done / stimuli))
                    next_log += log
                    if log_point() == "stop":
                        break
    except KeyboardInterrupt:
        net.export_weights(paths["weights"])
        raise
    history.seconds = time.perf_counter() - start
    net.export_weights(paths["weights"])
    _write_learning_files(history, paths)
    if reload_best:
        reload_best_weights(net, ignore_missing)
    return history


def _paths(workdir, target):
    return {"weights": os.path.join(workdir, "weights"),
            "weights_validation": os.path.join(workdir, "weights_validation"),
            "target": os.path.join(workdir, target.name)}


def _learn_batches(net, batches, history, window, progress, start, label):
    primary = net.targets[0]
    for x, labels, _ in batches:
        _, outputs = net.learn_batch(x, labels)
        history.stimuli += len(labels)
        if primary.scored:
            window.add(len(labels), primary.score(outputs[primary.cell].data, labels))
            primary.reset()  # the learning window is ours; the confusion matrix is per pass
        progress.update(_learn_line(window, history, start, label, None))


def _random_batches(net, rng, count):
    """``-learn``: ⌈count/B⌉ batches whose stimuli are drawn with replacement from Learn."""
    sp = net.sp
    if hasattr(sp, "random_batches"):
        return sp.random_batches("Learn", count, rng)
    # StimuliProvider without a with-replacement draw: shuffled batches, truncated to count
    return sp.batches("Learn", True, rng, count)


def _learn_line(window, history, start, label, fraction):
    elapsed = max(time.perf_counter() - start, 1e-9)
    rate = history.stimuli / elapsed
    minutes, seconds = divmod(int(elapsed), 60)
    bar = "" if fraction is None else "[" + text.bar(fraction) + "] "
    return (f"Learning {bar}{label} {100 * window.value:.2f}% duration {minutes:02d}:{seconds:02d} "
            f"min at {rate:.2f} p./s ({int(rate * 60)} p./min)")


def validate_and_keep(net, history, state, metric, paths, out):
    """One validation pass, BEST/LOWER lines, checkpoint and early-stop bookkeeping."""
    primary = net.targets[0]
    result = run_pass(net, "Validation")
    out.write("Validation" + "." * 20 + "\n")
    score = primary.metric(metric) if primary.scored else -result.get("loss", 0.0)
    history.validation.append((history.stimuli, score))
    if history.best is None or score > history.best:
        history.best, history.best_step, state["since_best"] = score, history.stimuli, 0
        net.export_weights(paths["weights_validation"])
        out.write(f"+++ BEST validation score: {text.fmt(100 * score)}% [{metric}]\n")
        out.write(f"    '{os.path.basename(paths['weights_validation'])}' saved!\n")
    else:
        state["since_best"] += 1
        out.write(f"--- LOWER validation score: {text.fmt(100 * score)}% [{metric}] "
                  f"(best was {text.fmt(100 * history.best)}%)\n")
    if primary.scored:
        out.write(text.metric_lines(primary) + "\n")
    out.flush()
    stop_after = state["stop_valid"]
    if stop_after and state["since_best"] >= stop_after:
        out.write(f"--- Validation did not improve after {stop_after} steps\n"
                  "--- STOPPING THE LEARNING\n")
        history.stopped_early = True
        return "stop"
    return None


def run_pass(net, set_name, limit=None, progress=None):
    """Forward the whole set without gradients, scoring every target. Returns {"stimuli": n}."""
    for target in net.targets:
        target.reset()
    count = 0
    with no_grad():
        for x, labels, _ in net.sp.batches(set_name, False, None, limit):
            outputs = net.forward(x, training=False)
            for target in net.targets:
                target.score(outputs[target.cell].data, labels)
            count += len(labels)
            if progress is not None:
                primary = net.targets[0]
                rate = primary.recognition_rate if primary.scored else 0.0
                progress.update(f"Testing #{count}   {100 * rate:.2f}% ")
    return {"stimuli": count}


def test(net, set_name="Test", limit=None, out=None, workdir=None):
    """Score ``set_name`` (spec/ini.md §6.2). With ``out``, print N2D2's final lines; with
    ``workdir``, write ``<target>/ConfusionMatrix_test.{dat,png}``. Returns a TestResult."""
    start = time.perf_counter()
    progress = Progress(out) if out is not None else None
    info = run_pass(net, set_name, limit, progress)
    result = TestResult(net.targets, time.perf_counter() - start, info["stimuli"])
    if out is not None:
        if progress.tty:
            out.write("\r")
        for target in net.targets:
            if target.scored:
                out.write(text.final_lines(target) + "\n")
        out.flush()
    if workdir is not None:
        kind = set_name.lower()
        for target in net.targets:
            if target.scored and target.confusion is not None:
                folder = os.path.join(workdir, target.name)
                os.makedirs(folder, exist_ok=True)
                text.write_confusion(os.path.join(folder, f"ConfusionMatrix_{kind}.dat"), target.confusion)
                from .report import plots
                plots.confusion_matrix_png(target.confusion, os.path.join(folder, f"ConfusionMatrix_{kind}.png"),
                                           f"{target.name}: {set_name}", _label_names(net))
    return result


def _label_names(net):
    names = getattr(net.database, "label_names", None)
    return list(names) if names else None


def reload_best_weights(net, ignore_missing=False, workdir="."):
    """spec/ini.md §6.1 item 7: ``weights_validation/`` when the database has a Validation set,
    else ``weights/``. Returns the folder read."""
    folder = os.path.join(workdir, "weights_validation" if set_size(net, "Validation") > 0 else "weights")
    net.import_weights(folder, ignore_missing)
    return folder


def _write_learning_files(history, paths):
    folder = paths["target"]
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "Success_validation.dat"), "w") as f:
        for step, score in history.validation:
            f.write(f"{step} {score:.6g}\n")
    with open(os.path.join(folder, "Success_learning.dat"), "w") as f:
        for step, score in history.learning:
            f.write(f"{step} {score:.6g}\n")
    from .report import plots
    plots.learning_curves_png(history, os.path.join(folder, "Success_validation.png"))
