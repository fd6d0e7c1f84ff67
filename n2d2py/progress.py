"""What a learning run shows and records.

On a terminal, a per-batch bar (tqdm): position in the epoch, images per second, time left,
running loss and training score. Elsewhere (a log file, a pipe), plain lines: one every
``Progress.plain_every`` seconds at most. Either way, one line per epoch (or log point) with the
mean loss, the training and validation scores and whether the validation score is the best so
far. The scores are the recognition rate (percentage of images whose highest output is their
label) unless ``--valid-metric`` names another one for validation.

Also here: the ``LearnHistory`` a run returns, N2D2's running learn success (``-ws`` window) and
the ``Success_*.dat`` files with the learning curves.
"""
import io
import os
import shutil
import time

from .folders import output_atomically, replace_file_atomically

#: Running-success window of ``Success_learning.dat``, in stimuli (N2D2's ``-ws``).
SUCCESS_WINDOW = 10000
#: The validation score that is the recognition rate (the headline score).
HEADLINE = "RecognitionRate"


class Discard(io.TextIOBase):
    """Where a data-parallel replica other than rank 0 prints: nowhere."""

    def write(self, text):
        return len(text)


class LearnHistory:
    """What a learning run did: validation ``(step, score)`` pairs, learning success per log
    point (N2D2's running window), the best score and where it was, and ``log``: one dict per
    log point {"label", "step" (stimuli), "loss", "training", "validation", "best"}, scores in
    percent (the learning curves)."""

    def __init__(self, metric):
        self.metric = metric
        self.validation, self.learning, self.log = [], [], []
        self.best, self.best_step, self.stopped_early = None, None, False
        self.stimuli = 0
        self.seconds = 0.0


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


class EpochMeter:
    """Images, summed loss and correct images since the epoch (or log chunk) began."""

    def __init__(self):
        self.images, self.loss, self.correct = 0, 0.0, 0.0

    def add(self, images, loss, success):
        self.images += images
        self.loss += loss * images
        self.correct += (success or 0.0) * images

    @property
    def mean_loss(self):
        return self.loss / self.images if self.images else float("nan")

    @property
    def score(self):
        return 100.0 * self.correct / self.images if self.images else 0.0


class Progress:
    """The bar (terminal) or plain lines (elsewhere) of one pass over a set of images."""

    #: Seconds between two plain progress lines when the output is not a terminal.
    plain_every = 30.0

    def __init__(self, out):
        self.out = out
        self.tty = bool(getattr(out, "isatty", None) and out.isatty())
        self.bar, self.meter = None, EpochMeter()
        self.label, self.total, self.done = "", 0, 0
        self.start = self.last_plain = time.perf_counter()

    def begin(self, label, total, done=0, unit="img"):
        """A new pass: ``total`` images, ``done`` of them already seen (a resumed epoch)."""
        self.close()
        self.label, self.total, self.done = label, total, done
        self.meter = EpochMeter()
        self.start = self.last_plain = time.perf_counter()
        if self.tty:
            from tqdm import tqdm
            # a terminal that reports no width (some containers) would get an empty bar
            width = {"dynamic_ncols": True} if shutil.get_terminal_size((0, 0)).columns \
                else {"ncols": 100}
            # tqdm's defaults otherwise (refresh every 0.1 s; TQDM_* variables change them)
            self.bar = tqdm(total=total, initial=done, desc=label, unit=unit, file=self.out,
                            leave=False, smoothing=0.1, **width)

    def step(self, images, loss=None, success=None):
        """``images`` more done; ``loss`` (mean over them) and ``success`` (their fraction
        right) feed the running figures."""
        self.done += images
        self.meter.add(images, 0.0 if loss is None else loss, success)
        if self.bar is not None:
            postfix = {}
            if loss is not None:
                postfix["loss"] = f"{self.meter.mean_loss:.4g}"
            if success is not None:
                postfix["score"] = f"{self.meter.score:.2f}%"
            self.bar.set_postfix(postfix, refresh=False)
            self.bar.update(images)
        elif time.perf_counter() - self.last_plain >= self.plain_every:
            self.last_plain = time.perf_counter()
            self.say(self.plain_line(loss is not None, success is not None))

    def plain_line(self, with_loss, with_score):
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        rate = self.meter.images / elapsed
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        line = (f"{self.label}: {self.done}/{self.total} images, {rate:.0f} img/s, "
                f"{clock(left)} left")
        if with_loss:
            line += f", loss {self.meter.mean_loss:.4g}"
        if with_score:
            line += f", score {self.meter.score:.2f}%"
        return line

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def say(self, line):
        self.out.write(line + "\n")
        self.out.flush()


def clock(seconds):
    """``m:ss`` (``h:mm:ss`` past an hour); ``?`` when unknown."""
    if seconds != seconds or seconds == float("inf"):
        return "?"
    minutes, s = divmod(int(round(seconds)), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}:{m:02d}:{s:02d}" if hours else f"{m}:{s:02d}"


def log_point_line(history, entry, metric, weights_folder):
    """One line per epoch or log point: loss, training and validation scores, best so far."""
    line = entry["label"] + ": "
    if entry["loss"] is not None:
        line += f"loss {entry['loss']:.4g}, training {entry['training']:.2f}%, "
    if entry["validation"] is None:
        return line + f"no Validation set (weights saved in '{weights_folder}')"
    name = "" if metric == HEADLINE else f" [{metric}]"
    line += f"validation {entry['validation']:.2f}%{name}"
    if entry["best"]:
        return line + f", best so far (saved in '{weights_folder}')"
    where = next((e["label"] for e in reversed(history.log) if e["best"]),
                 f"{history.best_step} images")
    return line + f" (best {100.0 * history.best:.2f}% at {where})"


def record_log_point(history, progress, trained, label, metric, paths, best_before):
    """Append the log point's entry to ``history.log`` and print its line (``trained``: the
    ``EpochMeter`` of the images learnt since the previous log point)."""
    validated = bool(history.validation) and history.validation[-1][0] == history.stimuli
    learnt = trained.images > 0       # a log point redone after a resume learnt nothing new
    entry = {"label": label, "step": history.stimuli,
             "loss": trained.mean_loss if learnt else None,
             "training": trained.score if learnt else None,
             "validation": 100.0 * history.validation[-1][1] if validated else None,
             "best": validated and history.best is not None and history.best != best_before}
    history.log.append(entry)
    folder = paths["weights_validation"] if validated else paths["weights"]
    progress.say(log_point_line(history, entry, metric, os.path.basename(folder)))
    return entry


def write_learning_files(history, paths):
    """``<target>/Success_{validation,learning}.dat`` and the curves, each file replaced
    atomically (written beside it, then renamed)."""
    folder = paths["target"]
    os.makedirs(folder, exist_ok=True)
    for name, rows in (("Success_validation.dat", history.validation),
                       ("Success_learning.dat", history.learning)):
        replace_file_atomically(os.path.join(folder, name),
                                lambda f, rows=rows: f.write("".join(f"{s} {v:.6g}\n" for s, v in rows)))
    from .report import plots
    output_atomically(os.path.join(folder, "Success_validation.png"),
                      lambda tmp: plots.learning_curves_png(
                          history, tmp, f"{os.path.basename(folder)}: learning curves"))
