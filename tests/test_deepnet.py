"""DeepNet: N2D2 build order, global keys, targets, forward, summary and atomic weight folders."""
import os

import numpy
import pytest
from tiny_nets import CONV_FC_12 as TINY

from n2d2py.errors import IniError, N2D2Error

ini = pytest.importorskip("n2d2py.ini")
from n2d2py.build import cell_order, read_global_keys  # noqa: E402
from n2d2py.deepnet import DeepNet  # noqa: E402
from n2d2py.folders import write_folder_atomically  # noqa: E402

SP = "[sp]\nSizeX=8\nSizeY=8\nBatchSize=4\n"


def order_of(text):
    order, levels = cell_order(ini.parse_ini_text(text))
    return [s.name for s, _ in order], levels


def test_order_is_level_then_file_order():
    # file order b, a, c, d: a and b are both level 1 (from env), c reads a and b, d reads sp
    # but is written last; sections without Input ([a_def], [c.Target]) are not cells
    names, levels = order_of(SP + "[a_def]\nType=Conv\n"
                             "[c]\nInput=b,a\n[b]\nInput=a\n[a]\nInput=sp\n[d]\nInput=env\n"
                             "[c.Target]\n")
    assert names == ["a", "d", "b", "c"]
    assert levels == {"a": 1, "d": 1, "b": 2, "c": 3}


def test_order_counts_only_the_deepest_parent():
    names, levels = order_of(SP + "[x]\nInput=sp\n[y]\nInput=x\n[z]\nInput=y\n[sum]\nInput=z,x\n"
                             "[side]\nInput=x\n")
    assert names == ["x", "y", "side", "z", "sum"]
    assert levels["sum"] == 4 and levels["side"] == 2


def test_cycle_is_an_error_naming_section_and_parent():
    with pytest.raises(IniError) as info:
        order_of(SP + "[a]\nInput=sp\n[b]\nInput=a,d\n[c]\nInput=b\n[d]\nInput=c\n")
    message = str(info.value)
    assert "[b]" in message and "Input" in message
    assert "parent 'd' never resolves" in message and "cycle b -> d -> c -> b" in message


def test_missing_parent_gives_close_matches():
    with pytest.raises(IniError, match=r"\[pool1\] Input: unknown parent 'conv11' "
                                       r"\(did you mean 'conv1'"):
        order_of(SP + "[conv1]\nInput=sp\n[pool1]\nInput=conv11\n")


def test_parent_section_without_input_is_not_a_cell():
    with pytest.raises(IniError, match="unknown parent 'conv_def' .*has no Input key"):
        order_of(SP + "[conv_def]\nType=Conv\n[conv1]\nInput=conv_def\n")


def test_global_keys():
    notices = []
    doc = ini.parse_ini_text("DefaultModel=Frame_CUDA\n$X=3\n" + SP)
    assert read_global_keys(doc, notices) == "Frame_CUDA"
    with pytest.raises(IniError, match="Unknown property DefaultModle in section \\[\\]"):
        read_global_keys(ini.parse_ini_text("DefaultModle=Frame\n" + SP), [])
    with pytest.raises(IniError, match="spiking models .*out of scope"):
        read_global_keys(ini.parse_ini_text("DefaultModel=Spike_Analog\n" + SP), [])


# -- atomic weight folders -------------------------------------------------------------------
def _write(folder, name, text):
    with open(os.path.join(folder, name), "w") as f:
        f.write(text)


def test_atomic_folder_replaces_previous(tmp_path):
    target = tmp_path / "weights"
    write_folder_atomically(target, lambda d: _write(d, "a.syntxt", "1"))
    write_folder_atomically(target, lambda d: _write(d, "b.syntxt", "2"))
    assert sorted(os.listdir(target)) == ["b.syntxt"]
    assert sorted(os.listdir(tmp_path)) == ["weights"]  # no .tmp-/.old- leftovers


