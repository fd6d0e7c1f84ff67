"""Fuzzing the eight input classes of issue 12 with generators (``tests/hostile.py``): hostile
cell and node names, INI expansions that multiply, looping data trees, ONNX external data on
every tensor kind, busy run folders, mutated training states, seeds, and output names.

Every case runs in a watched temporary root (``fuzzing.watched_case``): the case may write in
its run folder only; a file created anywhere else under the root fails the case and is counted
("files written outside the run folder" in the summary). Absolute names and ``..`` chains are
drawn to land inside the root, where such a write would be seen. Each case ends in a result or
an ``N2D2Error`` naming a place (``fuzzing.outcome``), within the per-case time bound.
"""
import contextlib
import io
import json
import os
import pathlib
import shutil

import numpy
import pytest
from hypothesis import given, strategies as st

import hostile
from fuzzing import RUN_DEPTH, budget, count_case, outcome, watched_case
from n2d2py.errors import N2D2Error, OnnxError

onnx = pytest.importorskip("onnx")


def rooted(name, root):
    """``name`` with its absolute parts moved under the watched ``root``."""
    return name.replace("/etc/", f"{root}/etc/").replace("C:\\x", f"{root}/c")


@st.composite
def watched_names(draw, count):
    names = draw(hostile.ini_names(count))
    up = draw(st.integers(0, RUN_DEPTH + 1))
    if draw(st.booleans()):               # a parent chain that reaches the watched root
        names[0] = "../" * up + names[0]
    if draw(st.booleans()):
        names[1] = "{ROOT}/abs/" + names[1]
    return names


# -- class 1: names -----------------------------------------------------------------------------
def export_everything(text, root, run):
    from n2d2py.deepnet import DeepNet
    from n2d2py.ini import parse_ini_text
    from n2d2py.onnx.export import export_onnx
    from n2d2py.qat import fuse_qat
    from n2d2py.qat.export import export_weights_quantized
    from n2d2py.qat.export_c import export_c
    net = DeepNet.from_ini(parse_ini_text(text, str(root / "inputs" / "net.ini")),
                           load_data=False, seed=1)
    net.export_weights(run / "weights", histograms=False)
    net.import_weights(run / "weights")
    export_onnx(net, str(run / "net.onnx"))
    fused = fuse_qat(net)
    export_weights_quantized(fused, run / "weights_quantized")
    export_c(fused, run / "export_C_int8")
    return net


@budget(0.1)
@given(watched_names(4), st.sampled_from(["SAT", "PACT"]), st.booleans())
def test_hostile_names_are_confined(names, act, shuffle):
    count_case("hardening: names")
    with watched_case("names") as (root, run, ready):
        names = [n.replace("{ROOT}", str(root)) for n in names]
        text = hostile.names_net(names, act=act, shuffle=shuffle)   # PACT α, a ChannelShuffle
        (root / "inputs" / "net.ini").write_text(text)
        ready()
        outcome("hardening: names (weights, ONNX, fusion, C)", export_everything, text, root, run)


