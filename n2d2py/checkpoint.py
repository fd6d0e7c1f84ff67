"""Full training state for ``-l DIR`` (resume): exact arrays in ``arrays.npz``, the rest in JSON.

A state folder (``net_state/``, ``net_state_validation/``) holds two files, written together
and atomically by ``folders.write_folder_atomically``:

* ``state.json``: format and version, the seed, the network's parameter names and shapes (to
  refuse a state saved by another network), every solver's counters (iterations, Adam steps:
  the learning-rate schedule position), quantizers' run-time state (``state_dict()``: LSQ
  "initialised", Prune's threshold, DQA's step, DFP's epoch...; never a value the INI gives,
  so an INI edited before ``-l`` wins), the states of every NumPy ``Generator`` the run uses
  (data order, dropout and the build generator shared by database/stimuli provider/cells,
  quantizers' own), and the loop's position and history (``learn.py`` fills ``progress``);
* ``arrays.npz`` (numbers only, read by ``io/arrays.py``): parameters (weights, biases, BN scales, quantizer
  α/steps), solver buffers (momentum, Adam moments, accumulated gradients), cells' state arrays
  (BN running mean/variance), quantizers' arrays (Prune masks), and the loop's arrays (the order
  of the epoch or chunk being trained), all as the exact float32/int arrays.

``net_arrays`` / ``restore_net`` do the network part, ``generators`` / ``generator_states`` /
``restore_generators`` the random generators, ``save`` / ``load`` the files.
"""
import json
import math
import os

import numpy

from . import backend
from .errors import DataError, N2D2Error
from .io.arrays import ArrayArchive, open_arrays
from .io.files import regular_file_problem

FORMAT = "n2d2py-training-state"
VERSION = 1
STATE_FILE = "state.json"
ARRAYS_FILE = "arrays.npz"
_SCALARS = (bool, int, float, str, type(None))


class StateError(N2D2Error):
    """A training-state folder that cannot be read or does not fit the network."""


# -- the network's arrays ------------------------------------------------------------------------
def _is_array(value):
    return isinstance(value, numpy.ndarray) or (backend.cupy_available and
                                                type(value).__module__.startswith("cupy"))


def _quantizers(cell):
    for role in ("qweight", "qact"):
        q = getattr(cell, role, None)
        if q is not None:
            yield role, q


def _quantizer_state(q):
    """A quantizer's ``state_dict()`` split into scalars (JSON), arrays and lists of arrays."""
    scalars, arrays, lists = {}, {}, {}
    for name, value in q.state_dict().items():
        if isinstance(value, _SCALARS) and not (isinstance(value, float) and not numpy.isfinite(value)):
            scalars[name] = value
        elif isinstance(value, numpy.generic):
            arrays[name] = numpy.asarray(value)
        elif _is_array(value):
            arrays[name] = backend.asnumpy(value)
        elif isinstance(value, list) and value and all(_is_array(v) for v in value):
            lists[name] = [backend.asnumpy(v) for v in value]
    return scalars, arrays, lists


def net_arrays(net):
    """(meta, arrays) of everything training changes in ``net``."""
    meta, arrays = {"parameters": [], "solvers": [], "cells": {}, "quantizers": {}}, {}
    for i, p in enumerate(net.parameters()):
        data = backend.asnumpy(p.data)
        meta["parameters"].append([p.name, list(data.shape), str(data.dtype)])
        arrays[f"param/{i}"] = data
        numbers = None
        if p.solver is not None:
            state = p.solver.state_dict()
            numbers = {}
            for key, value in state.items():
                if _is_array(value):
                    arrays[f"solver/{i}/{key}"] = backend.asnumpy(value)
                elif value is None:
                    numbers[key] = None
                else:
                    numbers[key] = value.item() if isinstance(value, numpy.generic) else value
        meta["solvers"].append(numbers)
    for name, cell in net.cells.items():
        names = [s for s in getattr(cell, "state_names", ()) if getattr(cell, s, None) is not None]
        meta["cells"][name] = names
        for s in names:
            arrays[f"cell/{name}/{s}"] = backend.asnumpy(getattr(cell, s))
        for role, q in _quantizers(cell):
            scalars, qarrays, lists = _quantizer_state(q)
            meta["quantizers"][f"{name}/{role}"] = {"scalars": scalars, "arrays": sorted(qarrays),
                                                   "lists": {k: len(v) for k, v in lists.items()}}
            for k, v in qarrays.items():
                arrays[f"quant/{name}/{role}/{k}"] = v
            for k, values in lists.items():
                for j, v in enumerate(values):
                    arrays[f"quant/{name}/{role}/{k}/{j}"] = v
    return meta, arrays