@pytest.mark.parametrize("crash", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_crash_mid_write_leaves_previous_folder_intact(tmp_path, crash):
    target = tmp_path / "weights_validation"
    write_folder_atomically(target, lambda d: _write(d, "conv1_weights.syntxt", "0.5 0.25\n"))

    def half_write(folder):
        _write(folder, "conv1_weights.syntxt", "9 9\n")
        raise crash

    with pytest.raises(type(crash)):
        write_folder_atomically(target, half_write)
    assert (target / "conv1_weights.syntxt").read_text() == "0.5 0.25\n"
    assert sorted(os.listdir(tmp_path)) == ["weights_validation"]


class _FakeCell:
    def __init__(self, name, fail=False):
        self.name, self.fail = name, fail

    def export_weights(self, folder, precision=None):
        _write(folder, f"{self.name}_weights.syntxt", "1 2 3\n")
        if self.fail:
            raise OSError(28, "No space left on device")


def test_deepnet_export_is_atomic(tmp_path):
    net = DeepNet.__new__(DeepNet)
    net.cells = {"a": _FakeCell("a"), "b": _FakeCell("b")}
    net.export_weights(tmp_path / "weights")
    net.cells = {"a": _FakeCell("a"), "c": _FakeCell("c", fail=True)}
    with pytest.raises(N2D2Error, match="No space left on device") as info:  # disk full: one
        net.export_weights(tmp_path / "weights")            # error naming the folder written
    assert str(info.value).startswith(str(tmp_path / "weights"))
    assert sorted(os.listdir(tmp_path / "weights")) == ["a_weights.syntxt", "b_weights.syntxt"]
    assert sorted(os.listdir(tmp_path)) == ["weights"]      # no weights.tmp-PID/ left


# -- full builds (need cells/ and data/); TINY: 12x12, Conv 3x3x4 stride 2 + Fc 10 ---------------
def _net(text, **kw):
    pytest.importorskip("n2d2py.cells")
    return DeepNet.from_ini(ini.parse_ini_text(text), device="cpu", seed=3, **kw)


def test_build_writes_keys_targets_and_summary():
    net = _net(TINY, load_data=False)
    assert list(net.cells) == ["conv1", "fc", "softmax"]
    assert net.input_shape == (1, 12, 12)
    conv = net.document.section("conv1")
    assert (conv.get("_OutputsWidth"), conv.get("_NbOutputs"), conv.get("_NbChannels")) == ("5", "4", "1")
    assert [t.name for t in net.targets] == ["softmax.Target"]
    assert net.targets[0].loss_kind == "softmax"
    summary = net.summary().splitlines()
    assert summary[:5] == ["Layer: conv1 [Conv(Transcode)]", "  # Shared synapses: 36",
                           "  # Virtual synapses: 900", "  # Inputs dims: 12 12 1",
                           "  # Outputs dims: 5 5 4"]
    assert "  # Synapses: 1000" in summary


def test_missing_target_and_missing_sp():
    with pytest.raises(IniError, match=r"Missing target cell \(no \[\*\.Target\] section found\)"):
        _net(TINY.replace("[softmax.Target]\n", ""), load_data=False)
    with pytest.raises(IniError, match=r"Missing \[sp\] section"):
        _net("[database]\nType=MNIST_IDX_Database\n[a]\nInput=sp\nType=Softmax\nNbOutputs=1\n",
             load_data=False)


def test_out_of_scope_cell_type():
    with pytest.raises(IniError, match="cell type 'Anchor' .*out of scope"):
        _net(TINY.replace("Type=Fc", "Type=Anchor"), load_data=False)


def test_forward_keeps_only_target_outputs():
    net = _net(TINY, load_data=False)
    x = numpy.random.default_rng(0).random((2, 1, 12, 12), dtype=numpy.float32)
    outputs = net.forward(x)
    assert list(outputs) == ["softmax"]
    p = outputs["softmax"].data
    assert p.shape == (2, 10, 1, 1)
    numpy.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-5)
    assert list(net.forward(x, keep="all")) == ["conv1", "fc", "softmax"]


def test_learn_then_test_improves_on_mnist(tmp_path):
    net = _net(TINY)
    before = net.test(limit=200).recognition_rate
    history = net.learn(stimuli=1024, log=512, out=open(os.devnull, "w"), workdir=str(tmp_path),
                        reload_best=False)
    assert history.stimuli == 1024 and len(history.validation) == 2
    after = net.test(limit=200)
    assert after.recognition_rate > max(50.0, before + 20.0)    # percent
    assert after.confusion.sum() == 200
    assert os.path.isdir(tmp_path / "weights_validation") and os.path.isdir(tmp_path / "weights")
    # reloading the text weights (6 significant digits) gives nearly the same score
    net.import_weights(tmp_path / "weights")
    assert abs(net.test(limit=200).recognition_rate - after.recognition_rate) <= 1.0