# -- class 2: expansion -------------------------------------------------------------------------
@st.composite
def expanding_document(draw):
    """(files {name: text}, main file): one of the growth patterns, parameters drawn."""
    kind = draw(st.sampled_from(["variables", "references", "loops", "float loop",
                                 "self include", "section fan-out", "base chain", "mixed"]))
    fan, depth = draw(st.integers(1, 12)), draw(st.integers(1, 40))
    files = {}
    if kind == "variables":
        lines = ["$V0=" + draw(st.sampled_from(["x", "${SECTION_NAME}", "$(1+1)", "[s]K"]))]
        lines += [f"$V{i}=" + " ".join([f"${{V{i - 1}}}"] * fan) for i in range(1, depth)]
        text = "\n".join(lines) + f"\n[s]\nK=${{V{depth - 1}}}\n"
    elif kind == "references":
        text = "[a0]\nK=x\n" + "".join(f"[a{i}]\nK=" + " ".join([f"[a{i - 1}]K"] * fan) + "\n"
                                       for i in range(1, depth))
    elif kind == "loops":
        ranges = draw(st.lists(st.integers(0, 100_000), min_size=1, max_size=4))
        files["t.ini.tpl"] = "".join(f"{{% for I{k} in range({r}) %}}" for k, r in
                                     enumerate(ranges)) + "[x{{I0}}]\n" + "{% endfor %}" * len(ranges)
        text = "[s@t.ini.tpl]\n"
    elif kind == "float loop":
        start = draw(st.sampled_from(["1e16", "1e17", "1e300", "nan", "inf", "-1e17", "0.5"]))
        end = draw(st.sampled_from(["1e17", "100000000000000100", "1e400", "5", "-inf"]))
        files["t.ini.tpl"] = f"{{% for I in range({start}, {end}) %}}x{{% endfor %}}"
        text = "[s@t.ini.tpl]\n"
    elif kind == "self include":
        guard = draw(st.sampled_from(["{% if D exists %}", "{% if D != xxxxxxxx %}", ""]))
        files["t.ini.tpl"] = (guard + "{% include t.ini.tpl %}" * max(fan, 1) +
                              ("{% endif %}" if guard else "") + "\n")
        text = "[s@t.ini.tpl]\nD=x\n"
    elif kind == "section fan-out":
        stop = "x" * min(depth, 15)
        branches = "".join(f"[{{{{SECTION_NAME}}}}{k}@t.ini.tpl]\nD={{{{D}}}}x\n"
                           for k in range(max(fan, 1)))
        files["t.ini.tpl"] = f"{{% if D != {stop} %}}\n{branches}{{% endif %}}\n"
        text = "[s@t.ini.tpl]\nD=x\n"
    elif kind == "base chain":
        chain = draw(st.integers(10, 15000))
        text = "[s0]\nK0=1\n" + "".join(f"[s{i}] s{i - 1}" + (f" s{i - 2}" if fan > 6 and i > 1
                                                               else "") + f"\nK{i}=${{X}}\n"
                                       for i in range(1, chain))
        text = "$X=" + "y" * fan + "\n" + text
    else:
        text = ("$A=" + "${B}" * fan + "\n$B=" + "[c]K" * fan + "\n[c]\nK=" + "z" * depth +
                "\n" + "".join(f"[s{i}] c\nV=${{A}}\n" for i in range(depth * 10)))
    return files, text


def parse_and_read(files, text, root):
    from n2d2py.ini import load_ini
    for name, content in files.items():
        (root / "inputs" / name).write_text(content)
    (root / "inputs" / "net.ini").write_text(text)
    document = load_ini(root / "inputs" / "net.ini")
    for section in document:
        for key in section.keys():
            section.get(key)
    return document


@budget(0.1)
@given(expanding_document())
def test_expansion_is_bounded(case):
    count_case("hardening: expansion")
    files, text = case
    with watched_case("expansion") as (root, run, ready):
        ready()
        result = outcome("hardening: expansion (parse + every key)", parse_and_read, files,
                         text, root)
        if isinstance(result, N2D2Error):
            assert "\n" not in str(result)


# -- class 3: looping data trees ------------------------------------------------------------------
@st.composite
def data_tree(draw):
    """[(kind, relative path, target)] making a DIR_Database folder: images, folders, links to
    ancestors, siblings, the root, themselves, missing places, FIFOs named like images."""
    actions = [("dir", "a", None), ("dir", "b/c", None), ("img", "a/0.png", None),
               ("img", "b/c/1.png", None)]
    folders = ["", "a", "b", "b/c"]
    for k in range(draw(st.integers(0, 6))):
        where = draw(st.sampled_from(folders))
        kind = draw(st.sampled_from(["link", "link", "fifo", "img", "dir", "broken"]))
        path = f"{where}/n{k}".lstrip("/")
        if kind == "link":
            actions.append(("link", path, draw(st.sampled_from(folders + ["..", "../.."]))))
        elif kind == "dir":
            actions.append(("dir", path, None))
            folders.append(path)
        elif kind == "img":
            actions.append(("img", path + ".png", None))
        elif kind == "fifo":
            actions.append(("fifo", path + ".png", None))
        else:
            actions.append(("link", path + ".png", "nowhere/x.png"))
    return actions, draw(st.sampled_from([-1, 0, 1, 2, 3, 100]))


