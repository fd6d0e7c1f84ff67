"""Issue 12, "names never become paths, bounded expansion, and every hostile input ends in one
line": one regression test (or a few) per class of the issue, each drawing its inputs from a
generator (``hostile.py``), and what held before, kept.

Every refusal through the command is exit status 2 and exactly one ``n2d2py: error:`` line
naming the file at fault (``cli_runner.error_line`` asserts no traceback). Inputs are small: each
case must end well within the hypothesis deadline (a hang fails the test).
"""
import functools
import json
import os
import pathlib
import resource
import shutil
import signal
import subprocess
import sys
import time
import warnings

import numpy
import pytest
from cli_runner import assert_error, error_line, run_main, run_subprocess, start
from hypothesis import HealthCheck, assume, given, settings, strategies as st

import hostile
from n2d2py import checkpoint
from n2d2py.data import database_from_ini
from n2d2py.errors import IniError, N2D2Error, OnnxError, WeightsError, printable
from n2d2py.ini import load_ini, parse_ini_text
from n2d2py.io import names, syntxt


def cases(count):
    """Hypothesis settings of these tests: ``count`` cases, the same ones every run (CI)."""
    return settings(max_examples=count, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


class Cli:
    """``cli(*argv)`` -> (status, stdout, stderr) of ``cli.main`` run in ``cli.folder``;
    ``cli.fresh()`` makes a new empty run folder the working directory (one per generated case)
    and returns it."""

    def __init__(self, root, monkeypatch, capsys):
        self.root, self.monkeypatch, self.capsys = root, monkeypatch, capsys
        self.count = 0
        self.folder = self.fresh()

    def fresh(self):
        self.count += 1
        self.folder = self.root / f"run{self.count}"
        self.folder.mkdir()
        self.monkeypatch.chdir(self.folder)
        return self.folder

    def __call__(self, *argv):
        self.capsys.readouterr()
        status = run_main(*argv)
        out, err = self.capsys.readouterr()
        assert "Traceback" not in out + err
        return status, out, err


@pytest.fixture
def run(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("N2D2PY_DEBUG", raising=False)
    monkeypatch.setenv("N2D2_DATA", str(tmp_path / "no_data"))   # the bundled MNIST subset
    return Cli(tmp_path, monkeypatch, capsys)


def refused(result, *fragments):
    """The one error line of a refused command, checked to hold ``fragments``."""
    status, out, err = result
    assert status == 2, (status, out[-2000:], err)
    line = error_line(err)
    assert_error(line, *fragments)
    return line


# == 1. names never become paths ===============================================================
@cases(300)
@given(st.lists(hostile.hostile_names(), min_size=1, max_size=6))
def test_file_stems_are_confined_injective_and_reversible(names_drawn):
    stems = {}
    for name in names_drawn:
        stem = names.file_stem(name)
        parts = stem.split("/")
        assert stem and not stem.startswith("/") and "\x00" not in stem
        assert all(p not in ("", ".", "..") and len(p.encode("utf-8", "surrogatepass")) <= 200
                   for p in parts), stem
        folder = os.path.realpath("/tmp/x")
        assert os.path.realpath(names.cell_file(folder, name, "_weights.syntxt")).startswith(
            folder + "/")
        assert names.name_of_stem(stem) in (name, None)      # None: a hashed very long name
        if names.is_plain(name):
            assert stem == name                              # N2D2's own file name
        stems.setdefault(stem, set()).add(name)
    assert all(len(owners) == 1 for owners in stems.values()), stems


@cases(200)
@given(st.lists(hostile.hostile_names(long=False), min_size=2, max_size=5, unique=True))
def test_c_identifiers_are_unique_or_the_clash_names_both(names_drawn):
    from n2d2py.qat.export_c import C_SUFFIXES
    try:
        identifiers = names.c_identifiers(names_drawn, suffixes=C_SUFFIXES)
    except N2D2Error as exc:
        clashing = [n for n in names_drawn if f"'{printable(n)}'" in str(exc)]
        assert len(clashing) == 2, str(exc)
        return
    assert len(set(identifiers.values())) == len(names_drawn)
    assert all(i.isascii() and (i.replace("_", "a").isalnum()) and i[0].isalpha()
               for i in identifiers.values())


def _build(text, path):
    from n2d2py.deepnet import DeepNet
    return DeepNet.from_ini(parse_ini_text(text, str(path)), load_data=False, seed=1)


@cases(25)
@given(hostile.ini_names(4), st.sampled_from(["SAT", "PACT"]), st.booleans())
def test_hostile_cell_names_write_and_read_only_inside_the_folder(tmp_path_factory, names4, act,
                                                                   shuffle):
    """Weights, BN statistics, SAT/PACT α, quantized weights, histograms, weights_quantized/,
    a ChannelShuffle on the way: every file inside its folder; reading the folder back gives
    the same values."""
    from n2d2py.qat import fuse_qat
    from n2d2py.qat.export import export_weights_quantized
    root = tmp_path_factory.mktemp("root")
    text = hostile.names_net(names4, act=act, shuffle=shuffle)
    net = _build(text, root / "net.ini")
    with hostile.watched_root(root, ["run"]) as escaped:
        net.export_weights(root / "run" / "weights")
        fused = fuse_qat(net)
        export_weights_quantized(fused, root / "run" / "weights_quantized")
    assert escaped == []
    assert {p.name for p in (root / "run").iterdir()} == {"weights", "weights_quantized"}
    other = _build(text, root / "net.ini")
    other.import_weights(root / "run" / "weights")
    for a, b in zip(net.parameters(), other.parameters()):
        numpy.testing.assert_allclose(a.data, b.data, rtol=1e-5, atol=1e-7)


@cases(10)
@given(st.lists(hostile.hostile_names(long=False).map(lambda n: n + "c"), min_size=3, max_size=3,
                unique=True))
def test_python_api_cell_names_stay_inside_the_folder(tmp_path_factory, names3):
    """Cells named through N2D2's Python API (``name=``) write ``export_free_parameters``
    (weights, BatchNorm statistics, SAT α) inside the folder and read it back."""
    import n2d2py as n2d2
    from n2d2py import n2d2_ip
    from n2d2py.cells.nn import BatchNorm2d, Conv, Fc
    root = tmp_path_factory.mktemp("api")

    def net(seed):
        n2d2.global_variables.seed = seed
        return n2d2.cells.Sequence([
            Conv(1, 4, [3, 3], name=names3[0], quantizer=n2d2_ip.quantizer.SATCell(range=15)),
            BatchNorm2d(4, name=names3[1], activation=n2d2.activation.Linear(
                quantizer=n2d2_ip.quantizer.SATAct(alpha=3.0, range=15))),
            Fc(4 * 6 * 6, 3, name=names3[2])])
    data = numpy.random.default_rng(1).random((2, 1, 8, 8), numpy.float32)
    a, b = net(1), net(2)
    a(n2d2.Tensor.from_numpy(data))
    with hostile.watched_root(root, ["run"]) as escaped:
        a.export_free_parameters(str(root / "run" / "w"))
    assert escaped == [] and len(list((root / "run" / "w").rglob("*.syntxt"))) >= 8
    b(n2d2.Tensor.from_numpy(data))
    b.import_free_parameters(str(root / "run" / "w"))
    for k in range(3):
        for p, q in zip(a[k].N2D2().parameters(), b[k].N2D2().parameters()):
            numpy.testing.assert_allclose(p.data, q.data, rtol=1e-5)


def test_clashing_c_identifiers_stop_the_c_export_naming_both(run, tmp_path):
    text = hostile.names_net(["conv-1", "bn", "conv_1", "soft"])
    (run.folder / "net.ini").write_text(text)
    line = refused(run("net.ini", "--qat-sat", "-w", os.devnull, "--export", "C"),
                   "'conv-1'", "'conv_1'", "C identifier")
    assert not (run.folder / "export_C_int8").exists(), line


def pytorch_named_model(path):
    """A small model whose names are PyTorch 2's (``/layer1/layer1.0/conv1/Conv_output_0``,
    initializers ``layer1.0.conv1.weight``)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = numpy.random.default_rng(3)
    inits = [numpy_helper.from_array((rng.standard_normal((4, 1, 5, 5)) * 0.3).astype(numpy.float32),
                                     "layer1.0.conv1.weight"),
             numpy_helper.from_array(numpy.zeros(4, numpy.float32), "layer1.0.conv1.bias"),
             numpy_helper.from_array((rng.standard_normal((10, 256)) * 0.05).astype(numpy.float32),
                                     "fc.weight"),
             numpy_helper.from_array(numpy.zeros(10, numpy.float32), "fc.bias")]
    nodes = [helper.make_node("Conv", ["input", "layer1.0.conv1.weight", "layer1.0.conv1.bias"],
                              ["/layer1/layer1.0/conv1/Conv_output_0"],
                              name="/layer1/layer1.0/conv1/Conv", kernel_shape=[5, 5],
                              strides=[3, 3]),
             helper.make_node("Relu", ["/layer1/layer1.0/conv1/Conv_output_0"],
                              ["/layer1/layer1.0/relu/Relu_output_0"], name="/layer1/layer1.0/relu/Relu"),
             helper.make_node("Flatten", ["/layer1/layer1.0/relu/Relu_output_0"],
                              ["/Flatten_output_0"], name="/Flatten", axis=1),
             helper.make_node("Gemm", ["/Flatten_output_0", "fc.weight", "fc.bias"],
                              ["/fc/Gemm_output_0"], name="/fc/Gemm", transB=1)]
    graph = helper.make_graph(nodes, "main_graph",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                             [1, 1, 28, 28])],
                              [helper.make_tensor_value_info("/fc/Gemm_output_0",
                                                             TensorProto.FLOAT, [1, 10])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


PYTORCH_INI = """[database]
Type=MNIST_IDX_Database
Validation=0.1
[sp]
SizeX=28
SizeY=28
BatchSize=16
[onnx]
Input=sp
Type=ONNX
File=../model/model.onnx
[/layer1/layer1.0/conv1/Conv_output_0]
QWeight=SAT
QWeight.Range=15
[soft]
Input=/fc/Gemm_output_0
Type=Softmax
NbOutputs=10
WithLoss=1
[soft.Target]
"""


def test_pytorch_exported_names_train_resume_test_and_export_inside_the_folder(run, tmp_path):
    (tmp_path / "model").mkdir()
    pytorch_named_model(tmp_path / "model" / "model.onnx")
    (run.folder / "net.ini").write_text(PYTORCH_INI)
    with hostile.watched_root(tmp_path, [run.folder.name]) as escaped:
        status, out, err = run("net.ini", "--learn", "64", "--log", "32", "--seed", "2")
        assert status == 0, err
        status, out, err = run("net.ini", "--learn", "96", "--log", "32", "-l", "net_state")
        assert status == 0 and "Resuming from 'net_state'" in out, err
        status, out, err = run("net.ini", "--test", "-w", "weights", "--nb-test", "50")
        assert status == 0, err
        status, out, err = run("net.ini", "-w", "weights", "--export", "ONNX")
        assert status == 0, err
    assert escaped == []
    weights = {str(p.relative_to(run.folder / "weights"))
               for p in (run.folder / "weights").rglob("*") if p.is_file()}
    stem = names.file_stem("/layer1/layer1.0/conv1/Conv_output_0")
    assert f"{stem}_weights.syntxt" in weights and f"{stem}_quant_weights.syntxt" in weights
    assert (run.folder / "net.onnx").is_file()


def test_n2d2s_own_folder_layout_of_a_pytorch_name_is_read(tmp_path):
    """N2D2 writes ``weights//layer1/x_weights.syntxt`` for a cell ``/layer1/x``: it loads."""
    (tmp_path / "layer1").mkdir()
    (tmp_path / "layer1" / "x_weights.syntxt").write_text("1 2 \n")
    path = syntxt.weights_path(tmp_path, "/layer1/x", "weights")
    assert syntxt.read_numbers(path, 2).tolist() == [1, 2]


# == 2. expansion bounded per document ========================================================
def expansion_refused(text, path="net.ini", **limits):
    """Parse and read every key; the IniError must say which limit it hit."""
    start_time = time.perf_counter()
    with pytest.raises(IniError) as info:
        document = parse_ini_text(text, path)
        for section in document:
            for key in section.keys():
                section.get(key)
    seconds = time.perf_counter() - start_time
    assert "expansion limit" in str(info.value) or "more than" in str(info.value), info.value
    assert str(info.value).startswith(path) or "tpl" in str(info.value)
    return info.value, seconds


@cases(12)
@given(st.integers(2, 12), st.integers(8, 40), st.sampled_from(["variables", "references"]))
def test_definitions_that_multiply_each_other_stop_at_the_budget(fan, depth, kind):
    assume(fan ** depth > 10 ** 9)
    depth = min(depth, 60)            # references nest at most 64 deep
    if kind == "variables":
        lines = ["$V0=xy"] + [f"$V{i}=" + " ".join([f"${{V{i - 1}}}"] * fan)
                              for i in range(1, depth + 1)] + ["[s]", f"K=${{V{depth}}}"]
    else:
        lines = ["[a0]", "K=xy"] + [f"[a{i}]\nK=" + " ".join([f"[a{i - 1}]K"] * fan)
                                    for i in range(1, depth + 1)]
    error, seconds = expansion_refused("\n".join(lines))
    assert "[" in str(error) and "] " in str(error)       # file:line [section] key
    assert seconds < 10, seconds


@cases(10)
@given(st.lists(st.integers(60, 90000), min_size=2, max_size=4))
def test_nested_template_loops_are_bounded_in_total(tmp_path_factory, ranges):
    assume(numpy.prod([float(r) for r in ranges]) > 300_000)
    folder = tmp_path_factory.mktemp("loops")
    text = "".join(f"{{% for I{k} in range({r}) %}}" for k, r in enumerate(ranges)) + "x" + \
        "{% endfor %}" * len(ranges)
    (folder / "t.ini.tpl").write_text(text)
    (folder / "net.ini").write_text("[s@t.ini.tpl]\n")
    with pytest.raises(IniError, match="TEMPLATE_(STEPS|CHARACTERS)") as info:
        load_ini(folder / "net.ini")
    assert "t.ini.tpl:1" in str(info.value)


@cases(10)
@given(st.floats(1e15, 1e19), st.integers(1, 2000))
def test_float_range_counter_that_stops_moving_still_ends(tmp_path_factory, start_value, span):
    from n2d2py.ini import render_template
    text = f"{{% for I in range({start_value!r}, {start_value + span!r}) %}}a{{% endfor %}}"
    out = render_template(text, {})
    end = start_value + span          # a float: at 4.6e18 it moves in steps of 1024
    assert len(out) == max(0, int(numpy.ceil(end - start_value))) <= 100_000


@cases(6)
@given(st.integers(3, 5), st.integers(12, 15))
def test_self_including_template_with_a_guard_stops_at_the_budget(tmp_path_factory, fan, depth):
    """Each level renders ``fan`` sections including the template again until a key reaches
    ``depth`` characters: fan**depth renders under the depth limit, stopped by the budget."""
    folder = tmp_path_factory.mktemp("self")
    branches = "".join(f"[{{{{SECTION_NAME}}}}{k}@t.ini.tpl]\nD={{{{D}}}}x\n" for k in range(fan))
    (folder / "t.ini.tpl").write_text(f"{{% if D != {'x' * depth} %}}\n{branches}{{% endif %}}\n")
    (folder / "net.ini").write_text("[s@t.ini.tpl]\nD=x\n")
    with pytest.raises(IniError, match="expansion limit") as info:
        load_ini(folder / "net.ini")
    assert "t.ini.tpl" in str(info.value)


@cases(6)
@given(st.integers(3000, 20000), st.integers(1, 3))
def test_base_section_chains_share_entries_and_stop_at_the_budget(depth, keys):
    lines = ["[s0]"] + [f"K0_{j}=1" for j in range(keys)]
    for i in range(1, depth):
        lines += [f"[s{i}] s{i - 1}"] + [f"K{i}_{j}=1" for j in range(keys)]
    text = "\n".join(lines)
    total = keys * depth * (depth - 1) // 2
    from n2d2py.ini import limits
    budget = limits.INHERITED_ENTRIES + limits.PER_SOURCE_CHARACTER["INHERITED_ENTRIES"] * len(text)
    if total <= budget:
        document = parse_ini_text(text, "net.ini")
        last = document.section(f"s{depth - 1}")
        assert last.get("K0_0") == "1" and last.entries["K0_0"] is document.section("s0").entries["K0_0"]
    else:
        with pytest.raises(IniError, match="INHERITED_ENTRIES") as info:
            parse_ini_text(text, "net.ini")
        assert str(info.value).startswith("net.ini:")


def test_inherited_keys_keep_their_own_read_state():
    document = parse_ini_text("[base]\nA=1\nB=2\n[x] base\n[y] base\n", "net.ini")
    document.section("x").get("A")
    assert document.section("x").unread_keys() == ["B"]
    assert document.section("y").unread_keys() == ["A", "B"]
    assert document.section("base").unread_keys() == ["A", "B"]


# == 3. folders that loop =======================================================================
@cases(15)
@given(st.lists(st.sampled_from(["parent", "root", "sibling", "self", "twice"]), min_size=1,
                max_size=4), st.sampled_from([-1, 1, 2, 5]))
def test_dir_database_visits_every_folder_once(tmp_path_factory, links, depth):
    import cv2
    root = tmp_path_factory.mktemp("dir")
    image = numpy.full((4, 4), 7, numpy.uint8)
    for label in ("a", "b"):
        (root / label / "sub").mkdir(parents=True)
        cv2.imwrite(str(root / label / "0.png"), image)
        cv2.imwrite(str(root / label / "sub" / "1.png"), image)
    for k, kind in enumerate(links):
        target = {"parent": root / "a", "root": root, "sibling": root / "b", "self": root / "a" / "sub",
                  "twice": root / "b" / "sub"}[kind]
        os.symlink(target, root / "a" / "sub" / f"link{k}")
    db = database_from_ini(parse_ini_text(f"[database]\nType=DIR_Database\nDataPath={root}\n"
                                          f"Learn=1.0\nDepth={depth}\n"))
    real = [os.path.realpath(path) for path in db.file_names]
    assert len(real) == len(set(real)) and len(real) == (2 if depth == 1 else 4)


def test_dir_database_depth_is_bounded(tmp_path):
    from n2d2py.data.dir_database import MAX_DEPTH
    folder = tmp_path
    for k in range(MAX_DEPTH + 2):
        folder = folder / "d"
    folder.mkdir(parents=True)
    with pytest.raises(N2D2Error, match="deeper than"):
        database_from_ini(parse_ini_text(f"[database]\nType=DIR_Database\nDataPath={tmp_path}\n"
                                         f"Learn=1.0\nDepth=-1\n"))


def image_folders():
    """tests/data/image_folders.py (the image database layouts), imported by its path."""
    import importlib.util
    path = pathlib.Path(__file__).parent / "data" / "image_folders.py"
    spec = importlib.util.spec_from_file_location("image_folders", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ESCAPES = ["../", "/", "a/../../", "..\\", "./../"]


@cases(12)
@given(st.sampled_from(ESCAPES), hostile.hostile_names(long=False), st.booleans())
def test_image_databases_read_only_inside_their_folders(tmp_path_factory, escape, name, synset):
    """ILSVRC2012's synsets and val.txt names are paths inside ``train/`` and ``val/``: one that
    leaves them (``..``, absolute) is refused naming the list file. A symbolic link the user
    put in ``val/`` (images kept elsewhere) is followed."""
    name = "".join(ch for ch in name if not ch.isspace() and ch != "\x00")   # one text field
    name = name.encode("utf-8", "ignore").decode() or "x"
    root = tmp_path_factory.mktemp("ilsvrc")
    image_folders().make_ilsvrc(root, per_class=1, val=2, synsets=["n1", "n2"])
    first = root / "val" / "ILSVRC2012_val_00000001.JPEG"
    (root.parent / "outside.JPEG").write_bytes(first.read_bytes())
    os.symlink(root.parent / "outside.JPEG", root / "val" / "link.JPEG")
    (root / "val.txt").write_text(f"{first.name} 0\nlink.JPEG 1\n")
    ini = (f"[database]\nType=ILSVRC2012_Database\nDataPath={root}\n"
           f"LabelPath={root}/synsets.txt\nLearn=1.0\n")
    db = database_from_ini(parse_ini_text(ini))
    assert db.file_name(len(db) - 1) == str(root / "val" / "link.JPEG")
    assert db.image(len(db) - 1).shape == db.image(len(db) - 2).shape
    if synset:
        (root / "synsets.txt").write_text(f"n1\n{escape}{name}\n")
    else:
        (root / "val.txt").write_text(f"{first.name} 0\n{escape}{name} 1\n")
    with pytest.raises(N2D2Error) as info:
        database_from_ini(parse_ini_text(ini))
    assert_error(str(info.value), "synsets.txt" if synset else "val.txt:2", "inside")


@pytest.mark.parametrize("what", ["csv", "synsets", "val"])
def test_a_fifo_given_as_a_data_file_is_never_opened(tmp_path, what):
    """A named pipe where a database reads a file would block forever: refused unopened."""
    image_folders().make_ilsvrc(tmp_path / "db", per_class=1, val=2, synsets=["n1", "n2"])
    fifo = {"csv": tmp_path / "data.csv", "synsets": tmp_path / "db" / "synsets.txt",
            "val": tmp_path / "db" / "val.txt"}[what]
    if fifo.exists():
        fifo.unlink()
    os.mkfifo(fifo)
    text = (f"[database]\nType=CSV_Database\nDataPath={fifo}\n" if what == "csv" else
            f"[database]\nType=ILSVRC2012_Database\nDataPath={tmp_path / 'db'}\n"
            f"LabelPath={tmp_path / 'db' / 'synsets.txt'}\nLearn=1.0\n")
    start = time.monotonic()
    with pytest.raises(N2D2Error) as info:
        database_from_ini(parse_ini_text(text))
    assert time.monotonic() - start < 2
    assert_error(str(info.value), fifo.name, "not a regular file")


# == 4. ONNX external data, every tensor kind =================================================
@cases(40)
@given(st.sampled_from(hostile.TENSOR_KINDS),
       st.sampled_from(["../outside.bin", "ABS", "link.bin", "fifo.bin", "missing.bin",
                        "sub/../../outside.bin", "in.bin\x00x", "C:\\outside.bin", "."]))
def test_external_data_of_every_tensor_stays_in_the_models_folder(tmp_path_factory, kind, where):
    import onnx
    from n2d2py.onnx.graph import load_model
    root = tmp_path_factory.mktemp("onnx")
    (root / "model").mkdir()
    numpy.array([5, 6], numpy.float32).tofile(root / "outside.bin")
    os.symlink(root / "outside.bin", root / "model" / "link.bin")
    os.mkfifo(root / "model" / "fifo.bin")
    location = str(root / "outside.bin") if where == "ABS" else where
    onnx.save(hostile.external_model(kind, location), root / "model" / "m.onnx")
    cwd = os.getcwd()
    os.chdir(root / "model")      # a location resolved from the working directory would load
    try:
        with pytest.raises(OnnxError) as info:
            load_model(root / "model" / "m.onnx")
    finally:
        os.chdir(cwd)
    assert "m.onnx" in str(info.value) and ("tensor '" in str(info.value) or "initializer '" in str(info.value))


# == 5. one run per folder =======================================================================
@pytest.fixture(scope="module")
def busy_folder(tmp_path_factory):
    """A folder in which a training runs (the lock is held) for the module's tests."""
    from tiny_nets import ONE_FC_28, write_ini
    folder = tmp_path_factory.mktemp("busy")
    write_ini(folder, ONE_FC_28)
    process = start(folder, "net.ini", "--learn-epoch", "200", "--seed", "1",
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                    env={"N2D2_DATA": "/nonexistent"})
    deadline = time.monotonic() + 60
    while not ((folder / ".n2d2py.lock.json").exists() and (folder / "seed.dat").exists()):
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        time.sleep(0.05)
    yield folder, process
    process.send_signal(signal.SIGKILL)
    process.wait()


@cases(4)
@given(st.sampled_from([["--learn-epoch", "1"], ["--learn", "32"], ["--test"],
                        ["--learn-epoch", "2", "-l", "net_state"], ["-w", "weights", "--export", "ONNX"]]))
def test_a_second_run_in_a_busy_folder_stops_at_once_naming_the_first(busy_folder, argv):
    folder, process = busy_folder
    before = hostile.snapshot(folder)
    started = time.monotonic()
    status, out, err = run_subprocess(folder, "net.ini", *argv, env={"N2D2_DATA": "/nonexistent"})
    assert status == 2, err
    line = error_line(err)
    assert_error(line, ".n2d2py.lock", f"PID {process.pid}", "started", "--learn-epoch 200")
    assert time.monotonic() - started < 30
    changed = [p for p, info in hostile.snapshot(folder).items()
               if p.startswith(("seed.dat", "n2d2.args")) and before.get(p) != info]
    assert changed == []                  # the first run's seed.dat untouched


def test_a_killed_run_leaves_no_lock(tmp_path):
    from tiny_nets import ONE_FC_28, write_ini
    write_ini(tmp_path, ONE_FC_28)
    process = start(tmp_path, "net.ini", "--learn-epoch", "200", stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, env={"N2D2_DATA": "/nonexistent"})
    deadline = time.monotonic() + 60
    while not (tmp_path / ".n2d2py.lock.json").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    status, out, err = run_subprocess(tmp_path, "net.ini", "--learn", "16", "--log", "16",
                                      env={"N2D2_DATA": "/nonexistent"})
    assert status == 0, err


# == 6. resume state checked before it is trusted ============================================
@pytest.fixture(scope="module")
def saved_state(tmp_path_factory):
    from tiny_nets import CONV_BN_SAT_12, write_ini
    folder = tmp_path_factory.mktemp("state")
    write_ini(folder, CONV_BN_SAT_12)
    status, out, err = run_subprocess(folder, "net.ini", "--learn", "48", "--log", "32",
                                      "--seed", "5", env={"N2D2_DATA": "/nonexistent"})
    assert status == 0, err
    return folder


@cases(60)
@given(st.data())
def test_a_mutated_training_state_is_refused_naming_its_file(saved_state, tmp_path_factory, data):
    from n2d2py.deepnet import DeepNet
    from n2d2py.learn import learn
    folder = tmp_path_factory.mktemp("mutated")
    state = hostile.copy_state(saved_state / "net_state", folder / "net_state")
    what = hostile.mutate_state(data.draw, state)
    net = DeepNet.from_ini(saved_state / "net.ini", seed=5)
    try:
        ckpt = checkpoint.load(state)
        learn(net, stimuli=64, log=32, resume=ckpt, out=open(os.devnull, "w"), workdir=str(folder),
              reload_best=False, save_state=False)
    except N2D2Error as exc:
        assert exc.file and os.fspath(exc.file).startswith(str(state)), (what, str(exc))
        assert "\n" not in str(exc)
        return
    # accepted: a value of the right type (a JSON counter), or bytes that hold no value (a
    # zip timestamp): then the arrays are exactly the saved ones
    assert not what.startswith(("array", "fifo", "directory", "json truncated", "npz t",
                                "npz n")), what
    if what.startswith("npz"):
        saved = checkpoint.load(saved_state / "net_state").arrays
        assert all(numpy.array_equal(saved[k], ckpt.arrays[k]) for k in saved)


def test_resume_still_works_and_is_exact(saved_state, tmp_path):
    from n2d2py.deepnet import DeepNet
    ckpt = checkpoint.load(saved_state / "net_state")
    net = DeepNet.from_ini(saved_state / "net.ini", seed=5)
    checkpoint.restore_net(net, ckpt.meta["network"], ckpt.arrays, ckpt.folder)
    assert numpy.array_equal(net.parameters()[0].data, ckpt.arrays["param/0"])


# == 7. state validated before it is written =================================================
@cases(12)
@given(st.one_of(st.integers(-2 ** 40, -1), st.integers(2 ** 32, 2 ** 80)))
def test_a_refused_seed_never_reaches_seed_dat(run, tmp_path, seed):
    folder = run.fresh()
    from tiny_nets import TWO_CONV_28
    (folder / "net.ini").write_text(TWO_CONV_28)
    (folder / "seed.dat").write_text("1234\n")
    refused(run("net.ini", "--test", "--seed", str(seed)), "--seed", "expected a seed")
    assert (folder / "seed.dat").read_text() == "1234\n"


@cases(12)
@given(st.one_of(st.sampled_from([b"", b"\n", b"-3", b"0", b"abc", b"99999999999", b"\x00\xff",
                                  b"1e5", b"FIFO", b"DIR"]), st.binary(max_size=20)))
def test_a_bad_seed_dat_is_named(run, tmp_path, content):
    folder = run.fresh()
    from tiny_nets import TWO_CONV_28
    (folder / "net.ini").write_text(TWO_CONV_28)
    seed = folder / "seed.dat"
    words = content.split()
    assume(not (words and words[0].isdigit() and 0 < int(words[0]) < 2 ** 32))
    if content == b"FIFO":
        os.mkfifo(seed)
    elif content == b"DIR":
        seed.mkdir()
    else:
        seed.write_bytes(content)
    refused(run("net.ini", "--test", "-w", os.devnull, "--nb-test", "1"), "seed.dat")


# == 8. outputs kept under their own names ===================================================
@cases(15)
@given(st.lists(st.one_of(st.sampled_from(["file", "allow_pickle", "args", "kwds", "arr_0",
                                           "x.npy", "a/b", "é", "..", "/abs"]),
                          hostile.hostile_names(long=False).filter(   # ONNX names: UTF-8
                              lambda n: n and "\x00" not in n and "\ud800" not in n)),
                min_size=2, max_size=5, unique=True))
def test_infer_saves_every_output_under_its_own_name(run, tmp_path, outputs):
    folder = run.fresh()
    import onnx
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
    nodes = [helper.make_node("Mul" if k % 2 else "Add", ["x", "x"], [name])
             for k, name in enumerate(outputs)]
    ys = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 2]) for name in outputs]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], ys),
                              opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, folder / "m.onnx")
    numpy.save(folder / "in.npy", numpy.array([[1.5, -2.0]], numpy.float32))
    status, out, err = run("m.onnx", "--infer", "in.npy", "-o", "out.npz")
    assert status == 0, err
    with numpy.load(folder / "out.npz") as saved:
        assert sorted(saved.files) == sorted(outputs)
        for k, name in enumerate(outputs):
            expected = [[2.25, 4.0]] if k % 2 else [[3.0, -4.0]]
            assert saved[name].tolist() == expected


