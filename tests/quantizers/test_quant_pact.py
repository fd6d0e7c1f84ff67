"""``QAct=PACT`` (quantizers/pact.py), added through docs/ARCHITECTURE.md's "add a quantizer"
checklist: forward and gradients against the formulas and a PyTorch straight-through reference,
the contract (bits, grid, state), INI checks at build time with file:line, and what the other
parts ask it: ``--report``, QDQ ONNX export, ``--qat-sat``, ``-w``, ``-l``."""
import io
import pathlib
import sys

import numpy
import pytest

from n2d2py import checkpoint
from n2d2py.autograd import Variable, no_grad
from n2d2py.deepnet import DeepNet
from n2d2py.quantizers import ACT_QUANTIZERS, Grid, make_act_quantizer
from n2d2py.quantizers.pact import PACTActQuantizer

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from cli_runner import error_line, run_subprocess  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
SAT4 = ROOT / "ini_examples" / "LeNet_SAT4.ini"


def pact_lenet(a_range="${A_RANGE}"):
    """ini_examples/LeNet_SAT4.ini (SAT 4-bit weights) with PACT activation quantizers, α from 2
    (PACT's α learns only from the values it clips)."""
    text = SAT4.read_text().replace("QAct=SAT", "QAct=PACT").replace("QAct.Alpha=6.0", "QAct.Alpha=2.0")
    return text.replace("QAct.Range=${A_RANGE}", f"QAct.Range={a_range}")


def write(folder, text):
    path = pathlib.Path(folder) / "net.ini"
    path.write_text(text)
    return path


def reference(x, alpha, R):
    a = numpy.float32(abs(alpha))
    y = numpy.clip(x, numpy.float32(0), a)
    return (numpy.rint((y / a) * numpy.float32(R)) / numpy.float32(R) * a).astype(numpy.float32)


def test_registered_with_sat_keys():
    q = make_act_quantizer("PACT", {"Range": "15", "Alpha": "6"})
    assert ACT_QUANTIZERS.get("PACT") is PACTActQuantizer
    assert q.bits() == 4 and q.alpha == 6.0
    assert q.grid() == Grid(6.0 / 15, 0, 15, 6.0)
    assert [p.name for p in q.parameters()] == ["alpha"]


def test_forward_is_the_formula_ties_to_even(rng):
    q = make_act_quantizer("PACT", {"Range": "4", "Alpha": "2.0"})
    x = numpy.concatenate([rng.uniform(-1, 3, 500), [0.25, 0.75, 1.25, 2.0, 2.5, -0.0]])
    x = x.astype(numpy.float32)
    y = q(Variable(x)).data
    assert numpy.array_equal(y, reference(x, 2.0, 4))
    assert y[-6:-1].tolist() == [0.0, 1.0, 1.0, 2.0, 2.0]   # 0.5 and 1.5 steps round to even


def test_gradients_are_pytorch_straight_through(rng, torch):
    x = rng.uniform(-1, 3, (4, 3, 5, 5)).astype(numpy.float32)
    gy = rng.standard_normal(x.shape).astype(numpy.float32)
    q = make_act_quantizer("PACT", {"Range": "7", "Alpha": "1.5"})
    xv = Variable(x, requires_grad=True)
    q(xv, training=True).backward(gy)
    tx = torch.tensor(x, requires_grad=True)
    ta = torch.tensor([1.5], requires_grad=True)
    y = torch.clamp(tx, min=0.0) - torch.relu(tx - ta)          # clip(x, 0, α), PACT's form
    yq = y + (torch.round(y / ta * 7) / 7 * ta - y).detach()    # straight through the rounding
    yq.backward(torch.from_numpy(gy))
    numpy.testing.assert_allclose(xv.grad, tx.grad.numpy(), rtol=0, atol=0)
    numpy.testing.assert_allclose(q.alpha_param.grad, ta.grad.numpy(), rtol=1e-5)
    numpy.testing.assert_allclose(q(Variable(x)).data, yq.detach().numpy(), atol=1e-6)


def test_state_is_run_time_only_and_the_alpha_file_round_trips(tmp_path):
    q = make_act_quantizer("PACT", {"Range": "15", "Alpha": "6"})
    assert q.state_dict() == {}                # α is a Parameter; Range, Alpha come from the INI
    q.alpha_param.data[...] = 4.25
    q.export_state(str(tmp_path), "bn1")
    assert (tmp_path / "bn1_QAct_PACT_Alpha.syntxt").read_text() == "4.25"
    r = make_act_quantizer("PACT", {"Range": "15"})
    r.import_state(str(tmp_path), "bn1")
    assert r.alpha == 4.25


def test_range_zero_fails_at_build_only_with_file_and_line(tmp_path):
    path = write(tmp_path, pact_lenet(a_range="0"))
    status, _, stderr = run_subprocess(tmp_path, path, "--build-only")
    line = error_line(stderr)
    number = pact_lenet(a_range="0").splitlines().index("QAct.Range=0") + 1
    assert status == 2
    assert f"net.ini:{number} [bn1] QAct.Range: must be at least 1, got 0" in line, line


