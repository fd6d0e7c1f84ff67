"""Every runnable INI we ship (models/, ini_examples/) builds, with the layer sizes N2D2 gives."""
import pathlib

import pytest

from n2d2py.deepnet import DeepNet

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHIPPED = sorted(ROOT.glob("models/*.ini")) + sorted(ROOT.glob("ini_examples/*.ini"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_ini_builds(path):
    net = DeepNet.from_ini(str(path), load_data=False)
    last = list(net.cells.values())[-1]
    assert net.targets, "every shipped network has a target"
    assert last.out_shape[0] in (10, 100), f"{path.name}: last cell has {last.out_shape} outputs"


def test_lenet_layer_sizes():
    """N2D2's LeNet on 32x32: 28x28x6, 14x14x6, 10x10x16, 5x5x16, 1x1x120, 84, 10."""
    net = DeepNet.from_ini(str(ROOT / "models" / "LeNet.ini"), load_data=False)
    shapes = {name: tuple(cell.out_shape) for name, cell in net.cells.items()}
    assert shapes["conv1"] == (6, 28, 28) and shapes["pool1"] == (6, 14, 14)
    assert shapes["conv2"] == (16, 10, 10) and shapes["pool2"] == (16, 5, 5)
    assert shapes["conv3"] == (120, 1, 1)
    assert shapes["fc1"][0] == 84 and shapes["fc2"][0] == 10


@pytest.mark.parametrize("path", sorted(ROOT.glob("ini_examples/*.ini")), ids=lambda p: p.name)
def test_examples_build_without_warnings(path):
    """A recommended file prints no warning (an "overriding property" warning taught users to
    ignore warnings); only notices about data a --build-only run does not read remain."""
    net = DeepNet.from_ini(str(path), load_data=False)
    lines = [str(w) for w in getattr(net.document, "warnings", ())] + [str(w) for w in net.warnings()]
    assert [line for line in lines if "Notice: " not in line] == []


@pytest.mark.parametrize("name", ["LeNet_SAT4", "LeNet_LSQ4", "LeNet_SAT4_stage1"])
def test_qat_lenets_keep_8_bit_first_and_last_layers(name):
    net = DeepNet.from_ini(str(ROOT / "ini_examples" / f"{name}.ini"), load_data=False)
    ranges = {n: c.qweight.range for n, c in net.cells.items() if getattr(c, "qweight", None)}
    assert ranges == {"conv1": 255, "conv2": 15, "conv3": 15, "fc1": 15, "fc2": 255}


def test_all_cnn_c_kernels_after_the_base_split():
    net = DeepNet.from_ini(str(ROOT / "ini_examples" / "All-CNN-C.ini"), load_data=False)
    kernels = {n: (tuple(c.kernel_dims), tuple(c.padding_dims)) for n, c in net.cells.items()
               if n.startswith("conv")}
    assert kernels["conv1"] == ((3, 3), (1, 1)) and kernels["conv6"] == ((3, 3), (1, 1))
    assert kernels["conv7"] == ((3, 3), (0, 0)) and kernels["conv9"] == ((1, 1), (0, 0))