def load_tree(actions, depth, base):
    import cv2
    from n2d2py.data import database_from_ini
    from n2d2py.ini import parse_ini_text
    data = base / "data"
    for kind, path, target in actions:
        full = data / path
        full.parent.mkdir(parents=True, exist_ok=True)
        if kind == "dir":
            full.mkdir(parents=True, exist_ok=True)
        elif kind == "img":
            cv2.imwrite(str(full), numpy.full((3, 3), 9, numpy.uint8))
        elif kind == "fifo" and not full.exists():
            os.mkfifo(full)
        elif kind == "link" and not os.path.lexists(full):
            os.symlink(data / target if not target.startswith("..") else target, full)
    db = database_from_ini(parse_ini_text(f"[database]\nType=DIR_Database\nDataPath={data}\n"
                                          f"Learn=1.0\nDepth={depth}\n"))
    real = [os.path.realpath(p) for p in db.file_names]
    assert len(real) == len(set(real)), "an image listed twice"
    return db


@budget(0.1)
@given(data_tree())
def test_data_trees_with_links_are_walked_once(case):
    count_case("hardening: data trees")
    actions, depth = case
    with watched_case("data trees") as (root, run, ready):
        ready()
        outcome("hardening: DIR_Database walk", load_tree, actions, depth, run)


@st.composite
def imagenet_lists(draw):
    """(synset names, val.txt entries, links) of an ILSVRC2012 folder: hostile names (``..``
    chains, absolute paths under the watched root, NUL-free unicode), symbolic links in
    ``train/`` and ``val/`` to ancestors, the root, files outside, FIFOs named like images."""
    def hostile_word():
        name = draw(hostile.hostile_names(long=False))
        name = "".join(ch for ch in name if not ch.isspace() and ch != "\x00")
        return name.encode("utf-8", "ignore").decode() or "x"
    escapes = ["", "", "../", "../../", "{ROOT}/", "a/../../", "./"]
    synsets = ["n1"] + [draw(st.sampled_from(escapes)) + hostile_word()
                        for _ in range(draw(st.integers(0, 3)))]
    val = ["v0.JPEG"] + [draw(st.sampled_from(escapes)) + hostile_word()
                         for _ in range(draw(st.integers(0, 3)))]
    links = draw(st.lists(st.tuples(st.sampled_from(["train/n1/l", "val/l", "train/l"]),
                                    st.sampled_from(["..", "../..", "{ROOT}", "{ROOT}/out.JPEG",
                                                     "fifo", "v0.JPEG"])), max_size=3))
    return synsets, val, links


def load_imagenet(synsets, val, links, root, base):
    import cv2
    from n2d2py.data import database_from_ini
    from n2d2py.ini import parse_ini_text
    data = base / "ILSVRC2012"
    (data / "train" / "n1").mkdir(parents=True)
    (data / "val").mkdir()
    image = numpy.full((3, 3), 9, numpy.uint8)
    cv2.imwrite(str(data / "train" / "n1" / "t0.JPEG"), image)
    cv2.imwrite(str(data / "val" / "v0.JPEG"), image)
    for k, (where, target) in enumerate(links):
        path = data / f"{where}{k}.JPEG"
        if target == "fifo":
            os.mkfifo(path)
        else:
            os.symlink(target.replace("{ROOT}", str(root)), path)
    (data / "synsets.txt").write_text("\n".join(s.replace("{ROOT}", str(root))
                                                for s in synsets) + "\n")
    (data / "val.txt").write_text("".join(f"{v.replace('{ROOT}', str(root))} 0\n" for v in val))
    db = database_from_ini(parse_ini_text(f"[database]\nType=ILSVRC2012_Database\n"
                                          f"DataPath={data}\nLabelPath={data}/synsets.txt\n"
                                          f"Learn=1.0\n"))
    for i in range(len(db)):     # named inside; links the folder holds are followed
        assert os.path.normpath(db.file_name(i)).startswith(str(data) + "/"), db.file_name(i)
        db.image(i)
    return db


@budget(0.1)
@given(imagenet_lists())
def test_imagenet_lists_name_files_inside_the_database(case):
    count_case("hardening: ILSVRC2012 lists")
    with watched_case("imagenet lists") as (root, run, ready):
        (root / "out.JPEG").write_bytes(b"\xff\xd8 not an image")
        ready()
        outcome("hardening: ILSVRC2012 synsets and val.txt", load_imagenet, *case, root, run)


# -- class 4: ONNX external data ------------------------------------------------------------------
LOCATIONS = ["../outside.bin", "{ROOT}/outside.bin", "link.bin", "fifo.bin", "missing.bin",
             "sub/../../outside.bin", "in.bin", "./in.bin", "sub/in.bin", "in.bin\x00x", "",
             "C:\\outside.bin", ".", "..", "sub", "%2e%2e/outside.bin"]