def _put(old, value, device):
    """``value`` (NumPy) on the device and dtype of ``old``."""
    value = numpy.asarray(value)
    if old is not None and hasattr(old, "dtype"):
        value = value.astype(old.dtype, copy=False)
    return backend.to_device(value.copy(), device)


# -- checking a state against the network, before anything is restored ---------------------------
class _Check:
    """Type checks of ``state.json`` fields; a failure is a StateError naming the file and the
    field (``progress.plan.next``)."""

    def __init__(self, file):
        self.file = file

    def fail(self, field, message):
        raise StateError(f"{field}: {message}", file=self.file)

    def dict(self, value, field, keys=None):
        if not isinstance(value, dict):
            self.fail(field, f"expected an object, got {type(value).__name__}")
        if keys is not None and set(value) != set(keys):
            wrong = sorted(set(value) ^ set(keys))[:3]
            self.fail(field, f"expected the fields {', '.join(sorted(keys))}; "
                             f"{', '.join(map(str, wrong))} missing or unknown")
        return value

    def list(self, value, field, length=None):
        if not isinstance(value, list):
            self.fail(field, f"expected a list, got {type(value).__name__}")
        if length is not None and len(value) != length:
            self.fail(field, f"expected {length} items, got {len(value)}")
        return value

    def count(self, value, field, optional=False):
        if value is None and optional:
            return value
        if type(value) is not int or not 0 <= value < 2 ** 62:
            self.fail(field, f"expected a count (integer >= 0), got {str(value)[:40]}")
        return value

    def number(self, value, field, optional=False):
        if value is None and optional:
            return value
        finite = type(value) is int and abs(value) < 2 ** 53 or \
            type(value) is float and math.isfinite(value)
        if not finite:
            self.fail(field, f"expected a finite number, got {str(value)[:40]}")
        return value

    def choice(self, value, field, choices):
        if type(value) is not type(next(iter(choices))) or value not in choices:
            self.fail(field, f"expected one of {', '.join(map(str, choices))}")
        return value

    def like(self, value, current, field):
        """A scalar of the type of the attribute it replaces."""
        kinds = {bool: (bool,), int: (int,), float: (float, int), str: (str,)}
        allowed = kinds.get(type(current))
        if current is None or allowed is None:
            if value is not None and type(value) not in (bool, int, float, str):
                self.fail(field, f"expected a number or a word, got {type(value).__name__}")
        elif type(value) not in allowed:
            self.fail(field, f"expected {type(current).__name__}, got {type(value).__name__}")
        if type(value) is float and not math.isfinite(value) or \
                type(value) is int and abs(value) >= 2 ** 62:
            self.fail(field, f"expected a finite number, got {str(value)[:40]}")
        return value


def _array_check(arrays, file):
    headers = getattr(arrays, "headers", None)
    if headers is None:     # a dict of arrays (from the Python API)
        headers = {k: (numpy.shape(v), numpy.asarray(v).dtype) for k, v in arrays.items()}

    def check(key, shape, dtype):
        """``arrays[key]`` must exist with exactly ``shape`` and ``dtype``."""
        if key not in headers:
            raise StateError(f"array '{key}' is missing: the state was saved by another "
                             f"network", file=file)
        got_shape, got_dtype = headers[key]
        if tuple(got_shape) != tuple(shape) or numpy.dtype(got_dtype) != numpy.dtype(dtype):
            raise StateError(f"array '{key}' is {numpy.dtype(got_dtype)} {tuple(got_shape)}, "
                             f"the network needs {numpy.dtype(dtype)} {tuple(shape)}", file=file)
    return headers, check


