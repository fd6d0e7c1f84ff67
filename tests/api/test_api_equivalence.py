"""One implementation under two front ends: ``LeNet-bn-SAT.ini`` and the same LeNet written with
N2D2's Python API (``lenet_api.py``, in the style of N2D2's QAT documentation) build the same
network, train to the same bits (10 steps, same seed, same batches), import the same N2D2 weights,
and give the same integer network (fuse_qat), C program, ONNX model, statistics and weight files."""
import filecmp
import os
import shutil
import subprocess

import numpy
import pytest

import n2d2py as n2d2
from n2d2py import n2d2_ip

import lenet_api

BATCH = 32


@pytest.fixture(autouse=True)
def bundled_mnist(tmp_path, monkeypatch):
    """The INI reads $N2D2_DATA/mnist, absent here: the bundled digits, as the API reads them."""
    monkeypatch.setenv("N2D2_DATA", str(tmp_path / "no-data"))
    yield
    n2d2.global_variables.default_model = "Frame"
    n2d2.global_variables.seed = 1


def parameters(cell):
    return [numpy.asarray(p.data) for p in cell.parameters()] + \
        [numpy.asarray(getattr(cell, s)) for s in cell.state_names]


def train_both(steps, python_seed=1):
    """The INI net and the Python one after ``steps`` steps on the batches the Python provider
    draws; returns (ini net, python model, softmax, provider, [(python loss, ini loss)])."""
    sp = lenet_api.provider(BATCH, seed=python_seed)
    model = lenet_api.model()
    softmax = n2d2.cells.Softmax(with_loss=True, name="softmax")
    loss_function = n2d2.target.Score(sp)
    net = lenet_api.ini_net(BATCH)
    sp.set_partition("Learn")
    model.learn()
    losses = []
    for _ in range(steps):
        x = sp.read_random_batch()
        batch, labels = x.to_numpy().copy(), sp.get_labels().to_numpy().copy()
        loss = loss_function(softmax(model(x)))
        loss.back_propagate()
        loss.update()
        value, _ = net.learn_batch(batch, labels)
        losses.append((loss[0], value))
    return net, model, softmax, sp, losses


def test_python_and_ini_lenet_train_to_the_same_bits():
    net, model, softmax, sp, losses = train_both(10)
    assert [a for a, _ in losses] == [b for _, b in losses]       # every step's loss, exactly
    python_cells = model.get_cells()
    assert list(python_cells) == [n for n in net.cells if n != "softmax"]
    for name, view in python_cells.items():
        ini, ours = net.cells[name], view.N2D2()
        assert type(ini) is type(ours)
        for a, b in zip(parameters(ini), parameters(ours), strict=True):
            assert a.dtype == b.dtype and numpy.array_equal(a, b), name
    # outputs of both, inference mode, on test digits
    sp.set_partition("Test")
    model.test()
    softmax.test()
    x = sp.read_batch(0)
    ours = softmax(model(x)).to_numpy()
    theirs = numpy.asarray(net.forward(x.to_numpy(), training=False)["softmax"].data)
    assert numpy.array_equal(ours, theirs)
    assert numpy.array_equal(model["fc2"].get_deepnet().get_cells()["fc2"].N2D2().last_logits.data,
                             net.cells["fc2"].last_logits.data)


def test_the_equivalence_test_sees_a_different_seed():
    """Control: another seed on the Python side gives other weights from the first step."""
    net, model, _, _, losses = train_both(1, python_seed=2)
    conv1 = model["conv1"].N2D2().weights[0].data
    assert not numpy.array_equal(conv1, net.cells["conv1"].weights[0].data)


@pytest.fixture
def trained_pair():
    """Both networks with N2D2's trained weights (weights_test_SAT) imported."""
    folder = str(lenet_api.MNIST_MODEL / "weights_test_SAT")
    sp = lenet_api.provider(100)
    model = lenet_api.model()
    softmax = n2d2.cells.Softmax(with_loss=True, name="softmax")
    score = n2d2.target.Score(sp)
    model.import_free_parameters(folder)
    net = lenet_api.ini_net(100)
    net.import_weights(folder)
    model.test()
    sp.set_partition("Test")
    x = sp.read_batch(0)
    loss = score(softmax(model(x)))
    return net, model, sp, loss.get_deepnet(), x


