"""Acceptance 2: single-node cases of ``onnx.backend.test.loader.load_node_model_tests()``
for the operators N2D2 imports, each with the case's own rtol/atol.

The loader feeds every operand as a graph input; N2D2 needs weights, shapes, axes, pads and scales
as initializers (Gemm/MatMul become Fc only when one operand is an initializer), so ``freeze`` turns
the parameter operands of each op into initializers holding the case's values, as an exporter would
have written them. Cases outside N2D2's mapping are listed by name in ``REFUSED`` with the reason,
and each must raise an ``OnnxError`` (so a case that starts to import must leave it).
"""
import numpy
import onnx
import pytest
from onnx import numpy_helper
from onnx.backend.test.loader import load_node_model_tests

from n2d2py.errors import OnnxError
from n2d2py.onnx import OnnxModel

from _onnx_cases import as_array

OPS = {"Conv", "Gemm", "MatMul", "BatchNormalization", "MaxPool", "AveragePool", "Relu",
       "LeakyRelu", "Add", "Sum", "Sub", "Mul", "Div", "Max", "Softmax", "Flatten", "Reshape",
       "GlobalAveragePool", "GlobalMaxPool", "Concat", "Transpose", "Pad", "LRN", "Clip",
       "Sigmoid", "Tanh", "Softplus", "Dropout", "Squeeze", "Unsqueeze", "Identity", "Resize",
       "Upsample", "ReduceMean", "ReduceMax",
       # n2d2py extensions, not in N2D2 (n2d2py/onnx/ops_extension.py)
       "ConvTranspose", "LogSoftmax", "Elu", "Selu", "Exp", "Log", "Neg", "Abs", "Sqrt",
       "Reciprocal", "Softsign", "HardSigmoid", "PRelu", "Min", "ReduceSum", "ReduceMin",
       # n2d2py extensions for PyTorch's exports (ops_extension.py, ops_layout.py)
       "HardSwish", "Gelu", "Erf", "Pow", "LayerNormalization", "Gather", "GatherElements",
       "GatherND", "Split", "Slice", "Expand", "Tile", "DepthToSpace", "SpaceToDepth"}
# operand index from which the inputs are parameters (initializers in an exported model)
FIRST_PARAM = {"Conv": 1, "Gemm": 1, "MatMul": 1, "BatchNormalization": 1, "Reshape": 1,
               "Pad": 1, "Clip": 1, "Dropout": 1, "Squeeze": 1, "Unsqueeze": 1, "Resize": 1,
               "Upsample": 1, "ReduceMean": 1, "ReduceMax": 1, "ConvTranspose": 1, "PRelu": 1,
               "ReduceSum": 1, "ReduceMin": 1, "Pow": 1, "LayerNormalization": 1, "Gather": 1,
               "GatherElements": 1, "GatherND": 1, "Split": 1, "Slice": 1, "Expand": 1, "Tile": 1}