def check_state(net, meta, arrays, place=None):
    """Refuse a state (``state.json``'s ``network`` part and ``arrays.npz``) that does not fit
    ``net`` exactly: every field's type, every array's dtype and shape, no array or field more,
    before anything is restored. ``place``: the state folder (named in errors)."""
    json_file = os.path.join(place, STATE_FILE) if place else None
    npz_file = os.path.join(place, ARRAYS_FILE) if place else None
    c = _Check(json_file)
    c.dict(meta, "network", ("parameters", "solvers", "cells", "quantizers"))
    headers, check = _array_check(arrays, npz_file)
    expected = set()
    params = net.parameters()
    saved = c.list(meta["parameters"], "network.parameters", len(params))
    solvers = c.list(meta["solvers"], "network.solvers", len(params))
    for i, (p, item) in enumerate(zip(params, saved)):
        field = f"network.parameters[{i}]"
        c.list(item, field, 3)
        shape = tuple(p.data.shape)
        if item[0] != p.name or item[1] != list(shape) or item[2] != str(p.data.dtype):
            c.fail(field, f"{str(item)[:80]} in the state, {p.name} {shape} {p.data.dtype} in "
                          f"the network: it was saved by another network")
        check(f"param/{i}", shape, p.data.dtype)
        expected.add(f"param/{i}")
        numbers = solvers[i]
        if p.solver is None or numbers is None:
            if numbers is not None or p.solver is not None and numbers is None:
                c.fail(f"network.solvers[{i}]", "solver state of another network")
            continue
        current = p.solver.state_dict()
        field = f"network.solvers[{i}]"
        buffers = getattr(p.solver, "_state_arrays", ())
        c.dict(numbers, field)
        for key in numbers:
            if key not in current:
                c.fail(field, f"'{str(key)[:40]}' is not a state of a {current['type']} solver")
        for key, value in current.items():
            if key == "type":
                c.choice(numbers.get(key), f"{field}.type", {value})
            elif key in buffers:     # an array in arrays.npz, or null before the first update
                array_key = f"solver/{i}/{key}"
                if array_key in headers and key not in numbers:
                    check(array_key, shape, p.data.dtype)
                    expected.add(array_key)
                elif numbers.get(key, 0) is not None or array_key in headers:
                    c.fail(f"{field}.{key}", "expected null here, or the array in arrays.npz")
            else:
                if key not in numbers:
                    c.fail(f"{field}.{key}", "missing")
                c.like(numbers[key], value, f"{field}.{key}")
                if type(numbers[key]) is int and numbers[key] < 0:
                    c.fail(f"{field}.{key}", f"expected a count (>= 0), got {numbers[key]}")
    cells = c.dict(meta["cells"], "network.cells", net.cells)
    for name, cell in net.cells.items():
        names = c.list(cells[name], f"network.cells.{name}")
        allowed = getattr(cell, "state_names", ())
        for s in names:
            if s not in allowed or getattr(cell, s, None) is None:
                c.fail(f"network.cells.{name}", f"'{str(s)[:40]}' is not a state array of "
                                                f"this cell")
            current = getattr(cell, s)
            check(f"cell/{name}/{s}", current.shape, current.dtype)
            expected.add(f"cell/{name}/{s}")
    roles = {f"{name}/{role}": (cell, q) for name, cell in net.cells.items()
             for role, q in _quantizers(cell)}
    quantizers = c.dict(meta["quantizers"], "network.quantizers", roles)
    for key, (cell, q) in roles.items():
        field = f"network.quantizers.{key}"
        state = c.dict(quantizers[key], field, ("scalars", "arrays", "lists"))
        current = vars(q)
        for k, v in c.dict(state["scalars"], field + ".scalars").items():
            if k not in current or _is_array(current[k]) or isinstance(current[k], list):
                c.fail(f"{field}.scalars", f"'{str(k)[:40]}' is not a state of this quantizer")
            c.like(v, current[k], f"{field}.scalars.{k}")
        for k in c.list(state["arrays"], field + ".arrays"):
            if not isinstance(k, str) or k not in current:
                c.fail(f"{field}.arrays", f"'{str(k)[:40]}' is not a state of this quantizer")
            array_key = f"quant/{key}/{k}"
            old = current[k]
            if _is_array(old) or isinstance(old, numpy.generic):
                check(array_key, numpy.shape(old), numpy.asarray(old).dtype)
            elif old is None:     # set by the first forward: a scalar
                dtype = headers.get(array_key, (None, numpy.float32))[1]
                check(array_key, (), dtype if numpy.dtype(dtype).kind in "fiu" else numpy.float32)
            else:
                c.fail(f"{field}.arrays", f"'{k}' is not an array of this quantizer")
            expected.add(array_key)
        weights = [w.data for w in getattr(cell, "weights", ())]
        for k, count in c.dict(state["lists"], field + ".lists").items():
            old = current.get(k, None) if isinstance(k, str) else None
            if k not in current or not (old is None or isinstance(old, list)):
                c.fail(f"{field}.lists", f"'{str(k)[:40]}' is not a state of this quantizer")
            shapes = [numpy.shape(v) for v in old] if old else [w.shape for w in weights]
            c.count(count, f"{field}.lists.{k}")
            if count != len(shapes):
                c.fail(f"{field}.lists.{k}", f"{count} arrays, the cell has {len(shapes)}")
            for j, shape in enumerate(shapes):
                array_key = f"quant/{key}/{k}/{j}"
                dtype = headers.get(array_key, (None, numpy.float32))[1]
                if numpy.dtype(dtype).kind not in "biuf":
                    dtype = numpy.float32
                check(array_key, shape, dtype)
                expected.add(array_key)
    extra = [k for k in headers if k not in expected and not k.startswith("loop/")]
    if extra:
        raise StateError(f"array '{extra[0]}' is not part of this network's state",
                         file=npz_file)


