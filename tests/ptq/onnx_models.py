"""ResNet-18 and MobileNet-v2 as a PyTorch export lays them out (torchvision's topologies:
Conv, BatchNormalization, Relu / Clip(0, 6), Add, MaxPool, GlobalAveragePool, Flatten, Gemm),
with seeded random weights, built with ``onnx.helper`` (no PyTorch needed); ``width`` scales
the channel counts (1.0: the real networks), and ``calibration_ini`` writes an INI that runs
one of them on a NumPy_Database of random images."""
import numpy
import onnx
from onnx import TensorProto, helper, numpy_helper


class Graph:
    def __init__(self, rng, opset=17):
        self.rng, self.opset = rng, opset
        self.nodes, self.inits, self.count = [], [], 0

    def name(self, prefix):
        self.count += 1
        return f"{prefix}.{self.count}"

    def const(self, array, prefix, dtype=numpy.float32):
        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(numpy.asarray(array, dtype), name))
        return name

    def node(self, op, inputs, prefix, **attrs):
        out = self.name(f"/{prefix}/{op}")
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def conv(self, x, cin, cout, k, stride=1, group=1, prefix="conv"):
        fan_in = cin // group * k * k
        W = self.rng.standard_normal((cout, cin // group, k, k)) * (2.0 / fan_in) ** 0.5
        return self.node("Conv", [x, self.const(W, f"{prefix}.weight")], prefix,
                         kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4,
                         group=group)

    def bn(self, x, c, prefix="bn"):
        r = self.rng
        return self.node("BatchNormalization",
                         [x, self.const(0.5 + 0.5 * r.random(c), f"{prefix}.weight"),
                          self.const(0.1 * r.standard_normal(c), f"{prefix}.bias"),
                          self.const(0.1 * r.standard_normal(c), f"{prefix}.running_mean"),
                          self.const(0.5 + r.random(c), f"{prefix}.running_var")],
                         prefix, epsilon=1e-5)

    def relu6(self, x, prefix):
        lo, hi = self.const(0.0, f"{prefix}.min"), self.const(6.0, f"{prefix}.max")
        return self.node("Clip", [x, lo, hi], prefix)

    def head(self, x, cin, classes):
        x = self.node("GlobalAveragePool", [x], "avgpool")
        x = self.node("Flatten", [x], "flatten", axis=1)
        W = self.rng.standard_normal((classes, cin)) * (1.0 / cin) ** 0.5
        return self.node("Gemm", [x, self.const(W, "fc.weight"),
                                  self.const(0.1 * self.rng.standard_normal(classes), "fc.bias")],
                         "fc", transB=1)

    def model(self, size, output):
        graph = helper.make_graph(
            self.nodes, "torch_jit",
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size, size])],
            [helper.make_tensor_value_info(output, TensorProto.FLOAT, [1, "classes"])],
            self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        onnx.checker.check_model(model)
        return model


def channels(c, width):
    return max(1, int(round(c * width)))


def resnet18(seed=0, size=64, width=1.0, classes=10):
    """torchvision's resnet18: 7x7/2 stem, 3x3/2 max pool, four stages of two basic blocks
    (1x1/2 projection shortcuts), global average pool, Fc."""
    g = Graph(numpy.random.default_rng(seed))
    w = [channels(c, width) for c in (64, 128, 256, 512)]
    x = g.node("Relu", [g.bn(g.conv("input", 3, w[0], 7, 2, prefix="conv1"), w[0], "bn1")],
               "relu")
    x = g.node("MaxPool", [x], "maxpool", kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4)
    cin = w[0]
    for stage, cout in enumerate(w, start=1):
        for block in range(2):
            p = f"layer{stage}.{block}"
            stride = 2 if block == 0 and stage > 1 else 1
            y = g.node("Relu", [g.bn(g.conv(x, cin, cout, 3, stride, prefix=f"{p}.conv1"), cout,
                                     f"{p}.bn1")], f"{p}.relu")
            y = g.bn(g.conv(y, cout, cout, 3, prefix=f"{p}.conv2"), cout, f"{p}.bn2")
            short = x
            if stride != 1 or cin != cout:
                short = g.bn(g.conv(x, cin, cout, 1, stride, prefix=f"{p}.downsample.0"), cout,
                             f"{p}.downsample.1")
            x = g.node("Relu", [g.node("Add", [y, short], f"{p}.add")], f"{p}.relu_1")
            cin = cout
    return g.model(size, g.head(x, cin, classes))


MOBILENET_V2 = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                (6, 160, 3, 2), (6, 320, 1, 1))


def mobilenet_v2(seed=0, size=64, width=1.0, classes=10):
    """torchvision's mobilenet_v2: 3x3/2 stem, the inverted residual blocks (1x1 expansion,
    3x3 depthwise, 1x1 linear projection, residual Add when the shape allows), 1x1 conv to
    1280, ReLU6 as Clip(0, 6), global average pool, Fc."""
    g = Graph(numpy.random.default_rng(seed))
    cin = channels(32, width)
    x = g.relu6(g.bn(g.conv("input", 3, cin, 3, 2, prefix="features.0.0"), cin, "features.0.1"),
                "features.0.2")
    index = 1
    for t, c, n, s in MOBILENET_V2:
        cout = channels(c, width)
        for i in range(n):
            p = f"features.{index}.conv"
            stride = s if i == 0 else 1
            hidden = cin * t
            h = x
            if t != 1:
                h = g.relu6(g.bn(g.conv(h, cin, hidden, 1, prefix=f"{p}.0.0"), hidden,
                                 f"{p}.0.1"), f"{p}.0.2")
            h = g.relu6(g.bn(g.conv(h, hidden, hidden, 3, stride, group=hidden,
                                    prefix=f"{p}.1.0"), hidden, f"{p}.1.1"), f"{p}.1.2")
            h = g.bn(g.conv(h, hidden, cout, 1, prefix=f"{p}.2"), cout, f"{p}.3")
            x = g.node("Add", [x, h], f"features.{index}.add") \
                if stride == 1 and cin == cout else h
            cin, index = cout, index + 1
    last = channels(1280, max(width, 1.0))
    x = g.relu6(g.bn(g.conv(x, cin, last, 1, prefix="features.18.0"), last, "features.18.1"),
                "features.18.2")
    return g.model(size, g.head(x, last, classes))


def calibration_ini(folder, model, seed=0, size=64, count=64, classes=10):
    """Write ``folder/model.onnx``, ``folder/data.npz`` (``count`` random uint8 images, labels
    0..classes-1) and ``folder/net.ini`` (NumPy_Database, half Validation, half Test); returns
    the INI path."""
    rng = numpy.random.default_rng(seed + 1)
    onnx.save(model, str(folder / "model.onnx"))
    x = rng.integers(0, 256, (count, 3, size, size), dtype=numpy.uint8)
    y = rng.integers(0, classes, count)
    numpy.savez(folder / "data.npz", x=x, y=y)
    text = f"""[database]
Type=NumPy_Database
DataPath=data.npz
Layout=NCHW
Learn=0
Validation={count // 2}
Test={count - count // 2}
PerLabelPartitioning=0

[sp]
SizeX={size}
SizeY={size}
NbChannels=3
BatchSize=16

[onnx]
Input=sp
Type=ONNX
File=model.onnx

[softmax]
Input=onnx
Type=Softmax
NbOutputs={classes}
WithLoss=1

[softmax.Target]
"""
    path = folder / "net.ini"
    path.write_text(text)
    return path