@budget(0.1)
@given(st.sampled_from(hostile.TENSOR_KINDS), st.sampled_from(LOCATIONS),
       st.sampled_from([None, 0, 4, 8, 10 ** 20, -1, "x"]), st.sampled_from([None, 8, 4, 0, 10 ** 9]))
def test_external_data_of_every_tensor_kind(kind, location, offset, length):
    count_case("hardening: ONNX external data")
    from n2d2py.onnx.runner import OnnxModel
    with watched_case("onnx external") as (root, run, ready):
        model_dir = root / "inputs" / "model"
        (model_dir / "sub").mkdir(parents=True)
        numpy.array([1, 2], numpy.float32).tofile(model_dir / "in.bin")   # exactly one tensor
        numpy.array([1, 2, 3, 4], numpy.float32).tofile(model_dir / "sub" / "in.bin")
        numpy.array([9, 9], numpy.float32).tofile(root / "inputs" / "outside.bin")
        os.symlink(root / "inputs" / "outside.bin", model_dir / "link.bin")
        os.mkfifo(model_dir / "fifo.bin")
        where = location.replace("{ROOT}", str(root / "inputs"))
        model = hostile.external_model(kind, where, offset, length)
        onnx.save(model, model_dir / "m.onnx")
        ready()
        result = outcome("hardening: ONNX external data", lambda: OnnxModel(
            str(model_dir / "m.onnx")).run([numpy.zeros((1, 2), numpy.float32)]))
        inside = location in ("in.bin", "./in.bin", "sub/in.bin")
        if not inside:
            assert isinstance(result, OnnxError), f"{location!r} ({kind}) was accepted"


# -- class 5: busy run folders --------------------------------------------------------------------
COMMANDS = [["--learn-epoch", "1"], ["--learn", "8"], ["--test"], ["--lps"], ["--seed", "3"],
            ["-w", "weights", "--export", "ONNX"], ["--qat-sat", "--test"], ["-l", "net_state"],
            ["--export", "C", "--qat-sat"], ["--nb-test", "3"], ["--bench", "--test"]]


@budget(0.1)
@given(st.lists(st.sampled_from(COMMANDS), min_size=1, max_size=3).map(lambda l: sum(l, [])),
       st.one_of(st.sampled_from(["valid", "garbage", "empty", "missing", "huge", "not json"]),
                 st.binary(max_size=300)))
def test_a_busy_run_folder_is_refused_at_once(argv, owner):
    count_case("hardening: busy run folder")
    from n2d2py import cli
    from n2d2py.runlock import OWNER_FILE, RunLock
    with watched_case("busy folder") as (root, run, ready):
        (run / "net.ini").write_text("[sp]\nSizeX=4\nSizeY=4\n")
        with RunLock(run):
            text = owner if isinstance(owner, bytes) else {
                "valid": None, "garbage": b"\x00\xff{", "empty": b"", "huge": b"[" * 100000,
                "not json": b"pid=3"}.get(owner)
            if owner == "missing":
                os.remove(run / OWNER_FILE)
            elif text is not None:
                (run / OWNER_FILE).write_bytes(text)
            ready()
            before = sorted(os.listdir(run))
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                status = outcome("hardening: second run in a busy folder",
                                 lambda: cli.main(["net.ini", *argv]))
            assert status == 2 and sorted(os.listdir(run)) == before, err.getvalue()
            lines = err.getvalue().splitlines()
            assert len(lines) == 1 and lines[0].startswith("n2d2py: error: ") and \
                ".n2d2py.lock" in lines[0], lines


# -- class 6: mutated training states -------------------------------------------------------------
STATE_INI = None


def _reference_state(base):
    """A small training state (Conv + BN with SAT + Dropout + Fc, Adam and SGD), made once."""
    global STATE_INI
    from tiny_nets import CONV_BN_SAT_12
    from n2d2py.deepnet import DeepNet
    from n2d2py.ini import parse_ini_text
    from n2d2py.learn import learn
    folder = base / "reference"
    if not (folder / "net_state").is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        net = DeepNet.from_ini(parse_ini_text(CONV_BN_SAT_12, str(folder / "net.ini")), seed=5)
        learn(net, stimuli=48, log=32, out=io.StringIO(), workdir=str(folder), reload_best=False,
              seed=5)
        STATE_INI = CONV_BN_SAT_12
    return folder / "net_state"