REFUSED = {  # reason: case names (without 'test_'); each must raise an OnnxError
    'non-float input (N2D2 computes in Float32; float64 is cast, an n2d2py extension)': (
        'add_int8', 'add_int16', 'add_uint8', 'add_uint16', 'add_uint32', 'add_uint64',
        'clip_default_int8_min', 'clip_default_int8_max', 'clip_default_int8_inbounds',
        'div_int8', 'div_int16', 'div_int32_trunc', 'div_uint8', 'div_uint16', 'div_uint32',
        'div_uint64', 'max_int8', 'max_int16', 'max_int32', 'max_int64', 'max_uint8',
        'max_uint16', 'max_uint32', 'max_uint64', 'maxpool_2d_uint8', 'mul_int8',
        'mul_int16', 'mul_uint8', 'mul_uint16', 'mul_uint32', 'mul_uint64', 'edge_pad',
        'reflect_pad', 'wrap_pad', 'reduce_max_bool_inputs', 'reduce_max_empty_set_bool',
        'sub_int8', 'sub_int16', 'sub_uint8', 'sub_uint16', 'sub_uint32', 'sub_uint64',
        'min_int8', 'min_int16', 'min_int32', 'min_int64', 'min_uint8', 'min_uint16',
        'min_uint32', 'min_uint64', 'reduce_min_bool_inputs', 'gathernd_example_int32',
        'gathernd_example_int32_batch_dim1', 'pow_types_int64_float32', 'pow_types_int32_float32',
        'pow_types_int64_int64', 'pow_types_int32_int32',
    ),
    '3-D spatial input': (
        'averagepool_3d_default', 'averagepool_3d_dilations_small',
        'averagepool_3d_dilations_large_count_include_pad_is_0_ceil_mode_is_True',
        'averagepool_3d_dilations_large_count_include_pad_is_0_ceil_mode_is_False',
        'averagepool_3d_dilations_large_count_include_pad_is_1_ceil_mode_is_True',
        'averagepool_3d_dilations_large_count_include_pad_is_1_ceil_mode_is_False',
        'maxpool_3d_default', 'maxpool_3d_dilations', 'maxpool_3d_dilations_use_ref_impl',
        'maxpool_3d_dilations_use_ref_impl_large', 'convtranspose_3d',
    ),
    'grouped ConvTranspose (the Deconv cell has full maps)': (
        'convtranspose_group_2', 'convtranspose_group_2_image_3',
    ),
    'ConvTranspose output_shape beyond the full transposed convolution': (
        'convtranspose_output_shape',
    ),
    'PRelu slope varying along the batch axis': (
        'prelu_example',
    ),
    'elements moved across samples (n2d2py computes sample by sample)': (
        'expand_dim_changed', 'gather_0', 'gather_negative_indices', 'gather_elements_0',
        'gather_elements_1', 'gather_elements_negative_indices', 'gathernd_example_float32',
        'slice', 'slice_start_out_of_bounds', 'slice_neg_steps', 'split_equal_parts_1d_opset13',
        'split_variable_parts_1d_opset13', 'split_equal_parts_default_axis_opset13',
        'split_variable_parts_default_axis_opset13', 'split_zero_size_splits_opset13',
        'split_equal_parts_1d_opset18', 'split_variable_parts_1d_opset18',
        'split_equal_parts_default_axis_opset18', 'split_variable_parts_default_axis_opset18',
        'split_zero_size_splits_opset18', 'split_1d_uneven_split_opset18', 'tile',
        'tile_precomputed',
    ),
    'Pow by a non-scalar exponent': (
        'pow_example', 'pow', 'pow_bcast_array', 'pow_types_float32_int64',
        'pow_types_float32_int32', 'pow_types_float32_uint64', 'pow_types_float32_uint32',
    ),
    'LayerNormalization Mean and InvStdDev outputs': tuple(
        f'layer_normalization_{case}' for case in (
            '4d_axis0', '4d_axis_negative_4', '4d_axis1', '4d_axis_negative_3', '4d_axis2',
            '4d_axis_negative_2', '4d_axis3', '4d_axis_negative_1', 'default_axis', '2d_axis0',
            '2d_axis_negative_2', '2d_axis1', '2d_axis_negative_1', '3d_axis0_epsilon',
            '3d_axis_negative_3_epsilon', '3d_axis1_epsilon', '3d_axis_negative_2_epsilon',
            '3d_axis2_epsilon', '3d_axis_negative_1_epsilon')),
    'training-mode outputs': (
        'batchnorm_example_training_mode', 'batchnorm_epsilon_training_mode',
        'training_dropout_default', 'training_dropout', 'training_dropout_zero_ratio',
    ),
    'Clip bounds other than [0, max] or [-c, c]': (
        'clip_min_greater_than_max', 'clip_default_max',
    ),
    'Concat along a non-channel axis': (
        'concat_1d_axis_0', 'concat_1d_axis_negative_1', 'concat_2d_axis_0',
        'concat_2d_axis_negative_2', 'concat_3d_axis_0', 'concat_3d_axis_2',
        'concat_3d_axis_negative_3', 'concat_3d_axis_negative_1',
    ),
    'Dropout mask output': (
        'dropout_default_mask', 'dropout_default_mask_ratio', 'training_dropout_default_mask',
        'training_dropout_mask', 'training_dropout_zero_ratio_mask',
    ),
    'reshape/flatten/squeeze across the batch axis': (
        'flatten_axis0', 'flatten_axis2', 'flatten_axis3', 'flatten_negative_axis4',
        'flatten_negative_axis2', 'flatten_negative_axis1', 'reshape_reordered_all_dims',
        'reshape_one_dim', 'reshape_negative_extended_dims', 'reshape_allowzero_reordered',
        'squeeze', 'unsqueeze_axis_0',
    ),
    'Gemm bias per (sample, output)': (
        'gemm_default_matrix_bias',
    ),
    'Gemm transA': (
        'gemm_transposeA', 'gemm_all_attributes',
    ),
    'batched or 1-D MatMul': (
        'matmul_3d', 'matmul_4d', 'matmul_bcast', 'matmul_1d_3d', 'matmul_4d_1d', 'matmul_1d_1d',
    ),
    'MaxPool Indices output': (
        'maxpool_with_argmax_2d_precomputed_pads', 'maxpool_with_argmax_2d_precomputed_strides',
    ),
    'Pad value or mode other than zero constant': (
        'constant_pad', 'constant_pad_axes', 'constant_pad_negative_axes',
    ),
    'reduction over the batch axis, or of an empty set': (
        'reduce_max_default_axes_keepdim_example', 'reduce_max_default_axes_keepdims_random',
        'reduce_max_empty_set', 'reduce_mean_default_axes_keepdims_example',
        'reduce_mean_default_axes_keepdims_random', 'reduce_min_default_axes_keepdims_example',
        'reduce_min_default_axes_keepdims_random', 'reduce_min_empty_set',
        'reduce_sum_default_axes_keepdims_example', 'reduce_sum_default_axes_keepdims_random',
        'reduce_sum_empty_set', 'reduce_sum_empty_set_non_reduced_axis_zero',
    ),
    'resize mode/coordinates/scales N2D2 does not have': (
        'resize_downsample_scales_nearest', 'resize_downsample_sizes_nearest',
        'resize_downsample_scales_linear', 'resize_downsample_scales_linear_align_corners',
        'resize_upsample_scales_cubic', 'resize_upsample_scales_cubic_align_corners',
        'resize_downsample_scales_cubic', 'resize_downsample_scales_cubic_align_corners',
        'resize_upsample_sizes_cubic', 'resize_downsample_sizes_cubic',
        'resize_upsample_scales_cubic_A_n0p5_exclude_outside',
        'resize_downsample_scales_cubic_A_n0p5_exclude_outside',
        'resize_upsample_scales_cubic_asymmetric', 'resize_tf_crop_and_resize',
        'resize_tf_crop_and_resize_extrapolation_value',
        'resize_downsample_sizes_linear_pytorch_half_pixel',
        'resize_upsample_sizes_nearest_floor_align_corners',
        'resize_upsample_sizes_nearest_round_prefer_ceil_asymmetric',
        'resize_upsample_sizes_nearest_ceil_half_pixel',
        'resize_downsample_scales_linear_antialias', 'resize_downsample_sizes_linear_antialias',
        'resize_downsample_scales_cubic_antialias', 'resize_downsample_sizes_cubic_antialias',
        'resize_tf_crop_and_resize_axes_2_3', 'resize_tf_crop_and_resize_axes_3_2',
        'resize_upsample_sizes_nearest_not_larger', 'resize_upsample_sizes_nearest_not_smaller',
        'resize_downsample_sizes_nearest_not_larger',
        'resize_downsample_sizes_nearest_not_smaller',
        'resize_downsample_scales_linear_half_pixel_symmetric',
        'resize_upsample_scales_linear_half_pixel_symmetric',
    ),
    'softmax over the batch axis': (
        'softmax_axis_0', 'logsoftmax_axis_0',
    ),
    'Transpose moving the batch axis': (
        'transpose_default', 'transpose_all_permutations_2', 'transpose_all_permutations_3',
        'transpose_all_permutations_4', 'transpose_all_permutations_5',
    ),
}


