"""``Type=ChannelShuffle`` (cells/channel_shuffle.py), added through docs/ARCHITECTURE.md's "add a
cell" checklist: PyTorch's channel shuffle forward and backward, INI errors with file:line, and
what the other parts ask the cell: the size/BitOps report, ONNX export, the ``--qat-sat``
fusion and integer ONNX export, ``-w`` and ``-l``."""
import io
import pathlib

import numpy
import pytest

from n2d2py import checkpoint
from n2d2py.autograd import check_backward, no_grad
from n2d2py.deepnet import DeepNet
from n2d2py.errors import IniError
from n2d2py.ini import parse_ini_text
from n2d2py.quantizers.constraints import cost_summary
from n2d2py.stats import cost_table
from n2d2py.stats.cost import input_quantizer

from cell_helpers import build_cells, run

ROOT = pathlib.Path(__file__).resolve().parents[2]
SAT4 = ROOT / "ini_examples" / "LeNet_SAT4.ini"
SHUFFLE = "[shuffle]\nInput=pool1\nType=ChannelShuffle\nNbOutputs=6\nNbGroups=3\n\n"


def shuffled_lenet(text=None):
    """ini_examples/LeNet_SAT4.ini (4-bit SAT) with a ChannelShuffle between pool1 and conv2."""
    text = (text or SAT4.read_text()).replace("[conv2] Conv_def\nInput=pool1",
                                              SHUFFLE + "[conv2] Conv_def\nInput=shuffle")
    assert "Input=shuffle" in text
    return text


def net_of(text, folder, **options):
    path = pathlib.Path(folder) / "net.ini"
    path.write_text(text)
    return DeepNet.from_ini(str(path), device="cpu", seed=1, **options)


def test_forward_is_pytorch_channel_shuffle(rng, torch):
    cells = build_cells("[s]\nInput=env\nType=ChannelShuffle\nNbOutputs=6\nNbGroups=3\n",
                        env=(6, 3, 4))
    x = rng.standard_normal((2, 6, 3, 4)).astype(numpy.float32)
    y = run(cells, x)["s"]
    expected = torch.nn.ChannelShuffle(3)(torch.from_numpy(x)).numpy()
    assert numpy.array_equal(y, expected)
    assert numpy.array_equal(y, x[:, cells["s"].permutation()])
    assert cells["s"].permutation().tolist() == [0, 2, 4, 1, 3, 5]


def test_two_inputs_are_concatenated_then_shuffled(rng):
    text = "[s]\nInput=env,env\nType=ChannelShuffle\nNbOutputs=4\nNbGroups=2\n"
    x = rng.standard_normal((1, 2, 2, 2)).astype(numpy.float32)
    y = run(build_cells(text, env=(2, 2, 2)), x)["s"]
    assert numpy.array_equal(y, numpy.concatenate([x, x], axis=1)[:, [0, 2, 1, 3]])


def test_backward_is_the_inverse_permutation(rng):
    cell = build_cells("[s]\nInput=env\nType=ChannelShuffle\nNbOutputs=4\nNbGroups=2\n",
                       env=(4, 2, 3))["s"]
    check_backward(lambda x: cell.forward([x], training=True),
                   [rng.standard_normal((2, 4, 2, 3))])


@pytest.mark.parametrize("groups, message", [
    ("4", "NbGroups=4 does not divide the 6 input channels"),
    ("0", "NbGroups: must be at least 1, got 0")])
def test_wrong_nb_groups_is_an_ini_error_at_build(groups, message):
    text = f"[s]\nInput=env\nType=ChannelShuffle\nNbOutputs=6\nNbGroups={groups}\n"
    with pytest.raises(IniError, match=message) as info:
        build_cells(None, env=(6, 2, 2), doc=parse_ini_text(text, "net.ini"))
    assert str(info.value).startswith("net.ini:5 [s] NbGroups: ")


def test_report_and_constraints_count_the_quantized_codes_through_the_shuffle(tmp_path):
    """conv2 reads bn1's 4-bit codes through pool1 and the shuffle (both keep precision):
    BitOps = MACs x 4 x 4, in the report and in the size/BitOps penalties alike."""
    net = net_of(shuffled_lenet(), tmp_path, load_data=False)
    row = {r.name: r for r in cost_table(net).rows}
    assert (row["conv2"].w_bits, row["conv2"].a_bits) == (4, 4)
    assert row["shuffle"].out_bits == 4 and row["shuffle"].macs == 0
    assert row["conv2"].bitops == row["conv2"].macs * 16
    assert input_quantizer(net.cells, net.cells["conv2"]) is net.cells["bn1"].qact
    summary = {r["cell"]: r for r in cost_summary(net.cells)[0]}
    assert summary["conv2"]["abits"] == 4.0 and summary["conv2"]["bitops"] == row["conv2"].bitops