def test_imported_weights_fuse_into_the_same_integer_network(trained_pair, tmp_path):
    net, model, sp, deepnet, x = trained_pair
    fused = n2d2_ip.quantizer.fuse_qat(deepnet, sp, "FIXED_MULT32", "RINTF", "RINTF", "RINTF")
    from n2d2py.qat import fuse_qat
    reference = fuse_qat(net, "Fixed-point32", "RINTF", "RINTF", "RINTF")
    assert list(fused.nodes) == list(reference.nodes)
    for name, constants in reference.constants.items():
        for key, value in constants.items():
            if isinstance(value, numpy.ndarray):
                assert numpy.array_equal(fused.constants[name][key], value), (name, key)
    codes = fused.input_codes(x.to_numpy())
    assert numpy.array_equal(fused.forward(codes), reference.forward(codes))
    result = fused.test(limit=500)
    assert result.recognition_rate >= 99.0           # N2D2's weights: 99.9% fake-quantized
    deepnet.draw_graph(tmp_path / "lenet_quant")
    assert (tmp_path / "lenet_quant.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc")
def test_c_export_of_the_python_network_runs_as_the_integer_engine(trained_pair, tmp_path):
    _, model, sp, deepnet, x = trained_pair
    from n2d2py.qat.export_c import read_run_output, write_stimuli
    folder = n2d2.export.export_c(deepnet, sp, export_folder_name=str(tmp_path / "export"),
                                  act_scaling_mode="FIXED_MULT32", wt_round_mode="RINTF",
                                  b_round_mode="RINTF", c_round_mode="RINTF")
    fused = deepnet._fused
    codes = fused.input_codes(x.to_numpy())
    write_stimuli(tmp_path / "stimuli.bin", codes)
    binary = str(tmp_path / "network")
    build = subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Werror", "-mgeneral-regs-only",
                            "-o", binary, os.path.join(folder, "main.c"),
                            os.path.join(folder, "network.c"), "-lm"], capture_output=True,
                           text=True)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([binary, str(tmp_path / "stimuli.bin")], capture_output=True, text=True,
                         check=True)
    predicted, _, _ = read_run_output(run.stdout)
    expected = numpy.asarray(fused.forward(codes)).reshape(len(codes), -1).argmax(axis=1)
    assert numpy.array_equal(predicted, expected)
    assert (predicted == sp.get_labels().to_numpy()).mean() >= 0.97


def test_onnx_stats_and_weight_files_are_the_ini_networks(trained_pair, tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    net, model, sp, deepnet, x = trained_pair
    from n2d2py.onnx.export import export_onnx
    deepnet.export_onnx(tmp_path / "python.onnx")
    export_onnx(net, str(tmp_path / "ini.onnx"))
    ours, theirs = onnx.load(tmp_path / "python.onnx"), onnx.load(tmp_path / "ini.onnx")
    assert [n.op_type for n in ours.graph.node] == [n.op_type for n in theirs.graph.node]
    assert [i.raw_data for i in ours.graph.initializer] == [i.raw_data for i in theirs.graph.initializer]
    session = ort.InferenceSession(str(tmp_path / "python.onnx"))
    feed = {session.get_inputs()[0].name: x.to_numpy()}
    probabilities = session.run(None, feed)[0].reshape(len(x.to_numpy()), -1)
    with n2d2.no_grad():
        expected = numpy.asarray(net.forward(x.to_numpy())["softmax"].data).reshape(
            len(probabilities), -1)
    assert numpy.array_equal(probabilities.argmax(1), expected.argmax(1))
    numpy.testing.assert_allclose(probabilities, expected, atol=1e-5)
    # N2D2's statistics and weight files, file for file
    deepnet.log_stats(tmp_path / "python_stats")
    from n2d2py.stats import write_report
    from n2d2py.stats.n2d2_stats import write_n2d2_stats
    write_n2d2_stats(net, str(tmp_path / "ini_stats"))
    write_report(net, str(tmp_path / "ini_stats"))
    assert "| conv1 |" in (tmp_path / "python_stats" / "report.md").read_text()
    for name in ("stats.log", "stats.dat", "stats_relative.dat", "report.csv", "report.md"):
        assert filecmp.cmp(tmp_path / "python_stats" / name, tmp_path / "ini_stats" / name,
                           shallow=False), name
    deepnet.export_network_free_parameters(tmp_path / "python_weights")
    net.export_weights(str(tmp_path / "ini_weights"))
    files = sorted(p.name for p in (tmp_path / "ini_weights").iterdir() if p.suffix == ".syntxt")
    assert files and files == sorted(p.name for p in (tmp_path / "python_weights").iterdir()
                                     if p.suffix == ".syntxt")
    for name in files:
        assert filecmp.cmp(tmp_path / "python_weights" / name, tmp_path / "ini_weights" / name,
                           shallow=False), name
