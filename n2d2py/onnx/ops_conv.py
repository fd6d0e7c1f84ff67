"""ONNX Conv, Gemm/MatMul and pooling nodes onto Conv, Fc and Pool cells, as N2D2 maps them; the
table and helpers are in ``ops.py``."""
import numpy

from .cells import OnnxPoolCell
from .ops import (attr_float, attr_int, attr_ints, cells, hw, init, onnx_shape, op, pads4,
                  set_data, spatial_rank, unit_map)


# ---------------------------------------------------------------- Conv, Gemm, MatMul
@op("Conv", "ConvInteger")
def conv(imp, node, a):
    x = imp.value(node.input[0], node)
    rank = spatial_rank(imp, node, x)
    if node.op_type == "ConvInteger" and len(node.input) > 2 and any(node.input[2:]):
        raise imp.error(node, "ConvInteger with zero points is not supported")
    W = imp.const(node, node.input[1], "the weights W").astype(numpy.float32)
    b = None
    if node.op_type == "Conv" and len(node.input) > 2 and node.input[2]:
        b = imp.const(node, node.input[2], "the bias B").astype(numpy.float32)
        if b.size != W.shape[0]:
            raise imp.error(node, f"bias B of shape {b.shape}: expected one value per output "
                                  f"({W.shape[0]})")
    if W.ndim != rank or 0 in W.shape:
        raise imp.error(node, f"weights W of shape {W.shape}: expected rank {rank} (O, C/group, "
                              f"{'L' if rank == 3 else 'kH, kW'}) with no empty dimension for an "
                              f"input of shape {x.shape}")
    group = attr_int(imp, node, a, "group", 1, minimum=1)
    if W.shape[0] % group:
        raise imp.error(node, f"weights W of shape {W.shape}: {W.shape[0]} outputs are not a "
                              f"multiple of group={group}")
    if "kernel_shape" in a and attr_ints(imp, node, a, "kernel_shape", rank - 2) != \
            list(W.shape[2:]):
        raise imp.error(node, f"kernel_shape={list(a['kernel_shape'])} but W has shape {W.shape}")
    W4 = W.reshape(W.shape[0], W.shape[1], *([1] * (4 - W.ndim)), *W.shape[2:]) if rank == 3 \
        else W
    if imp.transpose:
        W4 = W4.transpose(0, 1, 3, 2)
    kernel = W4.shape[2:]
    strides = hw(imp, attr_ints(imp, node, a, "strides", rank - 2, [1] * (rank - 2), 1), rank, 1)
    dilations = hw(imp, attr_ints(imp, node, a, "dilations", rank - 2, [1] * (rank - 2), 1),
                   rank, 1)
    src = imp.source(node.input[0], node)
    c, h, w = imp.physical(src)
    if c != W.shape[1] * group:
        raise imp.error(node, f"input has {c} channels, W {W.shape} with group={group} "
                              f"expects {W.shape[1] * group}")
    t, bt, l, r = pads4(imp, node, a, rank, (h, w), kernel, strides, dilations)
    out = node.output[0]
    if t != bt or l != r:   # asymmetric: a Padding cell first, as N2D2 does
        pad = cells().CELLS.get("Padding")(name=f"{out}_padding", parents=[src], nb_outputs=c,
                                            top=t, bottom=bt, left=l, right=r)
        src = imp.add_cell(pad, node).name
        t = bt = l = r = 0
    mapping = {"Mapping.NbGroups": str(group)} if group > 1 else None
    cell = cells().ConvCell(name=out, parents=[src], mapping=mapping, nb_outputs=W.shape[0],
                            kernel_dims=(kernel[1], kernel[0]), stride_dims=strides[::-1],
                            padding_dims=(l, t), dilation_dims=dilations[::-1],
                            no_bias=b is None)
    imp.add_cell(cell, node, "Conv")
    if init(imp):
        set_data(cell.weights[0], W4)
        if cell.bias is not None and b is not None:
            set_data(cell.bias, b)
    imp.set_value(out, out, onnx_shape(imp, rank, x.shape[0], cell.out_shape))