def test_report_counts_pact_bits(tmp_path):
    from n2d2py.stats import cost_table
    net = DeepNet.from_ini(str(write(tmp_path, pact_lenet())), load_data=False)
    rows = {r.name: r for r in cost_table(net).rows}
    assert (rows["conv2"].w_bits, rows["conv2"].a_bits) == (4, 4)
    assert rows["bn1"].out_bits == 4


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The PACT LeNet after 256 learning stimuli (weights/, net_state/ in its folder)."""
    folder = tmp_path_factory.mktemp("pact")
    net = DeepNet.from_ini(str(write(folder, pact_lenet())), device="cpu", seed=1)
    net.learn(stimuli=256, log=128, out=io.StringIO(), workdir=str(folder), reload_best=False,
              rng=numpy.random.default_rng(1))
    return net, folder


def test_alpha_learns_and_weights_round_trip(trained, tmp_path):
    net, folder = trained
    assert net.cells["bn1"].qact.alpha != 2.0
    assert (folder / "weights" / "bn1_QAct_PACT_Alpha.syntxt").is_file()
    again = DeepNet.from_ini(str(write(tmp_path, pact_lenet())), device="cpu", seed=2)
    again.import_weights(str(folder / "weights"))
    assert again.cells["bn1"].qact.alpha == pytest.approx(net.cells["bn1"].qact.alpha, rel=1e-9)


def test_resume_keeps_learned_alpha_and_takes_range_from_the_ini(trained, tmp_path):
    """``-l`` after QAct.Range changed in the INI (15 -> 7): the INI's Range, the state's α."""
    net, folder = trained
    state = checkpoint.load(folder / "net_state")
    edited = DeepNet.from_ini(str(write(tmp_path, pact_lenet(a_range="7"))), device="cpu", seed=1)
    edited.learn(stimuli=256, log=128, out=io.StringIO(), workdir=str(tmp_path),
                 reload_best=False, resume=state)
    assert edited.cells["bn1"].qact.range == 7 and edited.cells["fc1"].qact.range == 7
    saved = checkpoint.load(folder / "net_state")
    names = [p[0] for p in saved.meta["network"]["parameters"]]
    index = names.index("alpha")   # bn1's α, the first quantizer Parameter in build order
    assert saved.arrays[f"param/{index}"][0] == pytest.approx(net.cells["bn1"].qact.alpha)


def test_qdq_export_quantizes_like_pact(trained):
    from onnx.reference import ReferenceEvaluator
    from n2d2py.onnx.export import export_onnx
    net, _ = trained
    x, _, _ = next(net.sp.batches("Test", False, None, 16))
    with no_grad():
        ref = {k: v.data for k, v in net.forward(x, keep="all").items()}
    model = export_onnx(net)
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in model.graph.node}
    import onnx
    model = onnx.ModelProto.FromString(model.SerializeToString())
    model.graph.output.append(onnx.helper.make_tensor_value_info("bn1", 1, None))
    got = ReferenceEvaluator(model).run(["bn1"], {"env": x})[0]
    step = net.cells["bn1"].qact.grid().scale
    diff = numpy.abs(got - ref["bn1"])
    assert diff.max() <= step * 1.001 and (diff > 1e-5).mean() < 0.01


def test_qat_sat_fuses_pact_activations(trained):
    from n2d2py.qat import fuse_qat
    net, _ = trained
    fused = fuse_qat(net)
    assert fused.constants["conv1"]["R_out"] == 15
    assert fused.constants["conv1"]["alpha_out"] == abs(net.cells["bn1"].qact.alpha)
    x, _, _ = next(net.sp.batches("Test", False, None, 200))
    with no_grad():
        fake = net.forward(x)["softmax"].data.argmax(axis=1).ravel()
    fused_classes = fused.forward(fused.input_codes(x)).argmax(axis=1).ravel()
    assert (fused_classes == fake).mean() >= 0.97


def test_command_line_report_and_exports(trained, tmp_path, monkeypatch, capsys):
    """``--report``, ``-w DIR --export ONNX`` (QDQ) and ``-w DIR --qat-sat --export ONNX``."""
    from n2d2py import cli
    _, folder = trained
    monkeypatch.chdir(tmp_path)
    write(tmp_path, pact_lenet())
    assert cli.main(["net.ini", "--report"]) == 0
    conv2 = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("conv2"))
    assert conv2.split()[5:7] == ["4", "4"]   # w bits, a bits: PACT's Range=15
    weights = str(folder / "weights")
    assert cli.main(["net.ini", "-w", weights, "--export", "ONNX"]) == 0
    assert cli.main(["net.ini", "-w", weights, "--qat-sat", "--export", "ONNX"]) == 0
    assert (tmp_path / "net.onnx").stat().st_size > 1000
    assert (tmp_path / "net.int.onnx").stat().st_size > 1000