# == 9. constants checked before fusing ======================================================
@pytest.fixture(scope="module")
def sat_weights(tmp_path_factory):
    root = tmp_path_factory.mktemp("sat")
    text = hostile.names_net(["conv1", "bn1", "fc1", "soft"])
    (root / "net.ini").write_text(text)
    _build(text, root / "net.ini").export_weights(root / "weights")
    return root


@cases(20)
@given(st.sampled_from([("bn1", "_QAct_SAT_Alpha.syntxt"), ("bn1", "_scales.syntxt"),
                        ("bn1", "_variances.syntxt"), ("bn1", "_means.syntxt"),
                        ("bn1", "_biases.syntxt"), ("conv1", "_weights.syntxt"),
                        ("fc1", "_biases.syntxt")]),
       st.sampled_from(["nan", "inf", "-inf", "1e30", "0", "-0", "1e-45", "3e38"]),
       st.integers(0, 3))
def test_extreme_constants_stop_the_fusion_naming_cell_and_file(run, tmp_path, sat_weights,
                                                                 target, value, index):
    folder = run.fresh()
    cell, suffix = target
    weights = folder / "weights"
    shutil.copytree(sat_weights / "weights", weights)
    shutil.copy(sat_weights / "net.ini", folder / "net.ini")
    path = weights / f"{cell}{suffix}"
    values = path.read_text().split()
    values[min(index, len(values) - 1)] = value
    path.write_text("\n".join(values) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)      # no NumPy warning on the way
        status, out, err = run("net.ini", "--qat-sat", "--test", "-w", "weights", "--nb-test", "20")
    if status == 0:      # a value that fuses into range (1e-45 in a bias, 0 in a mean...)
        return
    line = refused((status, out, err), f"[{cell}]" if "Alpha" not in suffix else "[bn1]")
    place = line[len("n2d2py: error: "):].split(": ")[0]
    assert place in (f"weights/{cell}{suffix}", "weights"), line    # the file, or its folder


