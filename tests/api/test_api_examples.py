"""Seed 002's Python examples, copied into tests/data/n2d2_api_examples/ with only their import
lines, epoch counts and data paths changed, run as a user runs them (``python <script>`` in a
fresh folder): LeNet part 1 (clamped SAT weights), part 2 (imports part 1's weights, 4-bit SAT,
``fuse_qat``, ``draw_graph``) on the bundled digits, and the ResNet-18 ONNX example on a
generated small resnet18v1.onnx and ILSVRC2012-layout folder (one clamped and one 4-bit epoch).

Part 2 and the ResNet example run through a small driver (``runpy``) that reports, after the
script ended, what its objects hold (the fused network's accuracy, every cell's quantizers and
solvers) as JSON."""
import json
import pathlib
import re
import subprocess
import sys

import numpy
import pytest

from cli_runner import ROOT, environment
from n2d2py.data import BUNDLED_MNIST
from n2d2py.io import syntxt

EXAMPLES = ROOT / "tests" / "data" / "n2d2_api_examples"
sys.path.insert(0, str(ROOT / "tests" / "onnx"))
sys.path.insert(0, str(ROOT / "tests" / "data"))

PART2_DRIVER = """
import json, runpy, sys
sys.argv = [sys.argv[1]] + sys.argv[2:]
g = runpy.run_path(sys.argv[0], run_name="__main__")
net = g["x"].get_deepnet()
fused = net._fused.test()
float_test = net.N2D2().test()
json.dump({"fused": fused.recognition_rate, "float": float_test.recognition_rate,
           "alpha": [c.N2D2().qact.alpha for n, c in g["model"].get_cells().items()
                     if n.startswith("BatchNorm2d")]}, open("facts.json", "w"))
"""

RESNET_DRIVER = """
import json, runpy, sys
sys.argv = [sys.argv[1]] + sys.argv[2:]
g = runpy.run_path(sys.argv[0], run_name="__main__")
facts = {}
for cell in g["model"]:
    core = cell.N2D2()
    params = core.own_parameters()
    solver = params[0].solver if params else None
    facts[cell.get_name()] = {
        "type": cell.get_type(),
        "activation": None if core.activation is None else core.activation.type_name,
        "qweight": None if core.qweight is None else [core.qweight.type_name, core.qweight.range,
                                                       core.qweight.apply_quantization,
                                                       core.qweight.apply_scaling],
        "qact": None if core.qact is None else [core.qact.type_name, core.qact.range],
        "alpha_solver": None if core.qact is None else
            [core.qact.alpha_param.solver.max_iterations, core.qact.alpha_param.solver.momentum],
        "solver": None if solver is None else [solver.learning_rate_policy, solver.learning_rate,
            solver.momentum, solver.decay, solver.max_iterations, solver.iteration_size],
    }
json.dump(facts, open("facts.json", "w"))
"""


