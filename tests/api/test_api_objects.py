"""N2D2's Python API objects over ours: namespaces, views of INI/ONNX cells, solvers and fillers
acting on built cells, tensors, providers, targets, containers, weight files."""
import numpy
import pytest

import n2d2py as n2d2
from n2d2py import n2d2_ip
from n2d2py.cells.nn import BatchNorm2d, Conv, ElemWise, Fc, Pool2d, Softmax
from n2d2py.data import BUNDLED_MNIST

import lenet_api


@pytest.fixture(autouse=True)
def session():
    n2d2.global_variables.seed = 1
    yield
    n2d2.global_variables.default_model = "Frame"
    n2d2.global_variables.seed = 1


@pytest.fixture
def provider():
    database = n2d2.database.MNIST(data_path=BUNDLED_MNIST, validation=0.2)
    sp = n2d2.provider.DataProvider(database, [28, 28, 1], batch_size=8)
    return sp


def test_namespaces_are_n2d2s_over_ours():
    from n2d2py.cells import Cell as OurCell, CELLS
    from n2d2py.quantizer import SATCell           # N2D2's own examples import it from here
    assert n2d2.cells.Conv is n2d2.cells.nn.Conv and n2d2.cells.Sequence.__module__ == "n2d2py.api.cells"
    assert n2d2.cells.Cell is OurCell and "Conv" in CELLS.names()   # our package is intact
    assert n2d2_ip.quantizer.SATCell is SATCell is n2d2.quantizer.SATCell
    assert n2d2.target.Score.__module__ == "n2d2py.api.target"
    assert n2d2.target.TargetScore.__module__ == "n2d2py.target"
    for name in ("database", "provider", "transform", "activation", "solver", "filler", "export"):
        assert getattr(n2d2, name).__name__ == f"n2d2py.{name}"
    assert dict(**n2d2.ConfigSection(learning_rate=0.1)) == {"learning_rate": 0.1}
    with pytest.raises(AttributeError):
        n2d2.cells.NoSuchCell


def test_values_are_the_ini_converters():
    sgd = n2d2.solver.SGD(learning_rate=0.05, momentum=0.9, learning_rate_policy="CosineDecay",
                          max_iterations=192175050, iteration_size=2)
    from n2d2py.solvers import SGDSolver
    ini = SGDSolver()
    ini.set_parameters({"LearningRate": "0.05", "Momentum": "0.9", "MaxIterations": "192175050",
                        "LearningRatePolicy": "CosineDecay", "IterationSize": "2"})
    assert sgd.N2D2().parameters_dict() == ini.parameters_dict()
    assert sgd.learning_rate == 0.05 and sgd.get_parameter("iteration_size") == 2
    copy = sgd.copy()
    assert copy.N2D2() is not sgd.N2D2() and copy.get_parameters() == sgd.get_parameters()
    conv = Conv(1, 2, kernel_dims=[3, 3], stride_dims=[2, 1])
    assert conv.N2D2().kernel_dims == (3, 3) and conv.stride_dims == (2, 1)


def test_solver_changes_reach_the_parameters_of_a_built_cell():
    fc = Fc(4, 3)
    params = fc.N2D2().own_parameters()
    fc.set_solver_parameter("learning_rate", 0.25)
    fc.set_solver_parameter("learning_rate_policy", "CosineDecay")
    assert fc.N2D2().solvers["Weights"].learning_rate == 0.25
    assert all(p.solver.learning_rate == 0.25 and p.solver.learning_rate_policy == "CosineDecay"
               for p in params)
    fc.weights_solver.momentum = 0.5
    assert all(p.solver.momentum == 0.5 for p in params if p.group == "weights")
    fc.weights_solver = n2d2.solver.Adam(learning_rate=0.002)       # N2D2's resetWeightsSolver
    weight = fc.N2D2().weights[0]
    assert type(weight.solver).__name__ == "AdamSolver" and weight.solver.learning_rate == 0.002
    assert weight.solver is not fc.N2D2().solvers["Weights"]         # each Parameter its own