# == 10. messages name the file at fault, say nothing of files not ours =====================
@cases(6)
@given(st.sampled_from([2_000, 20_000, 200_000]), st.sampled_from(["learn", "export"]))
def test_disk_full_names_the_file_being_written(tmp_path_factory, limit, what):
    from tiny_nets import ONE_FC_28, write_ini
    folder = tmp_path_factory.mktemp("full")
    write_ini(folder, ONE_FC_28)
    argv = ["net.ini", "--learn", "32", "--log", "32"] if what == "learn" else \
        ["net.ini", "-w", os.devnull, "--export", "ONNX"]

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    from cli_runner import command, environment
    proc = subprocess.run(command(*argv), cwd=folder, capture_output=True, text=True, timeout=120,
                          env=environment(N2D2_DATA="/nonexistent"), preexec_fn=small_files)
    if proc.returncode == 0:
        return
    assert proc.returncode == 2, proc.stderr
    line = error_line(proc.stderr)
    place = line[len("n2d2py: error: "):].split(": ")[0]
    assert "net.ini" not in place and place.startswith(("weights", "net_state", "seed.dat",
                                                        "net.onnx", "fc1", "softmax", ".")), line
    assert not [p for p in os.listdir(folder) if ".tmp-" in p]


@cases(8)
@given(st.sampled_from([10 ** 7, 10 ** 9, 10 ** 11]), st.sampled_from(["weights", "biases"]))
def test_a_huge_sparse_weights_file_is_named_not_nbOutputs(tmp_path_factory, size, suffix):
    from n2d2py.deepnet import DeepNet
    from tiny_nets import TWO_CONV_28
    folder = tmp_path_factory.mktemp("sparse")
    net = DeepNet.from_ini(parse_ini_text(TWO_CONV_28, str(folder / "net.ini")), load_data=False)
    net.export_weights(folder / "w")
    path = folder / "w" / f"conv2_{suffix}.syntxt"
    with open(path, "r+b") as handle:
        handle.truncate(size)
    with pytest.raises(WeightsError, match="larger than expected") as info:
        net.import_weights(folder / "w")
    assert str(info.value).startswith(str(path)) and "NbOutputs" not in str(info.value)


