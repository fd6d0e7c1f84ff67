"""Learning loops of the ``n2d2`` executable: what it trains, prints and writes.

``learn`` trains by epochs (``-learn-epoch``: Learn shuffled, without replacement) or by a number
of stimuli (``-learn``: batches drawn at random with replacement), validates at every log point,
keeps the best weights in ``weights_validation/`` (the primary target's ``-valid-metric``), stops
early after ``stop_valid`` validations without improvement, and finally reloads the best weights.

The pieces it drives live beside it and are imported from there: ``scoring.py`` (``test``,
validation passes, best weights), ``progress.py`` (progress line, history, ``Success_*.dat``),
``folders.py`` (atomic weight folders: ``write_folder_atomically``) and ``signals.py``
(Ctrl-C/SIGTERM held during a step).
"""
import contextlib
import os
import sys
import time

import numpy

from . import checkpoint
from .autograd import no_grad
from .errors import N2D2Error, NumericalError, NumericalFault
from .io.names import cell_file
from .progress import (HEADLINE, Discard, LearnHistory, Progress, SuccessWindow,
                       record_log_point, write_learning_files)
from .scoring import reload_best_weights, set_size, validate_and_keep
from .signals import deferred_signals


def learn(net, epochs=None, stimuli=None, log_epoch=1, log=1000, valid_metric=HEADLINE,
          stop_valid=0, rng=None, out=None, workdir=".", reload_best=True, ignore_missing=False,
          resume=None, seed=None, save_state=True):
    """Train ``net`` as N2D2's ``-learn-epoch``/``-learn`` do. ``epochs`` wins over ``stimuli``.

    Validation runs every ``log_epoch`` epochs (or ``log`` stimuli) when the database has a
    Validation set; otherwise ``weights/`` is written at each log point. At each log point the
    full training state goes to ``net_state/`` (and ``net_state_validation/`` when the score
    improved; ``save_state=False``: not written); ``resume`` (a ``checkpoint.load()`` result,
    ``-l DIR``) continues such a state: ``epochs``/``stimuli`` are then the totals to reach.
    A KeyboardInterrupt (Ctrl-C, SIGTERM: ``Terminated``) saves the current weights to
    ``weights/`` and the state to ``net_state/`` (atomically) and is re-raised. A non-finite
    loss or gradient saves the state before the faulty batch and raises ``NumericalError``.

    A data-parallel replica (``net.replicas``) runs the same loop on its part of every batch;
    only rank 0 writes (files, and ``out`` unless given), and a signal held by any replica
    stops all of them after the same step.
    """
    if out is None:
        out = sys.stdout if net.writer else Discard()
    loop = TrainingLoop(net, epochs, stimuli, log_epoch, log, valid_metric, stop_valid,
                        rng if rng is not None else numpy.random.default_rng(1),
                        out, workdir, seed, save_state)
    loop.prepare(resume)
    history = loop.run()
    history.seconds = time.perf_counter() - loop.start
    net.export_weights(loop.paths["weights"])
    if net.writer:
        write_learning_files(history, loop.paths)
    if reload_best:
        reload_best_weights(net, ignore_missing, workdir)
    return history


