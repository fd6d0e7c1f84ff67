"""Generators of hostile inputs shared by the hardening regression tests (``test_hardening.py``)
and the long fuzz run (``fuzz/test_fuzz_hardening.py``), one family per class of issue 12, and
``watched_root``: what a case wrote outside the folder it was allowed to write in.

Each generator is a hypothesis strategy (or a function of one ``draw``), so a failing case is
shrunk and printed with the input that broke the rule.
"""
import contextlib
import json
import os
import pathlib
import shutil
import warnings
import zipfile

import numpy
from hypothesis import strategies as st

# -- class 1: names that become paths and C identifiers ------------------------------------------
#: pieces a hostile name is made of: separators, parent references, NUL and control characters,
#: characters N2D2 replaces, our escape character, unicode, the names of the files we write
NAME_PIECES = ["/", "..", ".", "\x00", "\x01", "\n", "\\", ":", "*", "?", "<", ">", "|", '"',
               "%", "%2F", "%~", "~", " ", "é", "名", "\ud800", "\u202e", "conv1", "weights",
               "_weights", ".syntxt", "a", "Z", "0", "-", "_", "layer1.0", "Conv_output_0",
               "..%2F", "/etc/passwd", "C:\\x"]
#: the same, without what an INI section header or an ``Input=`` list cannot hold
INI_PIECES = ["/", "..", ".", "\x01", "\\", ":", "*", "?", "<", ">", "|", "%", "%2F", "%~", "~",
              "é", "名", "\u202e", "conv", "x", "_weights", ".syntxt", "0", "-", "_",
              "layer1.0", "Conv_output_0", "/etc/cron.d/x", "C:\\x"]


@st.composite
def hostile_names(draw, pieces=NAME_PIECES, long=True):
    """Any string: a path, a parent reference, NUL, unicode, or thousands of characters."""
    parts = draw(st.lists(st.sampled_from(pieces), min_size=0, max_size=8))
    name = "".join(parts)
    if long and draw(st.booleans()) and draw(st.booleans()):
        name = name + draw(st.sampled_from(["x", "é", "/a", "..", "%"])) * draw(
            st.integers(100, 3000))
    return name


@st.composite
def ini_names(draw, count):
    """``count`` distinct hostile names usable as INI section names (no ``]``, ``,``, ``;``,
    ``#``, ``=``, whitespace, ``[``, ``@``, ``$``), that are not our own section names."""
    names = draw(st.lists(hostile_names(INI_PIECES, long=False).map(lambda n: n + "c")
                          .filter(lambda n: n.strip() == n and not n.endswith(".Target")),
                          min_size=count, max_size=count, unique=True))
    if draw(st.booleans()):           # sometimes one very long name
        names[0] = names[0] + "x" * draw(st.integers(200, 2000))
    return names


def names_net(names, qat=True, act="SAT", shuffle=False):
    """An INI text of MNIST -> Conv [names[0]] -> BatchNorm [names[1]] (``act`` QAct: SAT or
    PACT) -> (``shuffle``: ChannelShuffle [names[1]/../shuffle]) -> Fc [names[2]] -> Softmax
    [names[3]] with its target: every file name comes from a hostile name (weights, BN
    statistics, α, quantized weights, histograms, target folder)."""
    conv, bn, fc, soft = names
    qw = "QWeight=SAT\nQWeight.Range=15\nQWeight.ApplyScaling=0\n" if qat else ""
    qfc = "QWeight=SAT\nQWeight.Range=15\nQWeight.ApplyScaling=1\n" if qat else ""
    qa = f"QAct={act}\nQAct.Range=15\nActivationFunction=Linear\n" if qat else \
        "ActivationFunction=Rectifier\n"
    fc_input = bn
    if shuffle:
        fc_input = f"{bn}/../shuffle"
        fc_input_section = f"[{fc_input}]\nInput={bn}\nType=ChannelShuffle\nNbOutputs=4\nNbGroups=2\n"
    else:
        fc_input_section = ""
    return (f"[database]\nType=MNIST_IDX_Database\nValidation=0.2\n"
            f"[sp]\nSizeX=28\nSizeY=28\nBatchSize=16\n"
            f"[{conv}]\nInput=sp\nType=Conv\nKernelDims=5 5\nStride=3\nNbOutputs=4\n"
            f"ActivationFunction=Linear\nNoBias=1\n{qw}"
            f"[{bn}]\nInput={conv}\nType=BatchNorm\nNbOutputs=4\n{qa}{fc_input_section}"
            f"[{fc}]\nInput={fc_input}\nType=Fc\nNbOutputs=10\nActivationFunction=Linear\n{qfc}"
            f"[{soft}]\nInput={fc}\nType=Softmax\nNbOutputs=10\nWithLoss=1\n"
            f"[{soft}.Target]\n")


