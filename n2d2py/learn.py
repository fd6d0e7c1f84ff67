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

from . import checkpoint
from .autograd import no_grad
from .deepnet import NumericalFault
from .errors import N2D2Error
from .report import text

#: Running-success window of the progress line, in stimuli (N2D2's ``-ws``).
SUCCESS_WINDOW = 10000


# -- signals ---------------------------------------------------------------------------------
class Terminated(KeyboardInterrupt):
    """SIGTERM turned into an exception (the command installs ``raise_terminated``); a
    KeyboardInterrupt, so every place that saves on Ctrl-C saves on SIGTERM too."""


def raise_terminated(signum=None, frame=None):
    raise Terminated()


_deferring = [0]   # depth of nested deferred_signals() blocks (main thread)


@contextlib.contextmanager
def deferred_signals():
    """Hold Ctrl-C (and SIGTERM when a Python handler is installed for it) until the block ends:
    a training step or a folder swap is never cut in half. Nested blocks defer to the outermost
    one. On exit, a held SIGTERM raises ``Terminated``, a held Ctrl-C ``KeyboardInterrupt``."""
    if threading.current_thread() is not threading.main_thread() or _deferring[0]:
        _deferring[0] += threading.current_thread() is threading.main_thread()
        try:
            yield
        finally:
            if threading.current_thread() is threading.main_thread():
                _deferring[0] -= 1
        return
    caught, previous = [], {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        if callable(signal.getsignal(signum)):   # ignored or default (SIGTERM: die) stay so
            previous[signum] = signal.signal(signum, lambda s, f: caught.append(s))
    _deferring[0] = 1

    def restore():
        _deferring[0] = 0
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    try:
        yield
    except BaseException:
        restore()
        raise
    restore()
    if signal.SIGTERM in caught:
        raise Terminated()
    if caught:
        raise KeyboardInterrupt


deferred_sigint = deferred_signals  # the older name


# -- atomic weight folders -------------------------------------------------------------------
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
    recover_folder(folder, clean=True)
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        write(tmp)
        _fsync_tree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    with deferred_signals():
        if os.path.isdir(folder):
            os.replace(folder, old)
        os.replace(tmp, folder)
        _fsync_dir(os.path.dirname(os.path.abspath(folder)))
    shutil.rmtree(old, ignore_errors=True)


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def recover_folder(folder, clean=False):
    """Undo what a kill (SIGKILL, power loss) inside ``write_folder_atomically`` left behind.

    Killed between its two renames, ``folder`` is missing and its previous, complete version is
    ``folder.old-<pid>``: rename it back. With ``clean``, the ``.tmp-<pid>``/``.old-<pid>``
    folders of processes that no longer run are removed. Returns True if ``folder`` exists."""
    folder = os.path.normpath(os.fspath(folder))
    parent, name = os.path.split(folder)
    try:
        entries = os.listdir(parent or ".")
    except OSError:
        return os.path.isdir(folder)
    stale = []
    for entry in entries:
        for kind in (".old-", ".tmp-"):
            head, _, pid = entry.rpartition(kind)
            if head == name and pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
                stale.append((kind, os.path.join(parent, entry)))
    if not os.path.isdir(folder):
        olds = sorted((p for kind, p in stale if kind == ".old-"), key=os.path.getmtime)
        if olds:
            os.replace(olds[-1], folder)
            stale = [(k, p) for k, p in stale if p != olds[-1]]
    if clean:
        for _, path in stale:
            shutil.rmtree(path, ignore_errors=True)
    return os.path.isdir(folder)


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


class NumericalError(N2D2Error):
    """A NaN or an infinity in a loss, an activation or a gradient during training."""


def learn(net, epochs=None, stimuli=None, log_epoch=1, log=1000, valid_metric="Sensitivity",
          stop_valid=0, rng=None, out=None, workdir=".", reload_best=True, ignore_missing=False,
          resume=None, seed=None, save_state=True):
    """Train ``net`` (spec/ini.md §6.1 items 6-7, §6.2). ``epochs`` wins over ``stimuli``.

    Validation runs every ``log_epoch`` epochs (or ``log`` stimuli) when the database has a
    Validation set; otherwise ``weights/`` is written at each log point. At each log point the
    full training state goes to ``net_state/`` (and ``net_state_validation/`` when the score
    improved; ``save_state=False``: not written); ``resume`` (a ``checkpoint.load()`` result,
    ``-l DIR``) continues such a state: ``epochs``/``stimuli`` are then the totals to reach.
    A KeyboardInterrupt (Ctrl-C, SIGTERM: ``Terminated``) saves the current weights to
    ``weights/`` and the state to ``net_state/`` (atomically) and is re-raised. A non-finite
    loss or gradient saves the state before the faulty batch and raises ``NumericalError``.
    """
    loop = TrainingLoop(net, epochs, stimuli, log_epoch, log, valid_metric, stop_valid,
                        rng if rng is not None else numpy.random.default_rng(1),
                        out if out is not None else sys.stdout, workdir, seed, save_state)
    loop.prepare(resume)
    history = loop.run()
    history.seconds = time.perf_counter() - loop.start
    net.export_weights(loop.paths["weights"])
    _write_learning_files(history, loop.paths)
    if reload_best:
        reload_best_weights(net, ignore_missing, workdir)
    return history


def _paths(workdir, target):
    return {name: os.path.join(workdir, name) for name in
            ("weights", "weights_validation", "net_state", "net_state_validation")} | \
        {"target": os.path.join(workdir, target.name)}


def constraints_active(net):
    """Whether any weight quantizer adds a penalty or a size/BitOps target to the loss."""
    for cell in net.cells.values():
        q = getattr(cell, "qweight", None)
        if q is not None and (hasattr(q, "penalty") or getattr(q, "target_size", 0)
                              or getattr(q, "target_bitops", 0)):
            return True
    return False


class TrainingLoop:
    """The position of a learning run, saved in ``net_state/`` and restored by ``-l``.

    Epochs (``epochs``): each epoch draws a permutation of Learn (``plan``: its order and the
    batches done); ``--learn N`` (``stimuli``): each chunk of ``log`` stimuli is drawn with
    replacement (``sp.random_batches``'s rule). A training step (drawing the batch, forward,
    backward, updates, counters) runs with signals held, so an interruption falls between steps
    or in a log point; a log point interrupted is redone on resume (``snapshot``).
    """

    def __init__(self, net, epochs, stimuli, log_epoch, log, metric, stop_valid, rng, out,
                 workdir, seed, save_state):
        self.net, self.epochs, self.stimuli = net, epochs or None, None if epochs else stimuli
        self.log_epoch, self.log, self.metric = max(1, log_epoch), max(1, log), metric
        self.rng, self.out, self.seed, self.save_state = rng, out, seed, save_state
        self.history = net.history = LearnHistory(metric)
        self.window, self.progress = SuccessWindow(), Progress(out)
        self.state = {"since_best": 0, "stop_valid": stop_valid}
        self.steps, self.epoch, self.next_log = 0, 0, self.log
        self.plan, self.pending_log, self.snapshot = None, False, None
        self.has_validation = set_size(net, "Validation") > 0
        self.paths = _paths(workdir, net.targets[0])
        self.start = time.perf_counter()
        self.generators = []
        self.nb_learn = net.sp.nb_stimuli("Learn") if net.sp is not None else 0

    # -- set-up ------------------------------------------------------------------------------
    def prepare(self, resume=None):
        """Fill the stimuli caches (so that the build generator they may use is consumed
        before any state is restored), restore ``resume``, wire the constraint hooks."""
        from .quantizers import constraints
        sp = self.net.sp
        if hasattr(sp, "cached"):
            for name in ("Learn", "Validation"):
                if sp.nb_stimuli(name):
                    sp.cached(name)
        self.generators = checkpoint.generators(self.net, data=self.rng)
        if resume is not None:
            self.restore(resume)
        self.net.constraint_penalty = constraints_active(self.net)
        constraints.set_schedule_length(self.net.cells, self.total_batches())
        if self.stimuli and self.nb_learn == 0:
            raise N2D2Error("--learn N needs stimuli in the Learn set, and it is empty")

    def total_batches(self):
        b = max(1, self.net.sp.batch_size) if self.net.sp is not None else 1
        if self.epochs:
            return self.epochs * (-(-self.nb_learn // b))
        full, rest = divmod(self.stimuli or 0, self.log)
        return full * (-(-self.log // b)) + (-(-rest // b))

    # -- the loops ------------------------------------------------------------------------------
    def run(self):
        try:
            if self.epochs:
                self.run_epochs()
            elif self.stimuli:
                self.run_stimuli()
        except KeyboardInterrupt:
            self.net.export_weights(self.paths["weights"])
            self.save(self.paths["net_state"], self.snapshot)
            raise
        return self.history

    def run_epochs(self):
        from .quantizers import constraints
        while not self.history.stopped_early:
            if self.pending_log:
                if self.log_point(f"#epoch {self.epoch}", 1.0) == "stop":
                    break
                continue
            if self.epoch >= self.epochs:
                break
            e = self.epoch + 1
            constraints.on_epoch(self.net.cells, e)
            if self.plan is None:
                with deferred_signals():
                    self.plan = {"order": self.rng.permutation(self.nb_learn), "next": 0, "epoch": e}
            self.run_plan(f"#epoch {e}")
            with deferred_signals():
                self.plan, self.epoch = None, e
                self.pending_log = e % self.log_epoch == 0 or e == self.epochs
        return self.history

    def run_stimuli(self):
        from .quantizers import constraints
        history = self.history
        while not history.stopped_early:
            if self.pending_log:
                if self.log_point(f"#{history.stimuli}", history.stimuli / self.stimuli) == "stop":
                    break
                continue
            if history.stimuli >= self.stimuli:
                break
            constraints.on_epoch(self.net.cells, 1 + history.stimuli // max(1, self.nb_learn))
            if self.plan is None:
                with deferred_signals():
                    count = min(self.log, self.stimuli - history.stimuli)
                    # sp.random_batches's draw, kept so that an interrupted chunk can resume
                    order = self.rng.integers(0, self.nb_learn, size=int(count))
                    self.plan = {"order": order, "next": 0, "epoch": None}
            self.run_plan(f"#{history.stimuli}")
            with deferred_signals():
                self.plan = None
                self.pending_log = history.stimuli >= self.next_log or history.stimuli >= self.stimuli
        return history

    def run_plan(self, label):
        """The batches of the current epoch or chunk not done yet."""
        net, plan, history = self.net, self.plan, self.history
        primary = net.targets[0]
        b = net.sp.batch_size
        batches = net.sp._batches("Learn", plan["order"][plan["next"] * b:], self.rng)
        while True:
            with deferred_signals():
                before = self.before_step()
                item = next(batches, None)
                if item is None:
                    break
                x, labels, _ = item
                try:
                    _, outputs = net.learn_batch(x, labels)
                except NumericalFault as fault:
                    self.numerical_fault(fault, x, before)
                plan["next"] += 1
                self.steps += 1
                history.stimuli += len(labels)
                if primary.scored:
                    self.window.add(len(labels), primary.score(outputs[primary.cell].data, labels))
                    primary.reset()  # the learning window is ours; the confusion matrix is per pass
            self.progress.update(_learn_line(self.window, history, self.start, label, None))

    def log_point(self, label, fraction):
        """Learning line, validation (or weights/), then net_state/ (interrupted: redone)."""
        history = self.history
        self.snapshot = self.progress_state(pending_log=True)
        self.progress.end(_learn_line(self.window, history, self.start, label, fraction))
        history.learning.append((history.stimuli, self.window.value))
        result, best = None, history.best
        if self.has_validation:
            result = validate_and_keep(self.net, history, self.state, self.metric, self.paths, self.out)
        else:
            self.net.export_weights(self.paths["weights"])
        if self.stimuli:
            self.next_log += self.log
        self.pending_log, self.snapshot = False, None
        self.save(self.paths["net_state"])
        if self.has_validation and history.best is not None and history.best != best:
            self.save(self.paths["net_state_validation"])
        return result

    # -- numerical faults --------------------------------------------------------------------------
    def before_step(self):
        """What a step changes before its updates: generators, cells' state arrays (BN)."""
        states = checkpoint.generator_states(self.generators)
        arrays = {(name, s): getattr(cell, s).copy() for name, cell in self.net.cells.items()
                  for s in getattr(cell, "state_names", ()) if getattr(cell, s, None) is not None}
        return states, arrays

    def numerical_fault(self, fault, x, before):
        """Name the cell, put back the state before the step, save it, raise NumericalError."""
        net, history = self.net, self.history
        cell, kind = fault.cell, fault.kind
        if fault.where == "loss":
            cell, kind = locate_nonfinite(net, x, default=(net.targets[0].cell, kind))
        states, arrays = before
        checkpoint.restore_generators(self.generators, states)
        for (name, s), value in arrays.items():
            setattr(net.cells[name], s, value)
        net.export_weights(self.paths["weights"])
        self.save(self.paths["net_state"])
        if self.plan is not None and self.plan["epoch"] is not None:
            epoch, batch = self.plan["epoch"], self.plan["next"] + 1
        else:
            n, b = max(1, self.nb_learn), max(1, net.sp.batch_size)
            epoch, batch = 1 + history.stimuli // n, (history.stimuli % n) // b + 1
        what = "" if fault.where == "loss" else f" in the gradient of {fault.param}"
        saved = " (last good state saved in 'net_state/' and 'weights/')" if self.save_state else ""
        raise NumericalError(f"[{cell}] produced {kind}{what} at epoch {epoch}, batch {batch} "
                             f"(step {self.steps + 1}){saved}",
                             file=getattr(net.document, "path", None))

    # -- state -----------------------------------------------------------------------------------
    def progress_state(self, pending_log=None):
        h = self.history
        return {
            "mode": "epochs" if self.epochs else "stimuli",
            "epoch": self.epoch, "steps": self.steps, "stimuli": h.stimuli,
            "next_log": self.next_log,
            "plan": None if self.plan is None else {"next": self.plan["next"], "epoch": self.plan["epoch"]},
            "pending_log": self.pending_log if pending_log is None else pending_log,
            "validation": [[int(s), float(v)] for s, v in h.validation],
            "learning": [[int(s), float(v)] for s, v in h.learning],
            "best": None if h.best is None else float(h.best), "best_step": h.best_step,
            "stopped_early": h.stopped_early, "since_best": self.state["since_best"],
            "window": [[int(n), float(v)] for n, v in self.window.items],
            "generators": checkpoint.generator_states(self.generators),
        }

    def save(self, folder, progress=None):
        if not self.save_state:
            return
        meta, arrays = checkpoint.net_arrays(self.net)
        if self.plan is not None:
            arrays["loop/order"] = numpy.asarray(self.plan["order"])
        checkpoint.save(folder, {"seed": self.seed, "network": meta,
                                 "progress": progress or self.progress_state()}, arrays)

    def restore(self, ckpt):
        place = ckpt.folder
        p = ckpt.meta["progress"]
        mode = "epochs" if self.epochs else "stimuli"
        if p["mode"] != mode:
            option = "--learn-epoch" if p["mode"] == "epochs" else "--learn"
            raise checkpoint.StateError(f"this state was saved by a {option} run: resume it "
                                        f"with {option}", file=place)
        checkpoint.restore_net(self.net, ckpt.meta["network"], ckpt.arrays, place)
        h = self.history
        h.stimuli, h.best, h.best_step = p["stimuli"], p["best"], p["best_step"]
        h.validation = [tuple(v) for v in p["validation"]]
        h.learning = [tuple(v) for v in p["learning"]]
        h.stopped_early = p["stopped_early"]
        self.state["since_best"] = p["since_best"]
        self.window.items = [tuple(v) for v in p["window"]]
        self.steps, self.epoch, self.next_log = p["steps"], p["epoch"], p["next_log"]
        self.pending_log = p["pending_log"]
        if p["plan"] is not None:
            self.plan = dict(p["plan"], order=numpy.array(ckpt.arrays["loop/order"]))
        checkpoint.restore_generators(self.generators, p["generators"], place)
        done = f"epoch {self.epoch}" if self.epochs else f"{h.stimuli} stimuli"
        if self.plan is not None:
            done += f" + {self.plan['next']} batches"
        self.out.write(f"Resuming from '{place}': {done} done, step {self.steps}\n")
        if h.stopped_early:
            self.out.write("Notice: that run had stopped early (--stop-valid): nothing to learn\n")


def locate_nonfinite(net, x, default):
    """(first cell in build order whose output has a NaN/Inf, "NaN" or "Inf"), else ``default``."""
    from . import backend
    with no_grad():
        outputs = net.forward(x, training=True, keep="all")
    for name, value in outputs.items():
        data = value.data
        xp = backend.get_xp(data)
        if bool(xp.isnan(data).any()):
            return name, "NaN"
        if not bool(xp.isfinite(data).all()):
            return name, "Inf"
    return default


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
                base = os.path.join(folder, f"ConfusionMatrix_{kind}")
                output_atomically(base + ".dat", lambda tmp, t=target: text.write_confusion(tmp, t.confusion))
                from .report import plots
                output_atomically(base + ".png", lambda tmp, t=target: plots.confusion_matrix_png(
                    t.confusion, tmp, f"{t.name}: {set_name}", _label_names(net)))
    return result


def _label_names(net):
    names = getattr(net.database, "label_names", None)
    return list(names) if names else None


def reload_best_weights(net, ignore_missing=False, workdir="."):
    """spec/ini.md §6.1 item 7: ``weights_validation/`` when the database has a Validation set,
    else ``weights/``. Returns the folder read."""
    folder = os.path.join(workdir, "weights_validation" if set_size(net, "Validation") > 0 else "weights")
    recover_folder(folder)
    if not os.path.isdir(folder):
        from .errors import WeightsError
        raise WeightsError(f"weights folder '{folder}' does not exist: train first with "
                           f"--learn-epoch N, or give the weights with -w DIR")
    net.import_weights(folder, ignore_missing)
    return folder


def _write_learning_files(history, paths):
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


def output_atomically(path, write):
    """``write(tmp)`` to a temporary path beside ``path`` (same extension), then rename it over
    ``path``: a reader (or a kill) never sees half a file."""
    folder, name = os.path.split(os.fspath(path))
    tmp = os.path.join(folder, f".tmp-{os.getpid()}-{name}")
    try:
        write(tmp)
        if os.path.exists(tmp):
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def replace_file_atomically(path, write, mode="w"):
    """``write(f)`` into a temporary file beside ``path``, fsync, then rename over ``path``."""
    folder, name = os.path.split(os.fspath(path))
    tmp = os.path.join(folder, f".tmp-{os.getpid()}-{name}")
    try:
        with open(tmp, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