@pytest.fixture(scope="module")
def reference_state(tmp_path_factory):
    return _reference_state(tmp_path_factory.mktemp("state"))


def resume(state, run):
    from n2d2py import checkpoint
    from n2d2py.deepnet import DeepNet
    from n2d2py.ini import parse_ini_text
    from n2d2py.learn import learn
    net = DeepNet.from_ini(parse_ini_text(STATE_INI, str(run / "net.ini")), seed=5)
    ckpt = checkpoint.load(state)
    return learn(net, stimuli=64, log=32, resume=ckpt, out=io.StringIO(), workdir=str(run),
                 reload_best=False, save_state=False)


@budget(0.1)
@given(st.data())
def test_mutated_training_states(reference_state, data):
    count_case("hardening: mutated net_state")
    with watched_case("net_state") as (root, run, ready):
        state = hostile.copy_state(reference_state, root / "inputs" / "net_state")
        for _ in range(data.draw(st.integers(1, 3))):
            try:
                hostile.mutate_state(data.draw, state)
            except (ValueError, OSError, KeyError, IndexError, TypeError, json.JSONDecodeError,
                    numpy.exceptions.AxisError if hasattr(numpy, "exceptions") else ValueError):
                break          # an earlier mutation left nothing the next one can edit
        ready()
        result = outcome("hardening: resume from a mutated net_state", resume, state, run)
        if isinstance(result, N2D2Error):
            assert result.file and str(result.file).startswith(str(state)), str(result)


# -- class 7: seeds -------------------------------------------------------------------------------
@budget(0.1)
@given(st.one_of(st.integers(-2 ** 64, 2 ** 64), st.sampled_from([0, 1, 2 ** 32 - 1, 2 ** 32])),
       st.one_of(st.binary(max_size=40), st.sampled_from([b"FIFO", b"DIR", b"LINK", b"7\n"])))
def test_seed_is_validated_before_it_is_written(seed, content):
    count_case("hardening: seeds")
    from n2d2py import cli
    with watched_case("seeds") as (root, run, ready):
        path = run / "seed.dat"
        if content == b"FIFO":
            os.mkfifo(path)
        elif content == b"DIR":
            path.mkdir()
        elif content == b"LINK":
            (root / "inputs" / "target").write_text("5\n")
            os.symlink(root / "inputs" / "target", path)
        else:
            path.write_bytes(content)
        ready()
        args = cli.parse_args(["net.ini", "--test", "--seed", str(seed)])
        before = path.read_bytes() if path.is_file() and content != b"LINK" else None
        result = outcome("hardening: --seed and seed.dat", cli.stage_seed, cli.Run(args, io.StringIO()))
        if isinstance(result, N2D2Error) and before is not None:
            assert path.read_bytes() == before, "seed.dat written before the seed was refused"


# -- class 8: output names ------------------------------------------------------------------------
@budget(0.1)
@given(st.lists(hostile.hostile_names(long=False).filter(
    lambda n: n and "\x00" not in n and "\ud800" not in n), min_size=1, max_size=6, unique=True))
def test_infer_outputs_keep_their_names(outputs):
    count_case("hardening: output names")
    from onnx import TensorProto, helper
    from n2d2py.onnx.runner import infer_file
    with watched_case("output names") as (root, run, ready):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])
        nodes = [helper.make_node("Mul" if k % 2 else "Add", ["x", "x"], [name])
                 for k, name in enumerate(outputs)]
        ys = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 2]) for n in outputs]
        onnx.save(helper.make_model(helper.make_graph(nodes, "g", [x], ys),
                                    opset_imports=[helper.make_opsetid("", 17)]),
                  root / "inputs" / "m.onnx")
        numpy.save(root / "inputs" / "in.npy", numpy.array([[1.5, -2.0]], numpy.float32))
        ready()
        result = outcome("hardening: --infer output names", infer_file,
                         str(root / "inputs" / "m.onnx"), str(root / "inputs" / "in.npy"),
                         str(run / "out.npz"))
        if not isinstance(result, N2D2Error):
            if len(outputs) == 1:
                assert numpy.load(result).tolist() == [[3.0, -4.0]]
                return
            with numpy.load(result) as saved:
                assert sorted(saved.files) == sorted(outputs)
