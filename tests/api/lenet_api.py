"""``LeNet-bn-SAT.ini`` (N2D2's test model, tests/data/n2d2/tests_data/mnist_model) written with
N2D2's Python API in the style of the LeNet part 2 of N2D2's QAT documentation: the same cells,
names, fillers, solvers and quantizers, so that it and the INI must give the same network value for
value."""
import pathlib

import n2d2py as n2d2
from n2d2py import n2d2_ip
from n2d2py.cells.nn import BatchNorm2d, Conv, Dropout, Fc, Pool2d
from n2d2py.data import BUNDLED_MNIST

MNIST_MODEL = pathlib.Path(__file__).resolve().parents[1] / "data" / "n2d2" / "tests_data" / \
    "mnist_model"
INI = MNIST_MODEL / "LeNet-bn-SAT.ini"

solver_conf = n2d2.ConfigSection(learning_rate=0.05, learning_rate_policy="None",
                                 momentum=0.0, decay=0.0)


def sat_act(range_):
    return n2d2.activation.Linear(quantizer=n2d2_ip.quantizer.SATAct(
        alpha=6.0, range=range_, solver=n2d2.solver.SGD(**solver_conf)))


def conv_conf(range_=15):
    return n2d2.ConfigSection(
        activation=n2d2.activation.Linear(), no_bias=True,
        weights_filler=n2d2.filler.Xavier(variance_norm="FanOut", scaling=1.0),
        weights_solver=n2d2.solver.SGD(**solver_conf), bias_solver=n2d2.solver.SGD(**solver_conf),
        quantizer=n2d2_ip.quantizer.SATCell(apply_scaling=False, apply_quantization=True,
                                            range=range_))


def fc_conf(range_=15):
    return n2d2.ConfigSection(
        activation=sat_act(range_), no_bias=True,
        weights_filler=n2d2.filler.Normal(mean=0.0, std_dev=0.01),
        bias_filler=n2d2.filler.Constant(value=0.0),
        weights_solver=n2d2.solver.SGD(**solver_conf), bias_solver=n2d2.solver.SGD(**solver_conf),
        quantizer=n2d2_ip.quantizer.SATCell(apply_scaling=True, apply_quantization=True,
                                            range=range_))


def bn_conf():
    return n2d2.ConfigSection(activation=sat_act(15),
                              scale_solver=n2d2.solver.SGD(**solver_conf),
                              bias_solver=n2d2.solver.SGD(**solver_conf))


def provider(batch_size, seed=1):
    """The INI's [database] and [env] (RandomPartitioning, Rescale 32x32, RangeAffine /255),
    after the session's seed and model are set as the INI sets them."""
    n2d2.global_variables.seed = seed
    n2d2.global_variables.default_model = "Frame_CUDA"
    database = n2d2.database.MNIST(data_path=BUNDLED_MNIST)
    sp = n2d2.provider.DataProvider(database, [32, 32, 1], batch_size=batch_size)
    sp.add_transformation(n2d2.transform.Rescale(width=32, height=32))
    sp.add_transformation(n2d2.transform.RangeAffine("Divides", 255.0))
    return sp


def model():
    """The INI's cells, in its order, with its names."""
    return n2d2.cells.Sequence([
        Conv(1, 6, kernel_dims=[5, 5], name="conv1", **conv_conf(255)),
        BatchNorm2d(6, name="bn1", **bn_conf()),
        Pool2d(pool_dims=[2, 2], stride_dims=[2, 2], pooling="Max", name="pool1"),
        Conv(6, 16, [5, 5], name="conv2", **conv_conf()),
        BatchNorm2d(16, name="bn2", **bn_conf()),
        Pool2d(pool_dims=[2, 2], stride_dims=[2, 2], pooling="Max", name="pool2"),
        Conv(16, 120, [5, 5], name="conv3", **conv_conf()),
        BatchNorm2d(120, name="bn3", **bn_conf()),
        Fc(120, 84, name="fc1", **fc_conf()),
        Dropout(name="fc1.drop"),
        Fc(84, 10, name="fc2", **fc_conf(255)),
    ])


def ini_net(batch_size, seed=1):
    from n2d2py.deepnet import DeepNet
    return DeepNet.from_ini(str(INI), seed=seed, env={"BATCH_SIZE": str(batch_size)})
