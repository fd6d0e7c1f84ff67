"""Fuzzing ``.syntxt`` weight folders (N2D2's own, ``tests/data/n2d2``) and the number reader.

A network is built once per INI (``load_data=False``); each case copies its weights folder to a
temporary directory, damages one to three files (truncation, junk tokens, numbers dropped or
added, hostile numbers, binary bytes, empty or deleted files, a directory or a symbolic link in
place of a file) and imports it. The import must succeed or raise an ``N2D2Error`` naming the file;
a mutation that changes how many numbers a weights/biases file holds must never import silently.
"""
import functools
import pathlib
import shutil
import tempfile

from hypothesis import given, strategies as st

from fuzzing import budget, count_case, outcome
from n2d2py.errors import N2D2Error
from n2d2py.io.syntxt import NumberStream, read_numbers

MODELS = pathlib.Path(__file__).resolve().parents[1] / "data" / "n2d2" / "tests_data" / "mnist_model"
PAIRS = [("model.ini", "weights"), ("LeNet-bn-SAT-8b.ini", "weights_8b_SAT"),
         ("LeNet_w4_a8.ini", "weights_LeNet_w4_a8"), ("LeNet-bn-SAT.ini", "weights_test_SAT")]

HOSTILE = ["nan", "-nan", "inf", "-inf", "1e39", "-1e39", "1e-50", "0x1p3", "1,5", "1.5.5", "--1",
           "+", "e5", "1e", "∞", "１", "\x00", "NaN", "infinity", "1_0", "0" * 400, "9" * 400]


@functools.lru_cache(maxsize=None)
def network(ini):
    from n2d2py.deepnet import DeepNet
    return DeepNet.from_ini(MODELS / ini, load_data=False, seed=1)


@st.composite
def damaged_folder(draw):
    ini, folder = draw(st.sampled_from(PAIRS))
    files = sorted(p.name for p in (MODELS / folder).iterdir())
    mutations = []
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(files))
        kind = draw(st.sampled_from(["truncate", "junk", "drop", "add", "hostile", "bytes", "empty",
                                     "delete", "directory", "symlink", "whitespace"]))
        mutations.append((name, kind, draw(st.integers(0, 10 ** 6)),
                          draw(st.sampled_from(HOSTILE)), draw(st.binary(max_size=64))))
    return ini, folder, mutations


def apply(path, kind, position, token, junk):
    """Damage ``path``; returns True when the count of numbers it holds changed. A path an
    earlier mutation made a directory or a symbolic link is left alone (never written through)."""
    if path.is_symlink() or path.is_dir():
        return None
    text = path.read_text(encoding="ascii", errors="replace") if path.is_file() else ""
    words = text.split()
    at = position % (len(words) + 1)
    if kind == "truncate":
        path.write_text(text[:position % (len(text) + 1)])
        return None                                 # may or may not cut a number
    if kind == "junk":
        path.write_text(" ".join(words[:at] + [token] + words[at:]))
        return None                                 # "1_0", "infinity" are numbers to float()
    if kind == "drop" and words:
        at = position % len(words)
        path.write_text(" ".join(words[:at] + words[at + 1:]))
        return True
    if kind == "add":
        path.write_text(" ".join(words[:at] + ["0.5"] + words[at:]))
        return True
    if kind == "hostile" and words:
        path.write_text(" ".join(words[:at] + [token] + words[at + 1:]))
        return None
    if kind == "bytes":
        path.write_bytes(text.encode()[:position % (len(text) + 1)] + junk)
        return None
    if kind == "empty":
        path.write_text("")
        return bool(words) or None
    if kind == "delete":
        path.unlink(missing_ok=True)
        return None                                 # optional files may be missing
    if kind == "directory":
        path.unlink(missing_ok=True)
        path.mkdir()
        return None
    if kind == "symlink":
        path.unlink(missing_ok=True)
        path.symlink_to("/dev/zero" if position % 2 else "/etc/hostname")
        return None
    if kind == "whitespace":
        path.write_text("\r\n\t".join(words))
        return False
    return False


def word_count(path):
    """Whitespace-separated words of a regular file (None for a directory, link or no file)."""
    if path.is_symlink() or not path.is_file():
        return None
    return len(path.read_bytes().split())


@budget(0.1)
@given(damaged_folder())
def test_damaged_weights_folder_imports_or_fails_cleanly(case):
    ini, folder, mutations = case
    count_case("syntxt damaged folders")
    net = network(ini)
    with tempfile.TemporaryDirectory() as tmp:
        copy = pathlib.Path(tmp) / "weights"
        shutil.copytree(MODELS / folder, copy)
        for name, kind, position, token, junk in mutations:
            apply(copy / name, kind, position, token, junk)
        changed = [name for name in {m[0] for m in mutations}
                   if name.endswith(("_weights.syntxt", "_biases.syntxt")) and "_quant" not in name
                   and word_count(copy / name) not in (None, word_count(MODELS / folder / name))]
        result = outcome("syntxt: import folder", net.import_weights, copy)
        if changed:
            assert isinstance(result, N2D2Error), \
                f"{changed} lost or gained a number and {folder} imported silently"
        outcome("syntxt: reimport original", net.import_weights, MODELS / folder)


@budget(0.1)
@given(st.binary(max_size=300) | st.text(max_size=200).map(str.encode),
       st.one_of(st.none(), st.integers(0, 50)))
def test_number_reader_on_arbitrary_bytes(data, expected):
    count_case("syntxt arbitrary bytes")
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "x_weights.syntxt"
        path.write_bytes(data)
        values = outcome("syntxt: read_numbers", read_numbers, str(path), expected)
        if not isinstance(values, N2D2Error):
            assert expected is None or len(values) == expected
        stream = outcome("syntxt: NumberStream", NumberStream, str(path))
        if not isinstance(stream, N2D2Error):
            outcome("syntxt: NumberStream", stream.take, expected or 0)