def _paths(workdir, target):
    return {name: os.path.join(workdir, name) for name in
            ("weights", "weights_validation", "net_state", "net_state_validation")} | \
        {"target": cell_file(workdir, target.name, "")}


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
        self.replicas = net.replicas

    # -- set-up ------------------------------------------------------------------------------
    def prepare(self, resume=None):
        """Fill the stimuli caches (so that the build generator they may use is consumed
        before any state is restored), restore ``resume``, tell the quantizers the run's
        length (``begin_training``)."""
        sp = self.net.sp
        if hasattr(sp, "cached"):
            for name in ("Learn", "Validation"):
                if sp.nb_stimuli(name):
                    sp.cached(name)
        self.generators = checkpoint.generators(self.net, data=self.rng)
        if resume is not None:
            self.restore(resume)
        for quantizer in self.net.quantizers():
            quantizer.begin_training(self.total_batches())
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
        # replicas hold Ctrl-C/SIGTERM for the whole run and share them at every step
        # (DataParallel.reduce): all stop after the same one, and rank 0 saves
        with deferred_signals() if self.replicas is not None else contextlib.nullcontext():
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
        while not self.history.stopped_early:
            if self.pending_log:
                if self.log_point(f"epoch {self.epoch}/{self.epochs}") == "stop":
                    break
                continue
            if self.epoch >= self.epochs:
                break
            e = self.epoch + 1
            self.start_epoch(e)
            if self.plan is None:
                with deferred_signals():
                    self.plan = {"order": self.rng.permutation(self.nb_learn), "next": 0, "epoch": e}
            self.run_plan(f"epoch {e}/{self.epochs}")
            with deferred_signals():
                self.plan, self.epoch = None, e
                self.pending_log = e % self.log_epoch == 0 or e == self.epochs
        return self.history

    def run_stimuli(self):
        history = self.history
        while not history.stopped_early:
            if self.pending_log:
                if self.log_point(f"{history.stimuli}/{self.stimuli} images") == "stop":
                    break
                continue
            if history.stimuli >= self.stimuli:
                break
            self.start_epoch(1 + history.stimuli // max(1, self.nb_learn))
            if self.plan is None:
                with deferred_signals():
                    count = min(self.log, self.stimuli - history.stimuli)
                    # sp.random_batches's draw, kept so that an interrupted chunk can resume
                    order = self.rng.integers(0, self.nb_learn, size=int(count))
                    self.plan = {"order": order, "next": 0, "epoch": None}
            self.run_plan(f"images {history.stimuli}/{self.stimuli}")
            with deferred_signals():
                self.plan = None
                self.pending_log = history.stimuli >= self.next_log or history.stimuli >= self.stimuli
        return history

    def start_epoch(self, epoch):
        """Quantizers' epoch hook (DFP/Po2 λ schedules), ``epoch`` counted from 1."""
        for quantizer in self.net.quantizers():
            quantizer.on_epoch(epoch)

    def run_plan(self, label):
        """The batches of the current epoch or chunk not done yet."""
        plan, b = self.plan, self.net.sp.batch_size
        done = self.done_in_plan()
        batches = self.net.sp._batches("Learn", plan["order"][done:], self.rng)
        self.progress.begin(label, len(plan["order"]), min(done, len(plan["order"])))
        while True:
            with deferred_signals():
                if not self.step(batches):
                    break

    def step(self, batches):
        """One training step on the next batch (False when there is none), signals held."""
        net, primary, history = self.net, self.net.targets[0], self.history
        before = self.before_step()
        item = next(batches, None)
        if item is None:
            return False
        x, labels, _ = item
        replicas = self.replicas
        if replicas is not None:
            planned = self.planned_batch()
            if planned < replicas.comm.size:
                self.skip_small_batch(planned)
                return True
            replicas.planned = planned
        try:
            loss, outputs = net.learn_batch(x, labels)
        except NumericalFault as fault:
            self.numerical_fault(fault, x, before)
        self.plan["next"] += 1
        self.steps += 1
        count = len(labels) if replicas is None else replicas.count
        history.stimuli += count
        success = None
        if primary.scored:
            success = primary.score(outputs[primary.cell].data, labels)
            if replicas is not None:
                success = replicas.global_success(success, len(labels))
            self.window.add(count, success)
            primary.reset()  # the learning window is ours; the confusion matrix is per pass
        self.progress.step(count, loss, success)
        if replicas is not None:
            replicas.raise_if_stopped()
        return True

    def done_in_plan(self):
        """Stimuli of the current epoch or chunk already read: ``next`` batches, after the
        ``offset`` read at another batch size (a run resumed with another replica count)."""
        return self.plan.get("offset", 0) + self.plan["next"] * self.net.sp.batch_size

    def planned_batch(self):
        """Stimuli of the global batch the next step reads (data-parallel replicas)."""
        return int(min(self.net.sp.batch_size, len(self.plan["order"]) - self.done_in_plan()))

    def skip_small_batch(self, planned):
        """A last batch with fewer stimuli than replicas is left out (every replica would
        need one): counted as done, said once."""
        self.plan["next"] += 1
        if not getattr(self, "_small_said", False):
            self._small_said = True
            self.out.write(f"Notice: the last batch of {planned} image(s) is left out: fewer "
                           f"than the {self.replicas.comm.size} replicas\n")

    def log_point(self, label):
        """Learning line, validation (or weights/), then net_state/ (interrupted: redone)."""
        history = self.history
        self.snapshot = self.progress_state(pending_log=True)
        self.progress.close()
        trained = self.progress.meter     # the epoch's figures (validation starts a new meter)
        history.learning.append((history.stimuli, self.window.value))
        result, best = None, history.best
        if self.replicas is not None:
            self.replicas.check_identical()
        if self.has_validation:
            result = validate_and_keep(self.net, history, self.state, self.metric, self.paths,
                                       self.progress)
        else:
            self.net.export_weights(self.paths["weights"])
        record_log_point(history, self.progress, trained, label, self.metric, self.paths, best)
        if history.stopped_early:
            self.out.write(f"Validation did not improve for {self.state['stop_valid']} log "
                           f"points (--stop-valid): learning stops\n")
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
        net = self.net
        cell, kind = fault.cell, fault.kind
        if fault.where == "loss":
            cell, kind = locate_nonfinite(net, x, default=(net.targets[0].cell, kind))
        states, arrays = before
        checkpoint.restore_generators(self.generators, states)
        for (name, s), value in arrays.items():
            setattr(net.cells[name], s, value)
        net.export_weights(self.paths["weights"])
        self.save(self.paths["net_state"])
        epoch, batch = self.position()
        what = "" if fault.where == "loss" else f" in the gradient of {fault.param}"
        saved = " (last good state saved in 'net_state/' and 'weights/')" if self.save_state else ""
        error = NumericalError(f"[{cell}] produced {kind}{what} at epoch {epoch}, batch {batch} "
                               f"(step {self.steps + 1}){saved}",
                               file=getattr(net.document, "path", None))
        error.agreed = self.replicas is not None   # every replica found it in the summed values
        raise error

    def position(self):
        """(epoch, batch) of the step being run, both counted from 1."""
        if self.plan is not None and self.plan["epoch"] is not None:
            return self.plan["epoch"], self.plan["next"] + 1
        n, b = max(1, self.nb_learn), max(1, self.net.sp.batch_size)
        stimuli = self.history.stimuli
        return 1 + stimuli // n, (stimuli % n) // b + 1

    # -- state -----------------------------------------------------------------------------------
    def progress_state(self, pending_log=None):
        h = self.history
        return {
            "mode": "epochs" if self.epochs else "stimuli",
            "epoch": self.epoch, "steps": self.steps, "stimuli": h.stimuli,
            "next_log": self.next_log,
            "plan": None if self.plan is None else {k: self.plan[k] for k in ("next", "epoch", "offset")
                                                    if k in self.plan},
            "batch": self.net.sp.batch_size if self.net.sp is not None else None,
            "pending_log": self.pending_log if pending_log is None else pending_log,
            "validation": [[int(s), float(v)] for s, v in h.validation],
            "learning": [[int(s), float(v)] for s, v in h.learning], "log": h.log,
            "best": None if h.best is None else float(h.best), "best_step": h.best_step,
            "stopped_early": h.stopped_early, "since_best": self.state["since_best"],
            "window": [[int(n), float(v)] for n, v in self.window.items],
            "generators": checkpoint.generator_states(self.generators),
        }

    def save(self, folder, progress=None):
        if not self.save_state or not self.net.writer:
            return
        meta, arrays = checkpoint.net_arrays(self.net)
        if self.plan is not None:
            arrays["loop/order"] = numpy.asarray(self.plan["order"])
        checkpoint.save(folder, {"seed": self.seed, "network": meta,
                                 "progress": progress or self.progress_state()}, arrays)

    def restore(self, ckpt):
        """Continue the state ``ckpt`` (``checkpoint.load()``) saved by a run of the same mode."""
        place, p = ckpt.folder, ckpt.meta["progress"]
        mode = "epochs" if self.epochs else "stimuli"
        checkpoint.check_progress(p, ckpt.arrays, place, mode, self.nb_learn,
                                  self.net.sp.batch_size if self.net.sp is not None else 1)
        if p["mode"] != mode:
            option = "--learn-epoch" if p["mode"] == "epochs" else "--learn"
            raise checkpoint.StateError(f"this state was saved by a {option} run: resume it "
                                        f"with {option}", file=place)
        checkpoint.restore_net(self.net, ckpt.meta["network"], ckpt.arrays, place)
        self.restore_progress(p)
        if p["plan"] is not None:
            self.plan = dict(p["plan"], order=numpy.array(ckpt.arrays["loop/order"]))
            saved, b = p.get("batch"), self.net.sp.batch_size
            if saved and saved != b:    # another replica count: go on from the same stimulus
                self.plan["offset"] = self.plan.get("offset", 0) + self.plan["next"] * saved
                self.plan["next"] = 0
        if p.get("batch") and p["batch"] != self.net.sp.batch_size:
            self.out.write(f"Notice: this state was saved with a batch of {p['batch']}, learning "
                           f"goes on with {self.net.sp.batch_size} (another replica count?)\n")
        checkpoint.restore_generators(self.generators, p["generators"], place)
        self.announce_resume(place)

    def restore_progress(self, p):
        """History, window and counters from ``progress_state()``'s dictionary."""
        h = self.history
        h.stimuli, h.best, h.best_step = p["stimuli"], p["best"], p["best_step"]
        h.validation = [tuple(v) for v in p["validation"]]
        h.learning = [tuple(v) for v in p["learning"]]
        h.log = [dict(entry) for entry in p.get("log", [])]
        h.stopped_early = p["stopped_early"]
        self.state["since_best"] = p["since_best"]
        self.window.items = [tuple(v) for v in p["window"]]
        self.steps, self.epoch, self.next_log = p["steps"], p["epoch"], p["next_log"]
        self.pending_log = p["pending_log"]

    def announce_resume(self, place):
        h = self.history
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
