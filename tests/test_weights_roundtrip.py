"""Weight folders round-trip (N2D2's .syntxt; docs/ARCHITECTURE.md "Design choices").

* n2d2py's own export: with ``precision=9`` every float32 comes back bit-exactly (weights,
  biases, BatchNorm statistics, SAT α); with N2D2's default 6/10 digits, export -> import ->
  export writes byte-identical files.
* N2D2's own folders in ``tests_data/mnist_model`` load into their INIs with no missing or
  surplus number, and re-exporting writes N2D2's ``*.syntxt`` files byte for byte (except the
  ``*_quant_weights*`` files, which N2D2 wrote from the weights before their last update,
  so they are not exact oracles).
"""
import filecmp
import os
import pathlib

import numpy
import pytest
from tiny_nets import LENET_TEMPLATE as LENET
from tiny_nets import write_ini

from n2d2py.backend import asnumpy
from n2d2py.deepnet import DeepNet

ROOT = pathlib.Path(__file__).resolve().parent.parent
N2D2_INI = ROOT / "tests" / "data" / "n2d2"
MODELS = N2D2_INI / "tests_data" / "mnist_model"

VARIANTS = {
    "float": {"qweight": "", "qact": ""},
    "SAT": {"qweight": "QWeight=SAT\nQWeight.Range=15\nQWeight.QuantMode=Symmetric",
            "qact": "QAct=SAT\nQAct.Alpha=6.0\nQAct.Range=15\nQActSolver=SGD\n"
                    "QActSolver.LearningRate=0.05"},
}
STEPS = 4


def state(net):
    """Every array a weight folder holds: ``{(cell, name): numpy array}`` (Parameters, BatchNorm
    statistics and quantizer Parameters such as SAT's α)."""
    arrays = {}
    for name, cell in net.cells.items():
        for index, param in enumerate(cell.parameters()):
            arrays[(name, index, getattr(param, "name", ""))] = asnumpy(param.data).copy()
        for attr in getattr(cell, "state_names", ()):
            arrays[(name, attr)] = asnumpy(getattr(cell, attr)).copy()
    return arrays


def export_cells(net, folder, precision):
    """The cells' export at an explicit precision (``DeepNet.export_weights`` has none yet)."""
    os.makedirs(folder, exist_ok=True)
    for cell in net.cells.values():
        cell.export_weights(str(folder), precision=precision)


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def trained(request, tmp_path_factory):
    """A LeNet-like net trained a few steps on the bundled digits, and its INI path."""
    folder = tmp_path_factory.mktemp(f"lenet_{request.param}")
    path = write_ini(folder, LENET.format(**VARIANTS[request.param]))
    net = DeepNet.from_ini(path, device="cpu", seed=7)
    before = state(net)
    rng = numpy.random.default_rng(0)
    for x, labels, _ in net.sp.random_batches("Learn", STEPS, rng):
        net.learn_batch(x, labels)
    after = state(net)
    assert any(not numpy.array_equal(before[k], after[k]) for k in before)   # it did learn
    return path, net


def fresh(path, seed=99):
    return DeepNet.from_ini(path, device="cpu", seed=seed, load_data=False)


def test_precision_9_round_trips_bit_exactly(trained, tmp_path):
    path, net = trained
    export_cells(net, tmp_path / "w9", precision=9)
    other = fresh(path)
    assert other.import_weights(str(tmp_path / "w9")) == []
    ours, theirs = state(net), state(other)
    assert ours.keys() == theirs.keys()
    for key in ours:
        assert ours[key].dtype == theirs[key].dtype == numpy.float32, key
        assert numpy.array_equal(ours[key], theirs[key]), key


def files(folder):
    return sorted(str(p.relative_to(folder)) for p in pathlib.Path(folder).rglob("*") if p.is_file())


