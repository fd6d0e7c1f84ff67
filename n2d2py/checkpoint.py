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
import os

import numpy

from . import backend
from .errors import DataError, N2D2Error
from .io.arrays import read_arrays

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


def restore_net(net, meta, arrays, place=None):
    """Put the state of ``net_arrays`` back into ``net`` (same INI: same parameters, shapes).
    Quantizers' state comes first: it may change which Parameters they have (FracBits' Frozen)."""
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
        except (TypeError, ValueError, KeyError) as exc:
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


def load(folder):
    """Read a state folder; any problem is a ``StateError`` naming it."""
    from .folders import recover_folder
    folder = os.fspath(folder)
    if not recover_folder(folder):
        raise StateError("training-state folder does not exist (it is written as net_state/ "
                         "by a learning run)", file=folder)
    path = os.path.join(folder, STATE_FILE)
    try:
        with open(path) as f:
            meta = json.load(f)
        arrays = read_arrays(os.path.join(folder, ARRAYS_FILE))
        if not isinstance(arrays, dict):
            raise ValueError(f"{ARRAYS_FILE} is not an .npz archive")
    except DataError as exc:
        raise StateError(f"corrupt training state ({exc.message})", file=exc.file) from None
    except OSError as exc:
        raise StateError(f"cannot read the training state ({exc.strerror or exc})",
                         file=exc.filename or folder) from None
    except (ValueError, EOFError, KeyError, UnicodeError) as exc:
        raise StateError(f"corrupt training state ({type(exc).__name__}: {exc})", file=folder) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise StateError(f"not an n2d2py training state ({STATE_FILE} has no format '{FORMAT}')",
                         file=folder)
    if meta.get("version") != VERSION:
        raise StateError(f"training state version {meta.get('version')}, this n2d2py reads "
                         f"version {VERSION}", file=folder)
    return Checkpoint(folder, meta, arrays)