def check_progress(progress, arrays, place, mode, nb_learn, batch_size):
    """Every field of the loop's saved position (``learn.TrainingLoop.progress_state``) and the
    order of the epoch or chunk being trained (``loop/order``)."""
    c = _Check(os.path.join(place, STATE_FILE) if place else None)
    fields = ("mode", "epoch", "steps", "stimuli", "next_log", "plan", "pending_log",
              "validation", "learning", "best", "best_step", "stopped_early", "since_best",
              "window", "generators")
    # optional: "log" (the log points' lines), "batch" (the global batch it was saved with)
    optional = tuple(k for k in ("log", "batch") if isinstance(progress, dict) and k in progress)
    p = c.dict(progress, "progress", fields + optional)
    if p.get("batch") is not None:
        c.count(p["batch"], "progress.batch")
    for j, entry in enumerate(c.list(p.get("log", []), "progress.log")):
        field = f"progress.log[{j}]"
        c.dict(entry, field, ("label", "step", "loss", "training", "validation", "best"))
        if not isinstance(entry["label"], str):
            c.fail(f"{field}.label", "expected a text")
        c.count(entry["step"], f"{field}.step")
        c.choice(entry["best"], f"{field}.best", {True, False})
        for key in ("loss", "training", "validation"):
            if entry[key] is not None and type(entry[key]) not in (int, float):
                c.fail(f"{field}.{key}", f"expected a number or null, got {str(entry[key])[:40]}")
    c.choice(p["mode"], "progress.mode", {"epochs", "stimuli"})
    for key in ("epoch", "steps", "stimuli", "next_log", "since_best"):
        c.count(p[key], f"progress.{key}")
    c.count(p["best_step"], "progress.best_step", optional=True)
    c.number(p["best"], "progress.best", optional=True)
    for key in ("pending_log", "stopped_early"):
        c.choice(p[key], f"progress.{key}", {True, False})
    for key in ("validation", "learning", "window"):
        for j, item in enumerate(c.list(p[key], f"progress.{key}")):
            c.list(item, f"progress.{key}[{j}]", 2)
            c.count(item[0], f"progress.{key}[{j}][0]")
            c.number(item[1], f"progress.{key}[{j}][1]")
    generators = c.dict(p["generators"], "progress.generators", ("states", "owners"))
    for j, state in enumerate(c.list(generators["states"], "progress.generators.states")):
        c.dict(state, f"progress.generators.states[{j}]")
    for k, v in c.dict(generators["owners"], "progress.generators.owners").items():
        c.count(v, f"progress.generators.owners.{k}")
        if v >= len(generators["states"]):
            c.fail(f"progress.generators.owners.{k}", f"no state {v}")
    headers, check = _array_check(arrays, os.path.join(place, ARRAYS_FILE) if place else None)
    if p["plan"] is None:
        if "loop/order" in headers:
            c.fail("progress.plan", "null, but arrays.npz holds a loop order")
        return
    plan = c.dict(p["plan"], "progress.plan", ("next", "epoch"))
    c.count(plan["next"], "progress.plan.next")
    c.count(plan["epoch"], "progress.plan.epoch", optional=p["mode"] == "stimuli")
    order_shape, order_dtype = headers.get("loop/order", ((-1,), numpy.int64))
    if numpy.dtype(order_dtype).kind not in "iu" or len(order_shape) != 1:
        check("loop/order", (nb_learn,), numpy.int64)
    length = order_shape[0]
    if p["mode"] == "epochs" and length != nb_learn:
        check("loop/order", (nb_learn,), order_dtype)
    if plan["next"] * max(1, batch_size) > length:
        c.fail("progress.plan.next", f"batch {plan['next']} is past the {length} stimuli of "
                                     f"the saved order")
    order = arrays["loop/order"]
    if length and (int(order.min()) < 0 or int(order.max()) >= max(nb_learn, 1)):
        raise StateError(f"array 'loop/order' holds stimulus indices outside 0..{nb_learn - 1}",
                         file=os.path.join(place, ARRAYS_FILE) if place else None)