def fc_weights(imp, node, W, src):
    """Fc weights (O, K) in the physical flatten order of ``src``."""
    phys = imp.physical(src)
    size = int(numpy.prod(phys))
    if W.shape[1] != size:
        raise imp.error(node, f"weights of shape {W.shape} but the input has {size} values "
                              f"({phys} C, H, W)")
    if imp.transpose:   # ONNX flattens (C, H, W); the cell holds (C, W, H)
        c, hh, ww = phys
        W = W.reshape(W.shape[0], c, ww, hh).transpose(0, 1, 3, 2).reshape(W.shape[0], -1)
    return W


def make_fc(imp, node, x_name, W, bias):
    x = imp.value(x_name, node)
    if len(x.shape) != 2:
        raise imp.error(node, f"input of shape {x.shape}: an Fc cell needs a 2-D (N, K) input "
                              f"(add a Flatten)")
    src = imp.source(x_name, node, exact=False)
    W = fc_weights(imp, node, W.astype(numpy.float32), src)
    out = node.output[0]
    cell = cells().FcCell(name=out, parents=[src], nb_outputs=W.shape[0], no_bias=bias is None)
    imp.add_cell(cell, node, "Fc")
    if init(imp):
        set_data(cell.weights[0], W)
        if cell.bias is not None and bias is not None:
            set_data(cell.bias, bias)
    imp.set_value(out, out, (x.shape[0], W.shape[0]))


@op("Gemm")
def gemm(imp, node, a):
    if attr_int(imp, node, a, "transA", 0):
        raise imp.error(node, "transA=1 is not supported (the first operand is the data)")
    B = imp.const(node, node.input[1], "B (the weights: N2D2 makes an Fc)")
    if B.ndim != 2:
        raise imp.error(node, f"weights B of shape {B.shape}: expected 2-D")
    W = (B if attr_int(imp, node, a, "transB", 0) else B.T) * attr_float(imp, node, a, "alpha", 1.0)
    bias = None
    if len(node.input) > 2 and node.input[2]:
        C = imp.const(node, node.input[2], "the bias C") * attr_float(imp, node, a, "beta", 1.0)
        if C.size == 1:
            bias = numpy.full(W.shape[0], float(C.ravel()[0]))
        elif C.size == W.shape[0] and C.shape[-1] == W.shape[0]:
            bias = C.reshape(-1)
        else:
            raise imp.error(node, f"bias C of shape {C.shape}: expected one value per output "
                                  f"({W.shape[0]})")
    make_fc(imp, node, node.input[0], W, bias)


@op("MatMul", "MatMulInteger")
def matmul(imp, node, a):
    if node.op_type == "MatMulInteger" and len(node.input) > 2 and any(node.input[2:]):
        raise imp.error(node, "MatMulInteger with zero points is not supported")
    B = imp.const(node, node.input[1], "the second operand (the weights: N2D2 makes an Fc)")
    if B.ndim != 2:
        raise imp.error(node, f"weights of shape {B.shape}: expected 2-D (K, O)")
    x = imp.value(node.input[0], node)
    if len(x.shape) > 2:   # n2d2py extension, not in N2D2: a Fc on every row of the last axis
        return matmul_rows(imp, node, x, B)
    make_fc(imp, node, node.input[0], B.T, None)


def matmul_rows(imp, node, x, B):
    """MatMul of an (N, ..., K) tensor by a constant (K, O): an ``OnnxMatMulCell``."""
    from .tensor_cells import OnnxMatMulCell
    if imp.transpose:
        raise imp.error(node, "a MatMul on an N-D tensor is not supported with Transpose=1")
    if x.shape[-1] != B.shape[0]:
        raise imp.error(node, f"input of shape {x.shape} by weights of shape {B.shape}: the "
                              f"last axis must match B's first")
    out = node.output[0]
    cell = OnnxMatMulCell(name=out, parents=[imp.source(node.input[0], node, exact=False)],
                          in_dims=x.shape[1:], nb_outputs=B.shape[1], no_bias=True)
    imp.add_cell(cell, node, "Fc")
    if init(imp):
        set_data(cell.weights[0], B.T.astype(numpy.float32))
    imp.set_value(out, out, x.shape[:-1] + (B.shape[1],))


