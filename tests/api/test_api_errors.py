"""Wrong use of N2D2's Python API: a Python exception (``WrongInputType``, a TypeError, or
``WrongValue``, a ValueError) that names the object and the argument, raised before any array
code runs — never an error from inside NumPy."""
import numpy
import pytest

import n2d2py as n2d2
from n2d2py import n2d2_ip
from n2d2py.cells.nn import BatchNorm2d, Conv, Fc, Pool2d, Softmax
from n2d2py.data import BUNDLED_MNIST

WrongInputType = n2d2.error_handler.WrongInputType
WrongValue = n2d2.error_handler.WrongValue
SATCell, SATAct = n2d2_ip.quantizer.SATCell, n2d2_ip.quantizer.SATAct


def batch(shape):
    return n2d2.Tensor.from_numpy(numpy.zeros(shape, numpy.float32))


def raises(kind, *words):
    """pytest.raises whose message must hold every one of ``words``."""
    class Check:
        def __enter__(self):
            self.ctx = pytest.raises(kind)
            self.info = self.ctx.__enter__()
            return self.info

        def __exit__(self, *exc):
            result = self.ctx.__exit__(*exc)
            message = str(self.info.value)
            for word in words:
                assert word in message, message
            where = str(self.info.traceback[-1].path)   # raised by the API, before any array code
            assert "n2d2py/api/" in where or "n2d2py\\api\\" in where, where
            return result
    return Check()


def test_error_classes_are_the_usual_python_ones():
    assert issubclass(WrongInputType, TypeError) and issubclass(WrongValue, ValueError)


@pytest.mark.parametrize("make, words", [
    (lambda: Conv(1, 6, kernel_dims=[5, 5], kernl_dims=[3, 3], name="c1"),
     ["Conv 'c1'", "unknown argument 'kernl_dims'", "kernel_dims"]),
    (lambda: Fc(10, 2, no_bais=True, name="f"), ["Fc 'f'", "'no_bais'", "no_bias"]),
    (lambda: BatchNorm2d(4, epsillon=1e-3, name="b"), ["BatchNorm2d 'b'", "'epsillon'", "epsilon"]),
    (lambda: SATCell(rnage=15), ["SATCell", "'rnage'", "range"]),
    (lambda: n2d2.solver.SGD(learnig_rate=0.1), ["SGD", "'learnig_rate'", "learning_rate"]),
    (lambda: n2d2.filler.Xavier(variance="FanOut"), ["Xavier", "'variance'", "variance_norm"]),
    (lambda: n2d2.transform.Rescale(32, 32, keep_ratio=True), ["Rescale", "'keep_ratio'"]),
])
def test_a_wrong_keyword_names_the_object_and_the_keyword(make, words):
    with raises(WrongInputType, *words):
        make()


@pytest.mark.parametrize("make, kind, words", [
    (lambda: SATCell(range="15"), WrongInputType, ["SATCell", "range must be an int", "'15'"]),
    (lambda: SATCell(range=-1), WrongValue, ["SATCell", "range=-1"]),
    (lambda: SATCell(quant_mode="Sym"), WrongValue, ["quant_mode='Sym'", "Symmetric"]),
    (lambda: SATCell(quant_mode="Symmetric", range=1), WrongValue, ["range", "Range >= 2"]),
    (lambda: SATAct(alpha="six"), WrongInputType, ["SATAct", "alpha"]),
    (lambda: n2d2.solver.SGD(learning_rate_policy="Cosine"), WrongValue,
     ["learning_rate_policy='Cosine'", "CosineDecay"]),
    (lambda: Conv(1, 6, kernel_dims=[5, 5], stride_dims=[0, 1], name="c"), WrongValue,
     ["Conv 'c'", "stride_dims"]),
    (lambda: Conv(1, 6, kernel_dims="5", name="c"), WrongInputType, ["Conv 'c'", "kernel_dims"]),
    (lambda: Conv(1, 0, kernel_dims=[5, 5]), WrongInputType, ["nb_outputs must be a positive"]),
    (lambda: Conv(1, 6, [5, 5], activation="relu", name="c"), WrongInputType,
     ["Conv 'c'", "activation must be"]),
    (lambda: Conv(1, 6, [5, 5], weights_solver=SATCell(), name="c"), WrongInputType,
     ["Conv 'c'", "weights_solver"]),
    (lambda: Conv(1, 6, [5, 5], weights_filler=n2d2.solver.SGD(), name="c"), WrongInputType,
     ["Conv 'c'", "weights_filler"]),
    (lambda: Pool2d([2, 2], pooling="Avg", name="p"), WrongValue, ["Pool2d 'p'", "pooling='Avg'"]),
])
def test_a_wrong_value_names_the_object_and_the_argument(make, kind, words):
    with raises(kind, *words):
        make()