@cases(10)
@given(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126,
                                      exclude_characters="[=;#{}%\\\"@"), min_size=8, max_size=40),
       st.sampled_from(["secret.txt", "id_rsa", "passwd", "data.bin"]))
def test_an_included_file_that_is_not_ini_is_never_read(tmp_path_factory, secret, name):
    folder = tmp_path_factory.mktemp("include")
    (folder / name).write_text(f"{secret}=x\n[{secret}]\nmore {secret}\n")
    (folder / "t.ini.tpl").write_text(f"{{% include {name} %}}\n")
    for text in (f"[x@{name}]\n", "[x@t.ini.tpl]\n"):
        (folder / "net.ini").write_text(text)
        with pytest.raises(IniError, match="not an .ini or .tpl file") as info:
            load_ini(folder / "net.ini")
        assert secret not in str(info.value) and name in str(info.value)


@cases(30)
@given(st.sampled_from(["1_0", "1__0", "_1", "1_", "0x10", "1e_5", "١", "1,5", "--1", "1e",
                        "nan_", "in_f"]))
def test_numbers_python_reads_but_cpp_does_not_are_refused(tmp_path_factory, word):
    path = tmp_path_factory.mktemp("num") / "w.syntxt"
    path.write_text(f"1 {word} 2\n", encoding="utf-8")
    with pytest.raises(WeightsError, match="is not a number"):
        syntxt.read_numbers(str(path), 3)


