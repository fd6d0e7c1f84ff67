"""Write the ONNX file that ini_examples/PyTorch_SAT4.ini imports, without PyTorch.

    python tools/pytorch_like_onnx.py [ini_examples/pytorch_cnn.onnx] [--seed 0]

The graph is what ``torch.onnx.export(model, x, f, opset_version=13, dynamo=False,
training=torch.onnx.TrainingMode.PRESERVE, input_names=["input"], output_names=["logits"])``
writes for a small ResNet-like CNN on 28x28 digits (docs/pytorch.md shows that export): PyTorch's
node and tensor names (``/layer1/layer1.0/conv1/Conv_output_0``), its parameter names
(``layer1.0.bn1.running_var``), BatchNormalization kept, one residual ``Add``, a shared ReLU
module used twice (``relu`` and ``relu_1``), ``GlobalAveragePool``, ``Flatten`` and ``Gemm``.

The weights are what an untrained ``torch.nn`` model holds (PyTorch's default initialisation:
uniform in +-1/sqrt(fan-in), BatchNorm at identity), drawn from ``--seed``: a stand-in for a
trained export, so that the example runs where PyTorch is not installed. The file is written
byte for byte the same for the same seed (tests check the shipped one)."""
import argparse
import sys

import numpy
import onnx
from onnx import TensorProto, helper, numpy_helper


class Graph:
    """A graph being written the way PyTorch's legacy exporter names things."""

    def __init__(self, rng):
        self.rng, self.nodes, self.initializers = rng, [], []

    def parameter(self, name, array):
        self.initializers.append(numpy_helper.from_array(numpy.asarray(array, numpy.float32),
                                                         name))
        return name

    def node(self, scope, op, inputs, output=None, **attributes):
        """``/scope/Op`` writing ``/scope/Op_output_0`` (or ``output``)."""
        name = f"{scope}/{op}" if scope else f"/{op}"
        output = output or f"{name}_output_0"
        self.nodes.append(helper.make_node(op, inputs, [output], name=name, **attributes))
        return output

    def uniform(self, shape, fan_in):
        bound = 1.0 / numpy.sqrt(fan_in)
        return self.rng.uniform(-bound, bound, shape)

    def conv(self, module, x, cin, cout, kernel, stride=1, pad=0):
        key = module.strip("/").replace("/", ".")
        weight = self.parameter(f"{key}.weight",
                                self.uniform((cout, cin, kernel, kernel), cin * kernel * kernel))
        return self.node(module, "Conv", [x, weight], dilations=[1, 1], group=1,
                         kernel_shape=[kernel, kernel], pads=[pad] * 4, strides=[stride] * 2)

    def batch_norm(self, module, x, channels):
        key = module.strip("/").replace("/", ".")
        names = [self.parameter(f"{key}.{p}", v(channels)) for p, v in
                 (("weight", numpy.ones), ("bias", numpy.zeros), ("running_mean", numpy.zeros),
                  ("running_var", numpy.ones))]
        return self.node(module, "BatchNormalization", [x] + names, epsilon=1e-5, momentum=0.9)


def build(seed=0):
    g = Graph(numpy.random.default_rng(seed))
    x = g.conv("/conv1", "input", 1, 8, 5, pad=2)                     # 8x28x28
    x = g.node("/relu", "Relu", [g.batch_norm("/bn1", x, 8)])
    x = g.node("/maxpool", "MaxPool", [x], ceil_mode=0, kernel_shape=[2, 2], pads=[0] * 4,
               strides=[2, 2])                                         # 8x14x14
    block = "/layer1/layer1.0"
    y = g.conv(f"{block}/conv1", x, 8, 8, 3, pad=1)
    y = g.node(f"{block}/relu", "Relu", [g.batch_norm(f"{block}/bn1", y, 8)])
    y = g.batch_norm(f"{block}/bn2", g.conv(f"{block}/conv2", y, 8, 8, 3, pad=1), 8)
    x = g.node(f"{block}/relu_1", "Relu", [g.node(block, "Add", [y, x])])
    x = g.conv("/layer2/conv", x, 8, 16, 3, stride=2, pad=1)          # 16x7x7
    x = g.node("/layer2/relu", "Relu", [g.batch_norm("/layer2/bn", x, 16)])
    x = g.node("", "Flatten", [g.node("/avgpool", "GlobalAveragePool", [x])], axis=1)
    weight = g.parameter("fc.weight", g.uniform((10, 16), 16))
    bias = g.parameter("fc.bias", g.uniform((10,), 16))
    g.node("/fc", "Gemm", [x, weight, bias], output="logits", alpha=1.0, beta=1.0, transB=1)
    graph = helper.make_graph(
        g.nodes, "main_graph",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 28, 28])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])],
        g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="pytorch", producer_version="2.13.0")
    model.ir_version = 7
    onnx.checker.check_model(model, full_check=True)
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("output", nargs="?", default="ini_examples/pytorch_cnn.onnx")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with open(args.output, "wb") as f:
        f.write(build(args.seed).SerializeToString(deterministic=True))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    sys.exit(main())