def assert_same_files(a, b, names=None):
    names = files(a) if names is None else names
    assert names, a
    _, mismatch, errors = filecmp.cmpfiles(a, b, names, shallow=False)
    assert mismatch == [] and errors == [], (mismatch, errors)


def test_default_precision_export_import_export_is_byte_identical(trained, tmp_path):
    path, net = trained
    net.export_weights(str(tmp_path / "a"))
    other = fresh(path)
    assert other.import_weights(str(tmp_path / "a")) == []
    other.export_weights(str(tmp_path / "b"))
    assert files(tmp_path / "a") == files(tmp_path / "b")
    syntxt = [name for name in files(tmp_path / "a") if name.endswith(".syntxt")]
    assert any(name.endswith("_weights.syntxt") for name in syntxt)
    assert_same_files(tmp_path / "a", tmp_path / "b", syntxt)
    # N2D2's precision: 6 digits without a weight quantizer, 10 with one
    text = (tmp_path / "a" / "fc2_weights.syntxt").read_text().split()
    assert max(len(word.lstrip("-").replace(".", "").split("e")[0].lstrip("0")) for word in text) <= 6


def test_import_is_strict_about_the_count(trained, tmp_path):
    path, net = trained
    export_cells(net, tmp_path / "w", precision=9)
    weights = tmp_path / "w" / "fc1_weights.syntxt"
    weights.write_text(weights.read_text() + "0.5\n")
    from n2d2py.errors import WeightsError
    with pytest.raises(WeightsError, match="fc1_weights.syntxt.*larger than expected"):
        fresh(path).import_weights(str(tmp_path / "w"))


# -- N2D2's folders ------------------------------------------------------------------------------
#: INI -> N2D2's weight folder for it (tests/test_qat_parity.py; weights/ goes with model.ini)
N2D2_FOLDERS = {
    "model": "weights",
    "LeNet-bn-SAT": "weights_test_SAT",
    "LeNet-bn-SAT-8b": "weights_8b_SAT",
    "LeNet_4b": "weights_LeNet_4b",
    "LeNet_w1_a2": "weights_LeNet_w1_a2",
    "LeNet_w1_a4": "weights_LeNet_w1_a4",
    "LeNet_w1_a8": "weights_LeNet_w1_a8",
    "LeNet_w3_a4": "weights_LeNet_w3_a4",
    "LeNet_w4_a8": "weights_LeNet_w4_a8",
    "LeNet_w5_a8": "weights_LeNet_w5_a8",
    "LeNet_wMix_a4": "weights_LeNet_wMix_a4",
}
#: Written by an older N2D2 with 6 significant digits although the cells have a weight
#: quantizer; the current N2D2 (and n2d2py) write 10.
SIX_DIGIT_FOLDERS = {"weights_test_SAT", "weights_8b_SAT"}


def not_an_oracle(name):
    return "_quant_weights" in name or name.endswith("_QAct_SAT_Alpha.syntxt")


@pytest.mark.parametrize("ini", sorted(N2D2_FOLDERS))
def test_n2d2_folders_load_and_export_identically(ini, tmp_path):
    folder = MODELS / N2D2_FOLDERS[ini]
    net = DeepNet.from_ini(MODELS / f"{ini}.ini", device="cpu", seed=1, load_data=False)
    assert net.import_weights(str(folder)) == []     # strict: every file, every number
    theirs = sorted(p.name for p in folder.glob("*.syntxt"))
    assert any(name.endswith("_weights.syntxt") for name in theirs)
    if folder.name in SIX_DIGIT_FOLDERS:
        export_cells(net, tmp_path / "out", precision=6)
        compared = [name for name in theirs if not not_an_oracle(name)]
    else:
        net.export_weights(str(tmp_path / "out"))
        compared = [name for name in theirs if "_quant_weights" not in name]
    assert set(theirs) <= set(files(tmp_path / "out"))
    assert any(name.endswith("_weights.syntxt") for name in compared)
    assert_same_files(folder, tmp_path / "out", compared)