def test_refill_from_a_new_filler_keeps_the_parameters():
    conv = Conv(2, 4, [3, 3])
    weight = conv.N2D2().weights[0]
    conv.set_weights_filler(n2d2.filler.Constant(value=0.5), refill=True)
    assert conv.N2D2().weights[0] is weight and numpy.all(weight.data == 0.5)
    assert isinstance(conv.weights_filler, n2d2.filler.Constant)
    conv.set_bias_filler(n2d2.filler.Constant(value=0.25), refill=True)
    assert numpy.all(conv.N2D2().bias.data == 0.25) and conv.has_bias()
    conv.set_weights_filler(n2d2.filler.Xavier(variance_norm="FanOut", scaling=1.0), refill=True)
    bound = (3.0 / (3 * 3 * 4)) ** 0.5                          # uniform Xavier, FanOut = 36
    assert 0 < numpy.abs(weight.data).max() <= bound and len(numpy.unique(weight.data)) > 10
    nobias = Conv(2, 4, [3, 3], no_bias=True)
    assert not nobias.has_bias()
    nobias.refill_bias()                                         # nothing to refill


def test_views_of_ini_cells(monkeypatch, tmp_path):
    monkeypatch.setenv("N2D2_DATA", str(tmp_path))
    model = n2d2.cells.DeepNetCell.load_from_INI(str(lenet_api.INI))
    types = {cell.get_name(): cell.get_type() for cell in model}
    assert types["conv1"] == "Conv" and types["bn1"] == "BatchNorm2d" and types["fc1"] == "Fc"
    assert types["pool1"] == "Pool" and types["fc1.drop"] == "Dropout" and types["softmax"] == "Softmax"
    conv1, bn1 = model["conv1"], model["bn1"]
    assert isinstance(conv1, n2d2.cells.Conv) and isinstance(conv1.quantizer, n2d2_ip.quantizer.SATCell)
    assert conv1.quantizer.range == 255 and conv1.quantizer.N2D2() is conv1.N2D2().qweight
    act = bn1.activation
    assert isinstance(act, n2d2.activation.Linear) and isinstance(act.quantizer, n2d2_ip.quantizer.SATAct)
    assert act.quantizer.alpha == 6.0 and act.quantizer.solver.learning_rate == 0.05
    conv1.quantizer.set_range(63)
    assert conv1.N2D2().qweight.range == 63
    bn1.activation = n2d2.activation.Rectifier()
    assert bn1.N2D2().qact is None and bn1.N2D2().activation.type_name == "Rectifier"
    bn1.activation = n2d2.activation.Linear(quantizer=n2d2_ip.quantizer.SATAct(
        range=7, solver=n2d2.solver.SGD(momentum=0.9)))
    assert bn1.N2D2().qact.range == 7 and bn1.N2D2().qact_solver.momentum == 0.9
    assert model.get_embedded_deepnet().N2D2().cells["bn1"] is bn1.N2D2()


def test_tensors_and_interfaces():
    t = n2d2.Tensor([2, 3, 4, 5], value=1.5)
    assert t.shape() == [2, 3, 4, 5] and t.dims() == [5, 4, 3, 2]
    assert (t.dimX(), t.dimY(), t.dimZ(), t.dimB()) == (5, 4, 3, 2) and len(t) == 120
    t[(1, 2, 3, 4)] = 7.0
    assert t[119] == 7.0 and t[0] == 1.5 and t.data_type() == "float"
    u = n2d2.Tensor.from_numpy(numpy.arange(6, dtype=numpy.float32).reshape(1, 6, 1, 1))
    assert numpy.array_equal(numpy.array(u).ravel(), numpy.arange(6)) and u == u.copy()
    n2d2_dims = n2d2.Tensor([5, 4], dim_format="N2D2")
    assert n2d2_dims.shape() == [4, 5]
    with pytest.raises(ValueError):
        n2d2.Interface([t, n2d2.Tensor([2, 3, 4, 6])])


def test_layer_and_elemwise_make_a_residual_block():
    x = n2d2.Tensor.from_numpy(numpy.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(numpy.float32))
    a = Conv(3, 4, [3, 3], padding_dims=[1, 1], name="a")
    b = Conv(3, 4, [1, 1], name="b")
    block = n2d2.cells.Sequence([n2d2.cells.Layer([a, b]), ElemWise(name="sum")])
    y = block(x)
    assert y.shape() == [2, 4, 6, 6]
    expected = a.N2D2().forward([x.N2D2()]).data + b.N2D2().forward([x.N2D2()]).data
    numpy.testing.assert_allclose(y.to_numpy(), expected, rtol=1e-6)
    assert y.get_deepnet().N2D2().cells["sum"].parents == ["a", "b"]