def test_onnx_export_matches_reference_and_onnxruntime(tmp_path, rng):
    from onnx.reference import ReferenceEvaluator
    from n2d2py.onnx.export import export_onnx
    text = ("[sp]\nSizeX=6\nSizeY=6\nNbChannels=2\n[c]\nInput=sp\nType=Conv\nKernelDims=3 3\n"
            "NbOutputs=6\nActivationFunction=Rectifier\n" +
            SHUFFLE.replace("pool1", "c") + "[c2]\nInput=shuffle\nType=Conv\nKernelDims=1 1\n"
            "NbOutputs=3\n[c2.Target]\n")
    net = net_of(text, tmp_path, load_data=False)
    x = rng.standard_normal((3, 2, 6, 6)).astype(numpy.float32)
    with no_grad():
        ref = net.forward(x)["c2"].data
    model = export_onnx(net, tmp_path / "net.onnx")
    assert [n.op_type for n in model.graph.node].count("Transpose") == 1
    got = ReferenceEvaluator(model).run(None, {"env": x})[0]
    numpy.testing.assert_allclose(got, ref, atol=1e-5)
    ort = pytest.importorskip("onnxruntime")
    got = ort.InferenceSession(model.SerializeToString()).run(None, {"env": x})[0]
    numpy.testing.assert_allclose(got, ref, atol=1e-5)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The shuffled 4-bit SAT LeNet after 256 learning stimuli (weights/, net_state/)."""
    folder = tmp_path_factory.mktemp("shuffle")
    net = net_of(shuffled_lenet(), folder)
    net.learn(stimuli=256, log=128, out=io.StringIO(), workdir=str(folder), reload_best=False,
              rng=numpy.random.default_rng(1))
    return net, folder


def test_qat_sat_fuses_the_shuffle_and_the_integer_onnx_export_equals_the_engine(trained):
    from onnx.reference import ReferenceEvaluator
    from n2d2py.onnx.export_integer import export_integer_onnx
    from n2d2py.qat import fuse_qat
    net, _ = trained
    fused = fuse_qat(net)
    assert fused.nodes["shuffle"].type_name == "ChannelShuffle"
    x, labels, _ = next(net.sp.batches("Test", False, None, 200))
    codes = fused.input_codes(x)
    outputs = fused.forward(codes, keep="all")
    # the shuffle moves bn1's pooled codes: the same integers, permuted
    perm = net.cells["shuffle"].permutation()
    assert numpy.array_equal(outputs["shuffle"], outputs["pool1"][:, perm])
    with no_grad():
        fake = net.forward(x)["softmax"].data.argmax(axis=1).ravel()
    agree = (outputs["softmax"].argmax(axis=1).ravel() == fake).mean()
    assert agree >= 0.97, agree
    model = export_integer_onnx(fused, None, all_outputs=True)
    names = [o.name for o in model.graph.output]
    got = dict(zip(names, ReferenceEvaluator(model).run(None, {"env": codes.astype(numpy.uint8)})))
    assert numpy.array_equal(got["shuffle"].astype(numpy.int64), outputs["shuffle"].astype(numpy.int64))


def test_integer_c_export_moves_the_codes_as_the_engine(trained, tmp_path):
    """The C export gathers the shuffled codes through an index table: every layer's codes
    equal the engine's (integer-only build)."""
    import sys
    sys.path.insert(0, str(ROOT / "tests" / "qat"))
    from c_helpers import INTEGER_FLAGS, compile_program, read_trace, run_program
    from n2d2py.qat import fuse_qat
    from n2d2py.qat.export_c import export_c
    net, _ = trained
    fused = fuse_qat(net, "Fixed-point16")
    x, labels, _ = next(net.sp.batches("Test", False, None, 200))
    codes = fused.input_codes(x)
    program = export_c(fused, tmp_path / "c", stimuli=(codes, labels))
    binary = compile_program(tmp_path / "c", tmp_path / "network", INTEGER_FLAGS, trace=True)
    _, _, _, stdout = run_program(binary, tmp_path / "c" / "stimuli.bin", tmp_path / "trace")
    assert stdout == program.expected
    engine = fused.forward(codes, keep="all")
    trace = read_trace(program, tmp_path / "trace", len(codes))
    assert [n.name for n in program.nodes][:3] == ["conv1", "pool1", "shuffle"]
    for name, got in trace.items():
        assert numpy.array_equal(got, numpy.asarray(engine[name]).reshape(len(codes), -1)), name


def test_weights_and_resume(trained, tmp_path):
    """-w: the exported weights read back into a fresh net give the same outputs; -l: the
    state resumes (the shuffle has no state of its own)."""
    net, folder = trained
    again = net_of(shuffled_lenet(), tmp_path)
    again.import_weights(str(folder / "weights"))
    x, _, _ = next(net.sp.batches("Test", False, None, 20))
    with no_grad():
        numpy.testing.assert_allclose(again.forward(x)["softmax"].data,
                                      net.forward(x)["softmax"].data, rtol=1e-5, atol=1e-6)
    resumed = net_of(shuffled_lenet(), tmp_path)
    history = resumed.learn(stimuli=384, log=128, out=io.StringIO(), workdir=str(tmp_path),
                            reload_best=False, resume=checkpoint.load(folder / "net_state"))
    assert history.stimuli == 384


def test_command_line_report_and_exports(trained, tmp_path, monkeypatch, capsys):
    """``--report``, ``-w DIR --export ONNX`` and ``-w DIR --qat-sat --export ONNX`` on the
    shuffled net, in-process (cli.main)."""
    from n2d2py import cli
    net, folder = trained
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.ini").write_text(shuffled_lenet())
    assert cli.main(["net.ini", "--report"]) == 0
    report = capsys.readouterr().out
    assert "shuffle" in report and "ChannelShuffle" in report
    weights = str(folder / "weights")
    assert cli.main(["net.ini", "-w", weights, "--export", "ONNX"]) == 0
    assert cli.main(["net.ini", "-w", weights, "--qat-sat", "--export", "ONNX"]) == 0
    assert (tmp_path / "net.onnx").stat().st_size > 1000
    assert (tmp_path / "net.int.onnx").stat().st_size > 1000