def run(folder, argv, driver=None, timeout=600):
    command = [sys.executable] + (["-c", driver] if driver else []) + [str(a) for a in argv]
    proc = subprocess.run(command, cwd=folder, env=environment(MPLBACKEND="Agg"),
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc.stdout.replace("\r", "\n"), proc.stderr


def last_percent(out, label):
    return float(re.findall(label + r": ([0-9.]+)%", out)[-1])


def losses(out):
    return [float(v) for v in re.findall(r"loss: ([0-9.]+)", out)]


@pytest.fixture(scope="module")
def lenet(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lenet")
    out1, err1 = run(folder, [EXAMPLES / "lenet_sat_part1.py", BUNDLED_MNIST, 1])
    out2, err2 = run(folder, [EXAMPLES / "lenet_sat_part2.py", BUNDLED_MNIST, 1], PART2_DRIVER)
    facts = json.loads((folder / "facts.json").read_text())
    return folder, (out1, err1), (out2, err2), facts


def test_lenet_part1_trains_clamped_weights(lenet):
    folder, (out, err), _, _ = lenet
    assert "Notice: cuda_device=2" in err and "default_model=Frame_CUDA" in err
    assert "Learn 3600, Validation 400, Test 1000" in out       # validation=0.1 of 4000
    assert len(losses(out)) == 15                               # ceil(3600 / 256) steps
    assert last_percent(out, "test success") >= 70.0
    weights = folder / "weights_clamped"
    for cell in ("Conv_0", "Conv_1", "Conv_2", "Fc_0", "Fc_1"):
        assert (weights / f"{cell}_weights.syntxt").is_file()
        assert (weights / f"{cell}_weights_quant.distrib.png").is_file()
    for cell in ("BatchNorm2d_0", "BatchNorm2d_1", "BatchNorm2d_2"):
        assert (weights / f"{cell}_variances.syntxt").is_file()
    clamped = syntxt.read_numbers(str(weights / "Conv_2_quant_weights.syntxt"))
    assert numpy.abs(clamped).max() == pytest.approx(1.0)       # clamp mode: tanh(w)/max|tanh|
    assert len(numpy.unique(numpy.round(clamped * 15, 4))) > 100  # not on a 4-bit grid


def test_lenet_part2_imports_quantizes_fuses_and_draws(lenet):
    folder, (out1, _), (out2, err2), facts = lenet
    missing = re.findall(r"Could not open synaptic file: (\S+)", out2 + err2)
    assert missing and all(m.endswith("_QAct_SAT_Alpha.syntxt") for m in missing)  # only α
    assert losses(out2)[0] < losses(out1)[0] / 2                 # starts from part 1's weights
    accuracy = last_percent(out2, "test success")
    assert accuracy >= 80.0
    weights = folder / "new_weights"
    grid4 = syntxt.read_numbers(str(weights / "Conv_1_quant_weights.syntxt")) * 15
    grid8 = syntxt.read_numbers(str(weights / "Conv_0_quant_weights.syntxt")) * 255
    for codes in (grid4, grid8):       # SAT Default grid: odd codes (2k - R) / R
        assert numpy.allclose(codes, numpy.round(codes), atol=1e-4)
        assert numpy.all(numpy.round(codes) % 2 == 1)
    assert (weights / "BatchNorm2d_0_QAct_SAT_Alpha.syntxt").is_file()
    assert "Fuse the QAT Graph" in out2
    assert (folder / "lenet_quant.py.png").read_bytes()[:4] == b"\x89PNG"
    assert abs(facts["fused"] - facts["float"]) <= 1.0            # the integer network agrees
    print(f"LeNet part 1 test success {last_percent(out1, 'test success'):.2f}%, part 2 "
          f"{accuracy:.2f}% (fake-quantized, mean over batches); float {facts['float']:.1f}%, "
          f"fused integer {facts['fused']:.1f}% of the 1000 test digits")


@pytest.fixture(scope="module")
def resnet(tmp_path_factory):
    import onnx
    from _builders import resnet18v1
    from image_folders import make_ilsvrc
    folder = tmp_path_factory.mktemp("resnet")
    onnx.save(resnet18v1(numpy.random.default_rng(7), classes=4, widths=(4, 8, 8, 16)),
              folder / "resnet18v1.onnx")
    make_ilsvrc(folder / "ILSVRC2012")
    out, err = run(folder, [EXAMPLES / "resnet18_sat.py", "--data_path", "ILSVRC2012",
                            "--label_path", "ILSVRC2012/synsets.txt", "--onnx",
                            "resnet18v1.onnx", "--epochs", 1, "--batch_size", 8], RESNET_DRIVER)
    return folder, out, json.loads((folder / "facts.json").read_text())


def test_resnet18_example_updates_every_cell_and_trains_two_epochs(resnet):
    pytest.importorskip("onnx")
    folder, out, cells = resnet
    assert out.count("# Train Epoch: 0 #") == 2 and out.count("### Validation ###") == 2
    assert len(losses(out)) == 6 and all(numpy.isfinite(losses(out)))   # 3 batches x 2 epochs
    weighted = {n: c for n, c in cells.items() if c["type"] in ("Conv", "Fc")}
    assert len(weighted) == 21                     # 20 convolutions (3 shortcuts) + dense0
    for name, cell in weighted.items():
        range_ = 255 if name in ("resnetv15_conv0_fwd", "resnetv15_dense0_fwd") else 15
        assert cell["qweight"] == ["SAT", range_, True, False], name
        assert cell["solver"] == ["CosineDecay", 0.05, 0.9, 0.00004, 192175050, 2], name
    for name, cell in cells.items():
        if cell["type"] == "BatchNorm2d":
            assert cell["solver"] == ["CosineDecay", 0.05, 0.9, 0.00004, 192175050, 2], name
    quantized = {n: c for n, c in cells.items() if c["qact"] is not None}
    assert len(quantized) == 17                    # resnet18v1's 17 ReLUs (the INI recipe's)
    for name, cell in quantized.items():
        assert cell["activation"] == "Linear" and cell["qact"] == ["SAT", 15], name
        assert cell["alpha_solver"] == [115305030, 0.9], name
    assert not any(c["activation"] == "Rectifier" for c in cells.values())
    for stem in ("resnet18v1_clamped", "resnet18v1_quant"):
        assert (folder / f"{stem}.png").read_bytes()[:4] == b"\x89PNG"
        assert "Total" in (folder / f"{stem}_stats" / "stats.log").read_text()
    clamped, sat = folder / "resnet_weights_clamped", folder / "resnet_weights_SAT"
    assert (clamped / "resnetv15_conv0_fwd_weights.syntxt").is_file()
    assert not list(clamped.glob("*_QAct_SAT_Alpha.syntxt"))
    assert len(list(sat.glob("*_QAct_SAT_Alpha.syntxt"))) == 17
    codes = syntxt.read_numbers(str(sat / "resnetv15_stage2_conv1_fwd_quant_weights.syntxt")) * 15
    assert numpy.allclose(codes, numpy.round(codes), atol=1e-4)
    print("ResNet-18 example: validation Precision "
          f"{', '.join(re.findall(r'val success: ([0-9.]+)%', out))}% (clamped, 4-bit epoch)")