def test_a_training_step_on_a_users_tensor_moves_the_weights(provider):
    provider.set_partition("Learn")
    model = n2d2.cells.Sequence([Conv(1, 4, [5, 5]), BatchNorm2d(4), Pool2d([2, 2], stride_dims=[2, 2]),
                                 Fc(4 * 12 * 12, 10)])
    softmax, score = Softmax(with_loss=True), n2d2.target.Score(provider)
    before = model[0].N2D2().weights[0].data.copy()
    loss = score(softmax(model(provider.read_random_batch())))
    loss.back_propagate()
    loss.update()
    assert not numpy.array_equal(before, model[0].N2D2().weights[0].data)
    assert len(score.get_loss()) == 1 and score.loss() == loss[0]


def test_provider_reads_the_partitions_in_order_and_at_random(provider):
    sp, core = provider, provider.N2D2()
    sp.set_partition("Validation")
    assert sp.get_database().get_nb_stimuli("Validation") == 800
    x = sp.read_batch(16)
    batches = list(core.batches("Validation", shuffle=False, limit=24))
    assert numpy.array_equal(x.to_numpy(), batches[2][0])
    assert numpy.array_equal(sp.get_labels().to_numpy(), batches[2][1])
    last = sp.read_batch(796)                                    # a shorter last batch
    assert last.dimB() == 4
    sp.set_batch(shuffle=False)
    seen = 0
    while not sp.all_batchs_provided():
        seen += sp.read_batch().dimB()
    assert seen == 800
    n2d2.global_variables.seed = 5
    first = sp.read_random_batch().to_numpy()
    n2d2.global_variables.seed = 5
    assert numpy.array_equal(sp.read_random_batch().to_numpy(), first)
    assert [b.dimB() for b in iter(sp)] == [8] * 100


def test_score_keeps_each_partitions_success(provider):
    sp = provider
    fc, softmax, score = Fc(28 * 28, 10), Softmax(), n2d2.target.Score(sp)
    sp.set_partition("Test")
    for i in range(3):
        score(softmax(fc(sp.read_batch(8 * i))))
    test_success = score.get_average_success()
    per_batch = score._pass().batch_success
    assert len(per_batch) == 3 and test_success == pytest.approx(numpy.mean(per_batch))
    assert score.get_average_success(window=1) == pytest.approx(per_batch[-1])
    sp.set_partition("Validation")
    assert score.get_average_success() == 0.0                   # a separate partition
    score(softmax(fc(sp.read_batch(0))))
    sp.set_partition("Test")
    assert score.get_average_success() == test_success
    assert 0.0 <= score.get_average_score("Precision") <= 1.0
    score.clear_success()
    assert score.get_average_success() == 0.0


def test_weight_files_round_trip_between_two_python_networks(tmp_path):
    def net(seed):
        n2d2.global_variables.seed = seed
        return n2d2.cells.Sequence([
            Conv(1, 4, [3, 3], name="c", quantizer=n2d2_ip.quantizer.SATCell(range=15)),
            BatchNorm2d(4, name="bn", activation=n2d2.activation.Linear(
                quantizer=n2d2_ip.quantizer.SATAct(alpha=3.0, range=15))),
            Fc(4 * 6 * 6, 3, name="f")])
    data = numpy.random.default_rng(1).random((2, 1, 8, 8), numpy.float32)
    a, b = net(1), net(2)
    a(n2d2.Tensor.from_numpy(data))                   # alpha is made on first use
    a.export_free_parameters(str(tmp_path / "w"))
    assert not numpy.array_equal(a[0].N2D2().weights[0].data, b[0].N2D2().weights[0].data)
    b(n2d2.Tensor.from_numpy(data))
    b.import_free_parameters(str(tmp_path / "w"))
    for name in ("c", "bn", "f"):
        for p, q in zip(a[name].N2D2().parameters(), b[name].N2D2().parameters()):
            numpy.testing.assert_allclose(p.data, q.data, rtol=1e-5)   # N2D2's 6 digits