def test_a_quantizer_on_a_cell_that_cannot_take_one():
    with raises(WrongInputType, "BatchNorm2d 'bn'", "quantizer=SATCell", "no weights"):
        BatchNorm2d(6, quantizer=SATCell(), name="bn")
    with raises(WrongInputType, "Pool2d 'pool'", "quantizer"):
        Pool2d([2, 2], quantizer=SATCell(), name="pool")
    with raises(WrongInputType, "Conv 'c'", "SATAct is an activation quantizer"):
        Conv(1, 6, [5, 5], quantizer=SATAct(), name="c")
    with raises(WrongInputType, "Linear", "quantizer must be an activation quantizer"):
        n2d2.activation.Linear(quantizer=SATCell())
    with raises(WrongInputType, "SATCell has no learnable value"):
        SATCell().solver = n2d2.solver.SGD()
    shared = SATCell(range=15)
    Conv(1, 6, [5, 5], quantizer=shared, name="first")
    with raises(WrongValue, "already the quantizer of cell 'first'", "its own"):
        Conv(6, 6, [5, 5], quantizer=shared, name="second")
    softmax = Softmax(name="s")
    with raises(WrongInputType, "Softmax 's'", "no weights to quantize"):
        softmax.quantizer = SATCell()


def test_a_cell_given_the_wrong_input_size():
    with raises(WrongValue, "Conv 'c'", "nb_inputs=3", "1 channels"):
        Conv(3, 6, [3, 3], name="c")(batch((2, 1, 8, 8)))
    with raises(WrongValue, "Fc 'f'", "nb_inputs=100", "16x5x5 = 400 values"):
        Fc(100, 10, name="f")(batch((2, 16, 5, 5)))
    with raises(WrongValue, "BatchNorm2d 'b'", "nb_inputs=6", "16 channels"):
        BatchNorm2d(6, name="b")(batch((2, 16, 4, 4)))
    with raises(WrongValue, "Conv 'k'", "output size"):
        Conv(1, 6, [5, 5], name="k")(batch((2, 1, 3, 3)))
    with raises(WrongValue, "Conv 'd'", "4 dimensions"):
        Conv(1, 6, [5, 5], name="d")(batch((1, 8, 8)))
    with raises(WrongInputType, "Conv 'e'", "ndarray", "n2d2.Tensor"):
        Conv(1, 6, [5, 5], name="e")(numpy.zeros((1, 1, 8, 8), numpy.float32))


def test_a_built_cell_keeps_its_shape_keys():
    conv = Conv(1, 6, [5, 5], name="c")
    with raises(WrongValue, "Conv 'c'", "kernel_dims cannot change once the cell is built"):
        conv.kernel_dims = [3, 3]
    conv.back_propagate = False                   # a run-time key may change
    assert conv.N2D2().back_propagate is False


def test_provider_and_target_misuse(tmp_path):
    database = n2d2.database.MNIST(data_path=BUNDLED_MNIST)
    with raises(WrongInputType, "DataProvider", "database"):
        n2d2.provider.DataProvider("mnist", [28, 28, 1])
    with raises(WrongInputType, "size must be [width, height, channels]"):
        n2d2.provider.DataProvider(database, [28.0, 28, 1])
    provider = n2d2.provider.DataProvider(database, [28, 28, 1], batch_size=4)
    with raises(WrongValue, "partition='Train'", "Learn"):
        provider.set_partition("Train")
    with raises(WrongValue, "read_batch(idx=5000)", "0..999"):
        provider.read_batch(5000)
    with raises(WrongValue, "MNIST", "partition='train'"):
        database.get_nb_stimuli("train")
    other = n2d2.provider.DataProvider(database, [28, 28, 1], batch_size=4)
    score = n2d2.target.Score(other)
    x = Softmax(name="sm")(provider.read_batch(0))
    with raises(WrongValue, "does not come from a batch of this target's provider"):
        score(x)
    with raises(WrongValue, "not a loss"):
        x.back_propagate()
    with raises(WrongValue, "cell 'sm' has 1 output(s), too few for label"):
        n2d2.target.Score(provider)(x)
    with raises(WrongValue, "metric='Precison'"):
        n2d2.target.Score(provider).get_average_score("Precison")


def test_fuse_qat_arguments():
    database = n2d2.database.MNIST(data_path=BUNDLED_MNIST)
    provider = n2d2.provider.DataProvider(database, [28, 28, 1], batch_size=4)
    deepnet = Softmax(name="sm")(provider.read_batch(0)).get_deepnet()
    with raises(WrongInputType, "fuse_qat", "deep_net"):
        n2d2_ip.quantizer.fuse_qat(provider, provider, "NONE")
    with raises(WrongValue, "act_scaling_mode='FLOAT'", "FLOAT_MULT"):
        n2d2_ip.quantizer.fuse_qat(deepnet, provider, "FLOAT")
    with raises(WrongValue, "w_mode='ROUND'", "RINTF"):
        n2d2_ip.quantizer.fuse_qat(deepnet, provider, "FLOAT_MULT", w_mode="ROUND")


def test_global_variables_refuse_wrong_values():
    with raises(ValueError, "default_model", "Frame_CUDA"):
        n2d2.global_variables.default_model = "Spike"
    with raises(TypeError, "seed", "'1'"):
        n2d2.global_variables.seed = "1"
