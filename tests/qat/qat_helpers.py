"""Shared loaders for the QAT tests: N2D2's test models on the bundled digits."""
import pathlib


# the same folder as tests/conftest.py's n2d2_ini (conftest modules are not importable by name)
N2D2_INI = pathlib.Path(__file__).resolve().parents[1] / "data" / "n2d2"

MNIST_MODEL = N2D2_INI / "tests_data" / "mnist_model"
MULTIBRANCH = N2D2_INI / "tests_data" / "mnist_multibranch_model"

#: (INI, weights folder, N2D2's fake-quant accuracy on the 1000 bundled test digits, %)
CONFIGS = [
    ("LeNet-bn-SAT", "weights_test_SAT", 99.9), ("LeNet-bn-SAT-8b", "weights_8b_SAT", 100.0),
    ("LeNet_4b", "weights_LeNet_4b", 99.8), ("LeNet_w1_a2", "weights_LeNet_w1_a2", 98.8),
    ("LeNet_w1_a4", "weights_LeNet_w1_a4", 99.5), ("LeNet_w1_a8", "weights_LeNet_w1_a8", 99.4),
    ("LeNet_w3_a4", "weights_LeNet_w3_a4", 99.8), ("LeNet_w4_a8", "weights_LeNet_w4_a8", 100.0),
    ("LeNet_w5_a8", "weights_LeNet_w5_a8", 100.0), ("LeNet_wMix_a4", "weights_LeNet_wMix_a4", 99.8),
]


def load(ini, weights, folder=MNIST_MODEL, batch_size=250):
    """DeepNet with N2D2's weights; a larger batch only speeds the tests up (we compare sample
    accuracies, which do not depend on the batch size)."""
    from n2d2py.deepnet import DeepNet
    net = DeepNet.from_ini(str(folder / f"{ini}.ini"))
    net.import_weights(str(folder / weights))
    net.sp.batch_size = batch_size
    return net