def test_onnx_loading_with_an_ini_of_overrides(tmp_path, provider):
    pytest.importorskip("onnx")
    import sys
    import onnx
    sys.path.insert(0, str(lenet_api.INI.parents[4] / "onnx"))
    from _builders import GraphBuilder
    b = GraphBuilder(numpy.random.default_rng(0))
    x = b.conv("x", 1, 4, 3, out="conv_a", bias=True)
    x = b.node("Relu", [x], "relu_a")
    x = b.node("Flatten", [b.node("GlobalAveragePool", [x], "gap")], "flat", axis=1)
    x = b.node("Gemm", [x, b.const(numpy.ones((10, 4))), b.const(numpy.zeros(10))], "dense", transB=1)
    onnx.save(b.model([1, 1, 28, 28], x), tmp_path / "small.onnx")
    (tmp_path / "small.ini").write_text("[onnx:Conv_def]\nQWeight=SAT\nQWeight.Range=15\n")
    model = n2d2.cells.DeepNetCell.load_from_ONNX(provider, str(tmp_path / "small.onnx"),
                                                  ini_file=str(tmp_path / "small.ini"))
    assert [c.get_type() for c in model][:1] == ["Conv"]
    assert model["conv_a"].quantizer.range == 15 and model["conv_a"].has_bias()
    provider.set_partition("Test")
    model.test()
    out = model(provider.read_batch(0))
    assert out.shape() == [8, 10, 1, 1] and out.cell.get_name() == "dense"
    with pytest.raises(ValueError, match="provider's batch"):
        model(n2d2.Tensor([1, 1, 28, 28]))


def test_deepnet_cell_fit_and_run_test(tmp_path, monkeypatch):
    """``fit`` and ``run_test`` are the command's learning and test loops (a target added on
    the last cell, as N2D2 adds one)."""
    pytest.importorskip("onnx")
    import sys
    import onnx
    sys.path.insert(0, str(lenet_api.INI.parents[4] / "onnx"))
    from _builders import GraphBuilder
    monkeypatch.chdir(tmp_path)
    b = GraphBuilder(numpy.random.default_rng(0))
    x = b.node("Relu", [b.conv("x", 1, 8, 5, 2, pads=[0] * 4, out="c1")], "r1")
    x = b.node("Flatten", [b.node("MaxPool", [x], "p1", kernel_shape=[2, 2], strides=[2, 2])],
               "flat", axis=1)
    x = b.node("Gemm", [x, b.const(numpy.random.default_rng(1).standard_normal((10, 8 * 36)) * 0.05),
                        b.const(numpy.zeros(10))], "dense", transB=1)
    onnx.save(b.model([1, 1, 28, 28], b.node("Softmax", [x], "soft", axis=1)), "net.onnx")
    database = n2d2.database.MNIST(data_path=BUNDLED_MNIST, validation=0.1)
    sp = n2d2.provider.DataProvider(database, [28, 28, 1], batch_size=128)
    model = n2d2.cells.DeepNetCell.load_from_ONNX(sp, "net.onnx")
    history = model.fit(2, valid_metric="Accuracy")
    assert len(history.validation) == 2 and (tmp_path / "weights_validation").is_dir()
    result = model.run_test()
    assert result.recognition_rate > 50.0
    with pytest.raises(n2d2.N2D2Error, match="SAT"):
        model.run_test(qat_sat=True)
    with pytest.raises(ValueError, match="valid_metric='Acc'"):
        model.fit(1, valid_metric="Acc")


def test_block_to_deepnet_cell_and_block_solver(provider):
    seq = n2d2.cells.Sequence([Conv(1, 2, [5, 5], name="k"), BatchNorm2d(2, name="n"),
                               Fc(2 * 24 * 24, 10, name="o")])
    seq.set_solver(n2d2.solver.SGD(learning_rate=0.125))
    params = [p for c in seq for p in c.N2D2().own_parameters()]
    assert {p.solver.learning_rate for p in params} == {0.125}
    assert len({id(p.solver) for p in params}) == len(params)
    cell = seq.to_deepnet_cell(provider)
    assert list(cell.get_embedded_deepnet().N2D2().cells) == ["k", "n", "o"]
    assert cell["n"].N2D2() is seq["n"].N2D2() and seq["k"]._inference is False


def test_gpu_settings_run_on_the_cpu_with_a_notice(capsys):
    n2d2.global_variables.cuda_device = 2
    n2d2.global_variables.default_model = "Frame_CUDA"
    err = capsys.readouterr().err
    assert "cuda_device=2" in err and "runs on the CPU" in err
    assert n2d2.global_variables.cuda_available is False
    assert Conv(1, 1, [1, 1]).N2D2().model == "Frame_CUDA"        # the INI's DefaultModel