def restore_net(net, meta, arrays, place=None):
    """Put the state of ``net_arrays`` back into ``net`` (same INI: same parameters, shapes),
    after ``check_state`` found it fits exactly. Quantizers' state comes first: it may change
    which Parameters they have (FracBits' Frozen)."""
    check_state(net, meta, arrays, place)
    missing = [f"{name}/{role}" for name, cell in net.cells.items() for role, _ in _quantizers(cell)
               if f"{name}/{role}" not in meta["quantizers"]]
    if missing or set(meta["cells"]) != set(net.cells):
        raise StateError("the cells or quantizers of the state are not the network's: it was "
                         "saved by another network", file=place)
    for name, cell in net.cells.items():
        for s in meta["cells"].get(name, ()):
            setattr(cell, s, _put(getattr(cell, s, None), arrays[f"cell/{name}/{s}"], net.device))
        for role, q in _quantizers(cell):
            saved, current = meta["quantizers"][f"{name}/{role}"], q.state_dict()
            state = dict(saved["scalars"])
            for k in saved["arrays"]:
                old = current.get(k)
                value = numpy.array(arrays[f"quant/{name}/{role}/{k}"])
                if isinstance(old, numpy.generic) or value.ndim == 0 and old is None:
                    state[k] = value[()]
                else:
                    state[k] = _put(old, value, net.device)
            for k, count in saved["lists"].items():
                state[k] = [_put(None, arrays[f"quant/{name}/{role}/{k}/{j}"], net.device)
                            for j in range(count)]
            q.load_state_dict(state)
    params = net.parameters()
    saved = meta["parameters"]
    if len(saved) != len(params):
        raise StateError(f"the state has {len(saved)} parameter arrays, the network "
                         f"{len(params)}: it was saved by another network", file=place)
    for i, (p, (name, shape, _)) in enumerate(zip(params, saved)):
        if p.name != name or tuple(p.data.shape) != tuple(shape):
            raise StateError(f"parameter {i} is {name} {tuple(shape)} in the state but "
                             f"{p.name} {tuple(p.data.shape)} in the network: it was saved by "
                             f"another network", file=place)
    for i, p in enumerate(params):
        xp = backend.get_xp(p.data)
        p.data[...] = xp.asarray(arrays[f"param/{i}"])
        p.grad = None
        numbers = meta["solvers"][i]
        if p.solver is not None and numbers is not None:
            state = dict(numbers)
            prefix = f"solver/{i}/"
            for key in arrays:
                if key.startswith(prefix):
                    state[key[len(prefix):]] = numpy.array(arrays[key])
            try:
                p.solver.load_state_dict(state)
            except (KeyError, ValueError, TypeError) as exc:
                raise StateError(f"solver state of {p.name}: {exc}", file=place) from None


# -- random generators -----------------------------------------------------------------------------
def generators(net, **extra):
    """``[(path, Generator)]`` for every generator the network and the loop use (``extra``:
    the loop's own, e.g. ``data=rng``). One generator may appear under several paths."""
    found = [(k, v) for k, v in sorted(extra.items())]
    for path, owner in (("sp", net.sp), ("database", net.database)):
        found.append((path, getattr(owner, "rng", None)))
    for name, cell in net.cells.items():
        found.append((f"cell/{name}", getattr(cell, "rng", None)))
        for role, q in _quantizers(cell):
            for k, v in vars(q).items():
                found.append((f"cell/{name}/{role}/{k}", v))
    return [(p, g) for p, g in found if isinstance(g, numpy.random.Generator)]


