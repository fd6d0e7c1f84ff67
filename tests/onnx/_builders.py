"""Random-weight ONNX graphs built with ``onnx.helper`` for the importer tests."""
import numpy
import onnx
from onnx import TensorProto, helper, numpy_helper


class GraphBuilder:
    def __init__(self, rng, opset=15):   # BatchNormalization-14: ReferenceEvaluator's BN-9 mixes batch stats
        self.rng, self.opset = rng, opset
        self.nodes, self.inits, self.count = [], [], 0

    def name(self, prefix):
        self.count += 1
        return f"{prefix}{self.count}"

    def const(self, array, prefix="w"):
        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(numpy.asarray(array, numpy.float32), name))
        return name

    def node(self, op, inputs, out=None, **attrs):
        out = out or self.name(op.lower() + "_")
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def conv(self, x, cin, cout, k, stride=1, pads=None, group=1, bias=True, out=None):
        W = self.rng.standard_normal((cout, cin // group, k, k)) * (2.0 / (cin * k * k)) ** 0.5
        inputs = [x, self.const(W)] + ([self.const(self.rng.standard_normal(cout) * 0.1)] if bias else [])
        pads = [k // 2] * 4 if pads is None else pads
        return self.node("Conv", inputs, out, kernel_shape=[k, k], strides=[stride, stride],
                         pads=pads, group=group)

    def bn(self, x, c, out=None):
        r = self.rng
        return self.node("BatchNormalization",
                         [x, self.const(1 + 0.1 * r.standard_normal(c)),
                          self.const(0.1 * r.standard_normal(c)),
                          self.const(0.1 * r.standard_normal(c)),
                          self.const(0.5 + r.random(c))], out, epsilon=1e-5)

    def model(self, x_shape, output):
        graph = helper.make_graph(self.nodes, "g",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                                  [onnx.ValueInfoProto(name=output, type=helper.make_tensor_type_proto(TensorProto.FLOAT, None))],
                                  self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        onnx.checker.check_model(model) if False else None
        return model


def resnet18_like(rng, size=32, classes=10):
    """ResNet-18-like: stem conv + BN + ReLU + ceil-mode max pool with asymmetric pads, four
    stages of basic blocks (downsampling shortcut conv), global pool, Flatten, Gemm, Softmax.
    Node outputs are named like resnet18v1.onnx's (resnetv15_*)."""
    b = GraphBuilder(rng)
    x = b.conv("x", 3, 8, 3, 1, out="resnetv15_conv0_fwd", bias=False)
    x = b.bn(x, 8, out="resnetv15_batchnorm0_fwd")
    x = b.node("Relu", [x], "resnetv15_relu0_fwd")
    x = b.node("MaxPool", [x], "resnetv15_pool0_fwd", kernel_shape=[3, 3], strides=[2, 2],
               pads=[0, 0, 1, 1], ceil_mode=1)
    cin = 8
    for stage, cout in enumerate((8, 16, 32, 32), start=1):
        for block in range(2):
            stride = 2 if block == 0 and stage > 1 else 1
            p = f"resnetv15_stage{stage}_"
            y = b.conv(x, cin, cout, 3, stride, bias=False, out=f"{p}conv{2 * block}_fwd")
            y = b.node("Relu", [b.bn(y, cout)], f"{p}relu{2 * block}_fwd")
            y = b.bn(b.conv(y, cout, cout, 3, bias=False, out=f"{p}conv{2 * block + 1}_fwd"), cout)
            short = x if stride == 1 and cin == cout else \
                b.bn(b.conv(x, cin, cout, 1, stride, pads=[0] * 4, bias=False), cout)
            x = b.node("Relu", [b.node("Add", [y, short])], f"{p}activation{block}")
            cin = cout
    x = b.node("GlobalAveragePool", [x])
    x = b.node("Flatten", [x], axis=1)
    W = rng.standard_normal((classes, cin)) * 0.3
    x = b.node("Gemm", [x, b.const(W), b.const(rng.standard_normal(classes) * 0.1)],
               "resnetv15_dense0_fwd", transB=1)
    x = b.node("Softmax", [x], "softmax0", axis=1)
    return b.model([1, 3, size, size], x)


def mobilenet_v2_like(rng, size=33):
    """MobileNet-v2-like: inverted residual blocks with depthwise convs, Clip-ReLU6 (input
    form), asymmetric SAME_UPPER-style pads, a ceil-mode average pool, a Concat of two branches,
    a channel Transpose round trip, a Reshape, Flatten, MatMul + Add (CNTK-style Fc) and Softmax."""
    b = GraphBuilder(rng)
    lo, hi = b.const(0.0, "min"), b.const(6.0, "max")

    def relu6(t):
        return b.node("Clip", [t, lo, hi])

    x = relu6(b.bn(b.conv("x", 3, 8, 3, 2, pads=[0, 0, 1, 1]), 8))
    cin = 8
    for cout, stride in ((8, 1), (12, 2), (12, 1)):
        h = relu6(b.bn(b.conv(x, cin, cin * 3, 1, pads=[0] * 4), cin * 3))
        h = relu6(b.bn(b.conv(h, cin * 3, cin * 3, 3, stride, group=cin * 3), cin * 3))
        h = b.bn(b.conv(h, cin * 3, cout, 1, pads=[0] * 4), cout)
        x = b.node("Add", [h, x]) if stride == 1 and cin == cout else h
        cin = cout
    left = relu6(b.conv(x, cin, 6, 1, pads=[0] * 4))
    right = b.node("Relu", [b.conv(x, cin, 6, 3)])
    x = b.node("Concat", [left, right], axis=1)
    cin = 12
    x = b.node("Transpose", [x], perm=[0, 2, 3, 1])          # NHWC and back
    x = b.node("Transpose", [x], perm=[0, 3, 1, 2])
    x = b.node("AveragePool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 0, 0],
               ceil_mode=1, count_include_pad=0)
    x = b.node("Reshape", [x, b.const(numpy.array([0, -1]), "shape")])
    b.inits[-1] = numpy_helper.from_array(numpy.array([0, -1], numpy.int64), b.inits[-1].name)
    n_in = cin * 4 * 4
    x = b.node("MatMul", [x, b.const(rng.standard_normal((n_in, 10)) * 0.2)])
    x = b.node("Add", [x, b.const(rng.standard_normal(10) * 0.1)])
    x = b.node("Softmax", [x], axis=-1)
    return b.model([2, 3, size, size], x)


def resnet18v1(rng, size=224, classes=1000, widths=(8, 16, 32, 64)):
    """ResNet-18 v1 with resnet18v1.onnx's node names (MXNet Gluon ``resnetv15_*``: stage ReLUs
    ``relu0/relu1``, adds ``_plus0/1``, block outputs ``activation0/1``, shortcuts ``down2..4``),
    its 7x7 stem and no Softmax (output ``resnetv15_dense0_fwd``), narrowed to ``widths``."""
    b = GraphBuilder(rng)
    x = b.conv("x", 3, widths[0], 7, 2, pads=[3] * 4, bias=False, out="resnetv15_conv0_fwd")
    x = b.bn(x, widths[0], out="resnetv15_batchnorm0_fwd")
    x = b.node("Relu", [x], "resnetv15_relu0_fwd")
    x = b.node("MaxPool", [x], "resnetv15_pool0_fwd", kernel_shape=[3, 3], strides=[2, 2],
               pads=[1, 1, 1, 1])
    cin = widths[0]
    for stage, cout in enumerate(widths, start=1):
        p = f"resnetv15_stage{stage}_"
        for block in range(2):
            stride = 2 if block == 0 and stage > 1 else 1
            y = b.conv(x, cin, cout, 3, stride, bias=False, out=f"{p}conv{2 * block}_fwd")
            y = b.node("Relu", [b.bn(y, cout, out=f"{p}batchnorm{2 * block}_fwd")], f"{p}relu{block}_fwd")
            y = b.conv(y, cout, cout, 3, bias=False, out=f"{p}conv{2 * block + 1}_fwd")
            y = b.bn(y, cout, out=f"{p}batchnorm{2 * block + 1}_fwd")
            short = x
            if stride != 1 or cin != cout:
                d = f"resnetv15_down{stage}_"
                short = b.conv(x, cin, cout, 1, stride, pads=[0] * 4, bias=False, out=f"{d}conv0_fwd")
                short = b.bn(short, cout, out=f"{d}batchnorm0_fwd")
            x = b.node("Relu", [b.node("Add", [short, y], f"{p}_plus{block}")], f"{p}activation{block}")
            cin = cout
    x = b.node("GlobalAveragePool", [x], "resnetv15_pool1_fwd")
    x = b.node("Flatten", [x], "resnetv15_flatten0_reshape0", axis=1)
    W = rng.standard_normal((classes, cin)) * 0.3
    x = b.node("Gemm", [x, b.const(W), b.const(rng.standard_normal(classes) * 0.1)],
               "resnetv15_dense0_fwd", transB=1)
    return b.model([1, 3, size, size], x)
