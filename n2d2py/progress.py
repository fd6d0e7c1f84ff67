"""What a learning run shows and records: N2D2's progress line, the running learn success
(``-ws`` window), the ``LearnHistory`` and the ``Success_*.dat`` files with their curves
(spec/ini.md §6.1 items 6-7, §6.2)."""
import os
import time

from .folders import output_atomically, replace_file_atomically
from .report import text

#: Running-success window of the progress line, in stimuli (N2D2's ``-ws``).
SUCCESS_WINDOW = 10000


class LearnHistory:
    """What a learning run did: validation ``(step, score)`` pairs, learning success per log
    point, the best score and where the weights went."""

    def __init__(self, metric):
        self.metric = metric
        self.validation, self.learning = [], []
        self.best, self.best_step, self.stopped_early = None, None, False
        self.stimuli = 0
        self.seconds = 0.0


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


def learn_line(window, history, start, label, fraction):
    """``Learning [bar] #epoch 3 97.20% duration 00:12 min at ... p./s`` (N2D2's line)."""
    elapsed = max(time.perf_counter() - start, 1e-9)
    rate = history.stimuli / elapsed
    minutes, seconds = divmod(int(elapsed), 60)
    bar = "" if fraction is None else "[" + text.bar(fraction) + "] "
    return (f"Learning {bar}{label} {100 * window.value:.2f}% duration {minutes:02d}:{seconds:02d} "
            f"min at {rate:.2f} p./s ({int(rate * 60)} p./min)")


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
                      lambda tmp: plots.learning_curves_png(history, tmp))