def generator_states(pairs):
    """JSON-able ``{"states": [...], "owners": {path: index}}`` (shared generators once)."""
    states, index, owners = [], {}, {}
    for path, g in pairs:
        if id(g) not in index:
            index[id(g)] = len(states)
            states.append(g.bit_generator.state)
        owners[path] = index[id(g)]
    return {"states": states, "owners": owners}


def restore_generators(pairs, saved, place=None):
    for path, g in pairs:
        k = saved["owners"].get(path)
        if k is None:
            raise StateError(f"no state for the random generator of {path}: the state was saved "
                             f"by another network", file=place)
        try:
            g.bit_generator.state = saved["states"][k]
        except (TypeError, ValueError, KeyError, OverflowError) as exc:
            raise StateError(f"random generator state of {path}: {exc}", file=place) from None


# -- files -------------------------------------------------------------------------------------------
def save(folder, meta, arrays):
    """Write ``state.json`` + ``arrays.npz`` into ``folder`` atomically."""
    from .folders import write_folder_atomically
    document = {"format": FORMAT, "version": VERSION, **meta}
    text = json.dumps(document, indent=1, sort_keys=True)

    def write(tmp):
        with open(os.path.join(tmp, ARRAYS_FILE), "wb") as f:
            numpy.savez(f, **{k: numpy.ascontiguousarray(v) for k, v in arrays.items()})
        with open(os.path.join(tmp, STATE_FILE), "w") as f:
            f.write(text + "\n")
    write_folder_atomically(folder, write)


class Checkpoint:
    """A loaded state folder: ``meta`` (the JSON document), ``arrays`` {name: ndarray}."""

    def __init__(self, folder, meta, arrays):
        self.folder, self.meta, self.arrays = folder, meta, arrays

    @property
    def seed(self):
        return self.meta.get("seed")


MAX_STATE_BYTES = 256 << 20   # state.json: counters, names, generator states, history


def load(folder):
    """Read a state folder: ``state.json`` parsed and its top-level fields checked, the headers
    of ``arrays.npz`` (its arrays are read when restored, after ``check_state``). Any problem
    is a ``StateError`` naming the file at fault; a FIFO or device is never opened."""
    from .folders import recover_folder
    folder = os.fspath(folder)
    if not recover_folder(folder):
        raise StateError("training-state folder does not exist (it is written as net_state/ "
                         "by a learning run)", file=folder)
    path = os.path.join(folder, STATE_FILE)
    problem = regular_file_problem(path)
    if problem:
        raise StateError(f"training-state file {problem}", file=path)
    if os.path.getsize(path) > MAX_STATE_BYTES:
        raise StateError(f"{os.path.getsize(path)} bytes: larger than any training state "
                         f"({MAX_STATE_BYTES} at most)", file=path)
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.loads(f.read())
    except OSError as exc:
        raise StateError(f"cannot read the training state ({exc.strerror or exc})",
                         file=path) from None
    except (ValueError, UnicodeError, RecursionError) as exc:
        raise StateError(f"not a training state ({type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:100]})", file=path) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise StateError(f"not an n2d2py training state (no format '{FORMAT}')", file=path)
    if meta.get("version") != VERSION:
        raise StateError(f"training state version {str(meta.get('version'))[:20]}, this n2d2py "
                         f"reads version {VERSION}", file=path)
    c = _Check(path)
    c.dict(meta, "state", ("format", "version", "seed", "network", "progress"))
    if meta["seed"] is not None and (type(meta["seed"]) is not int or
                                     not 0 < meta["seed"] < 2 ** 32):
        c.fail("seed", f"expected a positive integer, got {str(meta['seed'])[:40]}")
    try:
        arrays = open_arrays(os.path.join(folder, ARRAYS_FILE))
    except DataError as exc:
        raise StateError(f"corrupt training state ({exc.message})", file=exc.file) from None
    if not isinstance(arrays, ArrayArchive):
        raise StateError(f"{ARRAYS_FILE} is not an .npz archive",
                         file=os.path.join(folder, ARRAYS_FILE))
    return Checkpoint(folder, meta, arrays)