def freeze(model):
    """A copy of ``model`` whose parameter operands are initializers; returns (model, names)."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    node = model.graph.node[0]
    first = FIRST_PARAM.get(node.op_type)
    return model, ([n for n in node.input[first:] if n] if first else [])


def reason(name):
    return next((r for r, names in REFUSED.items() if name[len("test_"):] in names), None)


CASES = [c for c in load_node_model_tests()
         if c.model.graph.node[0].op_type in OPS and "expanded" not in c.name]


def run_case(case):
    model, params = freeze(case.model)
    for ins, outs in case.data_sets:
        ins = [as_array(x) for x in ins]
        names = [i.name for i in model.graph.input]
        feeds, frozen = {}, onnx.ModelProto.FromString(model.SerializeToString())
        for name, value in zip(names, ins):
            if name in params:
                frozen.graph.initializer.append(numpy_helper.from_array(value, name))
            else:
                feeds[name] = value
        keep = [i for i in frozen.graph.input if i.name not in params]
        del frozen.graph.input[:]
        frozen.graph.input.extend(keep)
        got = OnnxModel(frozen).run(feeds)
        for y, ref in zip(got.values(), [as_array(o) for o in outs]):
            assert y.shape == ref.shape
            numpy.testing.assert_allclose(y, ref, rtol=case.rtol, atol=case.atol)


SUPPORTED = [c for c in CASES if reason(c.name) is None]
REFUSED_CASES = [c for c in CASES if reason(c.name) is not None]


def test_case_counts():
    listed = [n for names in REFUSED.values() for n in names]
    assert len(listed) == len(set(listed)) == len(REFUSED_CASES)   # no stale name
    assert len(SUPPORTED) == len(CASES) - len(REFUSED_CASES) == 224


@pytest.mark.parametrize("case", SUPPORTED, ids=[c.name for c in SUPPORTED])
def test_node_case(case):
    run_case(case)


@pytest.mark.parametrize("case", REFUSED_CASES, ids=[c.name for c in REFUSED_CASES])
def test_refused_node_case(case):
    with pytest.raises(OnnxError):
        run_case(case)