# -- watched temporary root ----------------------------------------------------------------------
def snapshot(root):
    """{relative path: (size, mtime_ns)} of every file and link under ``root``."""
    seen = {}
    for folder, dirs, files in os.walk(root):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            path = os.path.join(folder, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            seen[os.path.relpath(path, root)] = (info.st_size, info.st_mtime_ns)
    return seen


@contextlib.contextmanager
def watched_root(root, allowed):
    """Yield a list that, after the block, holds the files created or changed under ``root``
    outside the folders ``allowed`` (relative to ``root``): writes that escaped."""
    root = pathlib.Path(root)
    before = snapshot(root)
    escaped = []
    try:
        yield escaped
    finally:
        after = snapshot(root)
        for path, info in after.items():
            if before.get(path) == info:
                continue
            if any(path == a or path.startswith(a.rstrip("/") + "/") for a in allowed):
                continue
            escaped.append(path)


# -- class 4: ONNX tensors of every kind with external data ---------------------------------------
TENSOR_KINDS = ["initializer", "sparse values", "sparse indices", "constant value",
                "constant sparse_value", "subgraph initializer", "subgraph constant",
                "function constant", "constant tensors attribute"]


def external_model(kind, location, offset=None, length=None):
    """A small ONNX model (input x (1, 2) -> output y) one of whose tensors, of ``kind``, has
    its data in the external file ``location``; without ``location`` the same model with the
    data inline (it runs: y = x + c)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    values = numpy.array([1.0, 2.0], numpy.float32)

    def external(tensor):
        if location is None:
            return tensor
        tensor.ClearField("raw_data")
        tensor.ClearField("float_data")
        tensor.ClearField("int64_data")
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", offset), ("length", length)):
            if value is not None:
                entry = tensor.external_data.add()
                entry.key, entry.value = key, str(value)
        return tensor

    def dense(name="c"):
        return numpy_helper.from_array(values.reshape(1, 2), name)

    def sparse():
        vals = numpy_helper.from_array(values, "c")
        idx = numpy_helper.from_array(numpy.array([0, 1], numpy.int64), "c_indices")
        if kind == "sparse indices":
            external(idx)
        else:
            external(vals)
        return helper.make_sparse_tensor(vals, idx, [1, 2])

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
    nodes, inits, sparse_inits, functions = [], [], [], []
    add = helper.make_node("Add", ["x", "c"], ["y"], name="add")
    opsets = [helper.make_opsetid("", 17)]
    if kind == "initializer":
        inits.append(external(dense()))
    elif kind in ("sparse values", "sparse indices"):
        sparse_inits.append(sparse())
    elif kind == "constant value":
        nodes.append(helper.make_node("Constant", [], ["c"], value=external(dense("cv"))))
    elif kind == "constant sparse_value":
        nodes.append(helper.make_node("Constant", [], ["c"], sparse_value=sparse()))
    elif kind == "constant tensors attribute":
        node = helper.make_node("Constant", [], ["c"], value=dense("cv"))
        extra = node.attribute.add()       # a TENSORS attribute (unused by Constant)
        extra.name, extra.type = "n2d2py_extra", onnx.AttributeProto.TENSORS
        extra.tensors.append(external(dense("extra")))
        nodes.append(node)
    elif kind in ("subgraph initializer", "subgraph constant"):
        inner_nodes, inner_inits = [], []
        if kind == "subgraph initializer":
            inner_inits.append(external(dense("inner")))
            inner_nodes.append(helper.make_node("Identity", ["inner"], ["out"]))
        else:
            inner_nodes.append(helper.make_node("Constant", [], ["out"],
                                                value=external(dense("inner"))))
        branch = helper.make_graph(inner_nodes, "branch", [], [
            helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 2])], inner_inits)
        cond = numpy_helper.from_array(numpy.array(True), "cond")
        inits.append(cond)
        nodes.append(helper.make_node("If", ["cond"], ["c"], then_branch=branch,
                                      else_branch=branch))
    elif kind == "function constant":
        body = [helper.make_node("Constant", [], ["k"], value=external(dense("fk"))),
                helper.make_node("Identity", ["k"], ["out"])]
        functions.append(helper.make_function("n2d2py.test", "MakeC", [], ["out"], body,
                                              opsets))
        nodes.append(helper.make_node("MakeC", [], ["c"], domain="n2d2py.test"))
        opsets = opsets + [helper.make_opsetid("n2d2py.test", 1)]
    else:
        raise ValueError(kind)
    graph = helper.make_graph(nodes + [add], "g", [x], [y], inits, sparse_initializer=sparse_inits)
    return helper.make_model(graph, opset_imports=opsets, functions=functions, ir_version=9)


# -- class 6: a training state mutated ------------------------------------------------------------
STATE_MUTATIONS = ["json field type", "json field removed", "json field added",
                   "json number", "json truncated", "json not an object", "array scalar",
                   "array shape", "array int64", "array complex", "array removed",
                   "array added", "npz truncated", "npz bytes flipped", "npz not a zip",
                   "fifo json", "fifo npz", "directory npz", "loop order out of range"]
HOSTILE_VALUES = [None, -1, 2 ** 70, 1.5, float("nan"), "x", [], {}, True, "1e999", 0]


def _paths(value, prefix=()):
    """Every (path, value) of a JSON document (objects and lists walked)."""
    yield prefix, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


def _set(document, path, value):
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


def _rewrite_npz(path, change):
    """Apply ``change`` to the arrays of the ``.npz`` at ``path``; an archive an earlier
    mutation damaged is left as it is."""
    arrays = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                with archive.open(info) as handle:
                    arrays[info.filename[:-4]] = numpy.lib.format.read_array(handle)
    except (zipfile.BadZipFile, ValueError, EOFError, OSError, KeyError):
        return
    if not arrays:
        return
    with numpy.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")     # casts of NaN or complex values: wanted here
        change(arrays)
    with open(path, "wb") as handle:
        numpy.savez(handle, **arrays)


def mutate_state(draw, folder):
    """Damage the training state in ``folder`` (``state.json`` + ``arrays.npz``) in one of the
    ``STATE_MUTATIONS`` ways; returns a description."""
    folder = pathlib.Path(folder)
    kind = draw(st.sampled_from(STATE_MUTATIONS))
    state, npz = folder / "state.json", folder / "arrays.npz"
    if not (state.is_file() and npz.is_file()):     # a FIFO from an earlier mutation: done
        return "nothing more (a file is no longer a regular file)"
    document = json.loads(state.read_text())
    paths = [p for p, _ in _paths(document) if p]
    if kind.startswith("json") and kind not in ("json truncated", "json not an object"):
        path = draw(st.sampled_from(paths))
        if kind == "json field removed" and isinstance(path[-1], str):
            parent = document
            for key in path[:-1]:
                parent = parent[key]
            del parent[path[-1]]
        elif kind == "json field added":
            _set(document, path, {"n2d2py": 1} if not isinstance(path[-1], int) else [1, 2])
        else:
            _set(document, path, draw(st.sampled_from(HOSTILE_VALUES)))
        state.write_text(json.dumps(document))
        return f"{kind} at {path}"
    if kind == "json truncated":
        text = state.read_text()
        state.write_text(text[:draw(st.integers(0, len(text) - 1))])
    elif kind == "json not an object":
        state.write_text(json.dumps(draw(st.sampled_from([[1], 3, "x", None]))))
    elif kind in ("fifo json", "fifo npz"):
        target = state if kind == "fifo json" else npz
        target.unlink()
        os.mkfifo(target)
    elif kind == "directory npz":
        npz.unlink()
        npz.mkdir()
    elif kind in ("npz truncated", "npz bytes flipped", "npz not a zip"):
        data = bytearray(npz.read_bytes())
        if kind == "npz truncated":
            data = data[:draw(st.integers(0, len(data) - 1))]
        elif kind == "npz not a zip":
            data = bytearray(b"\x93NUMPY" + bytes(draw(st.binary(max_size=64))))
        else:
            for _ in range(draw(st.integers(1, 8))):
                i = draw(st.integers(0, len(data) - 1))
                data[i] ^= 1 << draw(st.integers(0, 7))
        npz.write_bytes(bytes(data))
    else:
        def change(arrays):
            key = draw(st.sampled_from(sorted(arrays)))
            a = arrays[key]
            if kind == "array scalar":
                arrays[key] = numpy.array(a.ravel()[0] if a.size else 0, a.dtype)
            elif kind == "array shape":
                arrays[key] = numpy.resize(a, (a.size + 1,)) if draw(st.booleans()) \
                    else a.reshape(-1, 1) if a.ndim != 2 else a.ravel()
            elif kind == "array int64":
                arrays[key] = a.astype(numpy.int64)
            elif kind == "array complex":
                arrays[key] = a.astype(numpy.complex64)
            elif kind == "array removed":
                del arrays[key]
            elif kind == "array added":
                arrays["param/999"] = numpy.zeros(3, numpy.float32)
            elif kind == "loop order out of range":
                if "loop/order" in arrays:
                    arrays["loop/order"] = arrays["loop/order"] + 10 ** 6
                else:
                    arrays[key] = a.astype(numpy.float64)
        _rewrite_npz(npz, change)
    return kind


def copy_state(source, target):
    shutil.copytree(source, target)
    return pathlib.Path(target)