# ---------------------------------------------------------------- pools
def pool_cell(imp, node, src, pooling, kernel, strides, pads, ceil_mode, count_include_pad,
              dilations=(1, 1)):
    from .. import functions as F
    c, h, w = imp.physical(src)
    t, b, l, r = pads
    span = [(k - 1) * d + 1 for k, d in zip(kernel, dilations)]
    if ceil_mode and F.pool_output_size((h, w), span, strides, pads, True) == \
            F.pool_output_size((h, w), span, strides, pads, False):
        ceil_mode = False
    plain = t == b and l == r and not ceil_mode and \
        (pooling == "Max" or count_include_pad or not any(pads)) and \
        tuple(dilations) == (1, 1) and (h, w) != (1, 1)
    keys = dict(name=node.output[0], parents=[src], mapping=unit_map(), nb_outputs=c,
                pooling=pooling, pool_dims=(kernel[1], kernel[0]), stride_dims=strides[::-1],
                padding_dims=(l, t))
    if plain:
        cell = cells().PoolCell(**keys)
    else:
        cell = OnnxPoolCell(pads=pads, ceil_mode=ceil_mode,
                            count_include_pad=count_include_pad, dilations=dilations, **keys)
    return imp.add_cell(cell, node, "Pool")


@op("MaxPool", "AveragePool")
def pool(imp, node, a):
    x = imp.value(node.input[0], node)
    rank = spatial_rank(imp, node, x)
    if any(imp.consumers.get(o, 0) for o in node.output[1:] if o):
        raise imp.error(node, "the Indices output of MaxPool is not supported")
    # dilations: n2d2py extension, not in N2D2 (whose pools have none): an OnnxPoolCell
    dilations = hw(imp, attr_ints(imp, node, a, "dilations", rank - 2, [1] * (rank - 2), 1),
                   rank, 1)
    kernel = hw(imp, attr_ints(imp, node, a, "kernel_shape", rank - 2, minimum=1), rank, 1)
    strides = hw(imp, attr_ints(imp, node, a, "strides", rank - 2, [1] * (rank - 2), 1), rank, 1)
    src = imp.source(node.input[0], node)
    pads = pads4(imp, node, a, rank, imp.physical(src)[1:], kernel, strides, dilations)
    pooling = "Max" if node.op_type == "MaxPool" else "Average"
    cell = pool_cell(imp, node, src, pooling, kernel, strides, pads, bool(a.get("ceil_mode", 0)),
                     bool(a.get("count_include_pad", 0)), dilations)
    imp.set_value(node.output[0], cell.name, onnx_shape(imp, rank, x.shape[0], cell.out_shape))


def global_pool(imp, node, pooling, keep_rank):
    x = imp.value(node.input[0], node)
    rank = spatial_rank(imp, node, x)
    src = imp.source(node.input[0], node)
    c, h, w = imp.physical(src)
    out_shape = (x.shape[0], c) + ((1,) * (rank - 2) if keep_rank else ())
    if h == 1 and w == 1:   # nothing to pool
        imp.set_value(node.output[0], src, out_shape)
        return
    cell = pool_cell(imp, node, src, pooling, (h, w), (1, 1), (0, 0, 0, 0), False, True)
    imp.set_value(node.output[0], cell.name, out_shape)


@op("GlobalAveragePool", "GlobalMaxPool")
def global_pools(imp, node, a):
    global_pool(imp, node, "Max" if node.op_type == "GlobalMaxPool" else "Average", True)


@op("ReduceMean", "ReduceMax")
def reduce_pool(imp, node, a):
    x = imp.value(node.input[0], node)
    rank = len(x.shape)
    axes = a.get("axes")
    if axes is None and len(node.input) > 1 and node.input[1]:
        axes = imp.const(node, node.input[1], "axes")
    if axes is not None and any(not isinstance(d, (int, numpy.integer)) or not -rank <= d < rank
                                for d in numpy.ravel(axes)):
        raise imp.error(node, f"axes={list(numpy.ravel(axes))}: expected axes in "
                              f"{-rank}..{rank - 1}")
    axes = sorted(int(d) % rank for d in (numpy.ravel(axes) if axes is not None else range(rank)))
    if rank not in (3, 4) or axes != list(range(2, rank)):
        # n2d2py extension, not in N2D2 (which maps only a global Pool): ops_extension.py
        from .ops_extension import reduction
        return reduction(imp, node, a, "Max" if node.op_type == "ReduceMax" else "Mean")
    global_pool(imp, node, "Max" if node.op_type == "ReduceMax" else "Average",
                bool(a.get("keepdims", 1)))