@cases(3)
@given(st.sampled_from(["1e38", "2e38", "3e38"]))
def test_a_diverging_training_stops_in_one_line_without_numpy_warnings(tmp_path_factory, rate):
    from tiny_nets import ONE_FC_28, write_ini
    folder = tmp_path_factory.mktemp("nan")
    write_ini(folder, ONE_FC_28.replace("LearningRate=0.01", f"LearningRate={rate}"))
    status, out, err = run_subprocess(folder, "net.ini", "--learn", "512", "--log", "256",
                                      env={"N2D2_DATA": "/nonexistent"})
    assert status == 2, (out[-500:], err)
    assert "RuntimeWarning" not in err and "Warning" not in err.replace("Notice", "")
    assert_error(error_line(err), "net.ini", "produced")


@cases(6)
@given(st.sampled_from(["weights", "net_state", "weights_validation"]))
def test_no_tmp_folder_is_left_when_the_target_is_a_file(run, tmp_path, target):
    folder = run.fresh()
    from tiny_nets import ONE_FC_28
    (folder / "net.ini").write_text(ONE_FC_28)
    (folder / target).write_text("a file\n")
    refused(run("net.ini", "--learn", "32", "--log", "32"), target, "not a folder")
    assert not [p for p in os.listdir(folder) if ".tmp-" in p or ".old-" in p]


# == what held: keep it ========================================================================
def test_held_many_sections_long_lines_and_absurd_sizes(run, tmp_path):
    document = parse_ini_text("".join(f"[s{i}]\nA=1\n" for i in range(100_000)), "net.ini")
    assert len(document.sections) == 100_001
    document = parse_ini_text("[s]\nK=" + "1 " * 2_000_000 + "\n", "net.ini")
    assert len(document.section("s").get("K")) == 3_999_999      # the last space trimmed
    from tiny_nets import TWO_CONV_28
    (run.folder / "net.ini").write_text(TWO_CONV_28.replace("NbOutputs=6", "NbOutputs=1000000000000"))
    refused(run("net.ini", "--build-only"), "net.ini")


def test_held_self_including_template_without_a_guard(tmp_path):
    (tmp_path / "t.ini.tpl").write_text("{% include t.ini.tpl %}\n")
    (tmp_path / "net.ini").write_text("[x@t.ini.tpl]\n")
    with pytest.raises(IniError, match="deeper than"):
        load_ini(tmp_path / "net.ini")
