"""``Type=Activation``: an activation function on its own (without ``ActivationFunction``
it is Tanh, as in N2D2); the functions themselves are in ``activation_functions.py``."""
from .base import CELLS, Cell, concat_inputs, same_hw


@CELLS.register("Activation")
class ActivationCell(Cell):
    """``Type=Activation``: an activation on its own; several inputs are concatenated (the ONNX
    importer builds Concat this way with Linear). Without ``ActivationFunction`` it is **Tanh**
    (N2D2's Activation cell; elsewhere no activation means identity)."""
    default_activation = "Tanh"

    def compute_out_shape(self, in_shapes):
        return same_hw(self, in_shapes, check_nb_outputs=True)

    def forward(self, xs, training=False):
        return self.activate(concat_inputs(self, xs), training)

    # ---------------------------------------------------------------- traits (cells/base.py)
    keeps_precision = False
    fusion_refusal = ("a stand-alone activation or concatenation is not part of N2D2's QAT "
                      "fusion (Conv+BN, Fc, ElemWise, Pool, Dropout, Softmax)")

    def export_onnx(self, onnx, xs):
        return onnx.concat(self, xs)      # the exporter adds the activation

    def ptq(self, quantizer):
        """Post-training quantization: the codes of the inputs brought to one scale and
        concatenated, then the activation (a rescale when it is not the identity)."""
        return quantizer.activation(self)
