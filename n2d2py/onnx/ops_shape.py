"""ONNX handlers for shapes and layout: Softmax, Flatten, Reshape,
Squeeze, Unsqueeze, Identity/Cast, Shape, Slice, Transpose, Pad, Resize/Upsample. Registered in
``ops.OPS`` (see ``ops.py``)."""
import math

import numpy

from .graph import fold_node
from .ops import attr_int, attr_ints, cells, hw, op, spatial_rank, view
from .ops_layout import layout, set_positions


# ---------------------------------------------------------------- Softmax
def transpose_cell(imp, node, name, src, axes):
    """A Transpose cell for NumPy ``axes`` of (N, C, H, W) (batch fixed)."""
    perm = [3 - axes[3 - d] for d in range(4)]
    c = (1,) + tuple(imp.physical(src))
    cell = cells().CELLS.get("Transpose")(name=name, parents=[src], nb_outputs=c[axes[1]],
                                          perm=perm)
    return imp.add_cell(cell, node)


def physical_axes(imp, rank):
    """Physical (N, C, H, W) axis of each ONNX axis, ranks 2 to 4."""
    axes = {2: [0, 1], 3: [0, 1, 2 if imp.transpose else 3], 4: [0, 1, 2, 3]}[rank]
    if rank == 4 and imp.transpose:
        axes = [0, 1, 3, 2]
    return axes


@op("Softmax")
def softmax(imp, node, a):
    """Softmax (with loss) over the channels; another axis is moved there by Transpose cells
    ``<name>_before``/``_after``, as N2D2 names them. Before opset 13 the axis flattens what
    follows."""
    x = imp.value(node.input[0], node)
    rank, out = len(x.shape), node.output[0]
    axis = attr_int(imp, node, a, "axis", 1 if imp.opset < 13 else -1)
    if rank < 2 or rank > 4 or not -rank <= axis < rank or axis % rank == 0:
        raise imp.error(node, f"axis={a.get('axis')} on shape {x.shape}: a softmax over a "
                              f"non-batch axis of a rank 2 to 4 tensor is supported")
    axis %= rank
    if imp.opset < 13 and axis < rank - 1 and math.prod(x.shape[axis + 1:]) > 1:
        if axis != 1:
            raise imp.error(node, f"axis={axis} over the flattened {x.shape[axis:]} is not "
                                  f"supported")
        flat = (x.shape[0], math.prod(x.shape[1:]))
        key = f"{node.input[0]}_flat"
        imp.set_value(key, x.source, flat)
        imp.consumers[key] = 1
        src = imp.source(key, node)
        x_shape, axis = flat, 1
    else:
        src, x_shape = imp.source(node.input[0], node), x.shape
    p = physical_axes(imp, len(x_shape))[axis]
    name, after = out, None
    if p != 1:
        axes = [0, 1, 2, 3]
        axes[1], axes[p] = p, 1
        src = transpose_cell(imp, node, f"{out}_before", src, axes).name
        after = axes
    cell = cells().SoftmaxCell(name=name, parents=[src], nb_outputs=imp.physical(src)[0],
                               with_loss=True)
    imp.add_cell(cell, node)
    imp.graph.auto_targets.append((f"{cell.name}.Target", cell.name))
    result = cell.name
    if after is not None:
        result = transpose_cell(imp, node, f"{out}_after", cell.name, after).name
    imp.set_value(out, result, x.shape)


# ---------------------------------------------------------------- shape operators
@op("Flatten")
def flatten(imp, node, a):
    x = imp.value(node.input[0], node, layout=True)
    axis = attr_int(imp, node, a, "axis", 1)
    if not -len(x.shape) <= axis <= len(x.shape):
        raise imp.error(node, f"axis={axis} on shape {x.shape}: expected "
                              f"{-len(x.shape)}..{len(x.shape)}")
    axis = axis + len(x.shape) if axis < 0 else axis
    view(imp, node, (math.prod(x.shape[:axis]), math.prod(x.shape[axis:])))


@op("Reshape")
def reshape(imp, node, a):
    x = imp.value(node.input[0], node, layout=True)
    if len(node.input) > 1:
        target = [int(d) for d in imp.const(node, node.input[1], "the shape")]
    else:
        target = attr_ints(imp, node, a, "shape", None)
    if target.count(-1) > 1 or any(d < -1 for d in target) or \
            any(d == 0 and i >= len(x.shape) for i, d in enumerate(target)):
        raise imp.error(node, f"shape {target}: at most one -1, no other negative value, and a "
                              f"0 only where the input {x.shape} has that axis")
    shape = [x.shape[i] if d == 0 and not a.get("allowzero", 0) else d
             for i, d in enumerate(target)]
    if -1 in shape:
        known = math.prod(d for d in shape if d != -1)
        shape[shape.index(-1)] = math.prod(x.shape) // max(known, 1)
    if math.prod(shape) != math.prod(x.shape):
        raise imp.error(node, f"cannot reshape {x.shape} to {target}")
    view(imp, node, shape)


def axes_of(imp, node, a, rank):
    """The ``axes`` attribute or input, each in -rank..rank-1 and made non-negative; None if
    neither is given."""
    if "axes" in a:
        axes = attr_ints(imp, node, a, "axes", None)
    elif len(node.input) > 1 and node.input[1]:
        axes = [int(d) for d in numpy.ravel(imp.const(node, node.input[1], "axes"))]
    else:
        return None
    if any(not -rank <= d < rank for d in axes) or len({d % rank for d in axes}) != len(axes):
        raise imp.error(node, f"axes={axes}: expected distinct axes in {-rank}..{rank - 1}")
    return [d % rank for d in axes]


@op("Squeeze")
def squeeze(imp, node, a):
    x = imp.value(node.input[0], node, layout=True)
    rank = len(x.shape)
    axes = axes_of(imp, node, a, rank)
    axes = [i for i, d in enumerate(x.shape) if d == 1] if axes is None else axes
    if any(x.shape[d] != 1 for d in axes):
        raise imp.error(node, f"axes={axes} of shape {x.shape}: only axes of size 1 can be "
                              f"squeezed")
    view(imp, node, [d for i, d in enumerate(x.shape) if i not in axes])


@op("Unsqueeze")
def unsqueeze(imp, node, a):
    x = imp.value(node.input[0], node, layout=True)
    if "axes" in a:
        count = len(attr_ints(imp, node, a, "axes", None))
    elif len(node.input) > 1 and node.input[1]:
        count = numpy.size(imp.const(node, node.input[1], "axes"))
    else:
        count = 0
    if not count:
        raise imp.error(node, "the axes to insert (attribute or second input) are required")
    rank = len(x.shape) + count
    axes = axes_of(imp, node, a, rank)
    shape = list(x.shape)
    for d in sorted(axes):
        shape.insert(d, 1)
    view(imp, node, shape)


@op("Identity", "Cast")
def identity(imp, node, a):
    if node.op_type == "Cast" and int(a.get("to", 1)) not in (1, 10, 11, 16):
        raise imp.error(node, "Cast of a computed tensor to a non-float type is not supported")
    view(imp, node, imp.value(node.input[0], node, layout=True).shape)


@op("Shape")
def shape_op(imp, node, a):
    """Of a computed tensor: its static shape (import-time batch) as a constant."""
    shape = numpy.array(imp.value(node.input[0], node, layout=True).shape, numpy.int64)
    start, end = attr_int(imp, node, a, "start", 0), a.get("end")
    end = None if end is None else attr_int(imp, node, a, "end", 0)
    imp.consts[node.output[0]] = shape[start:end]


@op("Slice")
def slice_op(imp, node, a):
    """N2D2 ignores Slice; n2d2py keeps whole-tensor Slices as views, turns a crop of the
    spatial axes (step 1) into a Padding cell with negative amounts (what ``export_onnx``
    writes for N2D2's negative padding), and any other slice (channels: ShuffleNet's split,
    ``torch.chunk``; steps; the batch axis) into positions (``ops_layout.py``)."""
    x = imp.value(node.input[0], node, layout=True)
    rank = len(x.shape)
    if x.index is not None or rank not in (3, 4) or imp.transpose:
        return layout(imp, node, "the Slice parameters")
    index = numpy.arange(int(numpy.prod(x.shape)), dtype=numpy.int64).reshape(x.shape)
    inputs = [index] + [imp.const(node, n, "the Slice parameters") if n else None
                        for n in node.input[1:]]
    result = fold_node(node, inputs, imp.opset)[0]
    crop = _spatial_crop(x.shape, index, result)
    if crop is None or not any(crop):
        return set_positions(imp, node.output[0], x, result, result.shape)
    src = imp.source(node.input[0], node)
    t, b, l, r = crop
    cell = cells().CELLS.get("Padding")(name=node.output[0], parents=[src],
                                        nb_outputs=imp.physical(src)[0], top=-t, bottom=-b,
                                        left=-l, right=-r)
    imp.add_cell(cell, node)
    imp.set_value(node.output[0], cell.name, result.shape)


def _spatial_crop(shape, index, result):
    """(top, bottom, left, right) >= 0 when ``result`` is a contiguous spatial window of
    ``index``; else None."""
    if result.ndim != len(shape) or result.shape[:2] != tuple(shape[:2]) or not result.size:
        return None
    if len(shape) == 3:
        index, result = index[:, :, None, :], result[:, :, None, :]
    H, W = index.shape[2:]
    h, w = result.shape[2:]
    first = numpy.argwhere(index[0, 0] == result[0, 0, 0, 0])
    if len(first) != 1:
        return None
    t, l = (int(v) for v in first[0])
    if t + h > H or l + w > W or not numpy.array_equal(index[:, :, t:t + h, l:l + w], result):
        return None
    return t, H - h - t, l, W - w - l


@op("Transpose")
def transpose(imp, node, a):
    x = imp.value(node.input[0], node, layout=True)
    rank = len(x.shape)
    perm = attr_ints(imp, node, a, "perm", rank, range(rank - 1, -1, -1))
    if sorted(perm) != list(range(rank)):
        raise imp.error(node, f"perm={perm}: expected a permutation of 0..{rank - 1}")
    out_shape = tuple(x.shape[p] for p in perm)
    moved = [p for p in perm if x.shape[p] != 1]
    if moved == sorted(moved):   # only size-1 axes move: a reshape
        return view(imp, node, out_shape)
    if perm[0] != 0 or x.index is not None:    # the batch axis moves, or positions compose
        return layout(imp, node, "perm")
    shape = list(x.shape)
    while len(perm) > 4 and perm[-1] == len(perm) - 1 and perm[-2] == len(perm) - 2:
        shape[-2:] = [shape[-2] * shape[-1]]     # merge trailing axes kept in place
        perm = perm[:-1]
    if len(perm) > 4 or len(perm) < 2:      # no Transpose cell: positions
        return layout(imp, node, "perm")
    key = f"{node.input[0]}_as{len(shape)}d"
    if tuple(shape) != x.shape:
        imp.set_value(key, x.source, shape)
        imp.consumers[key] = 1
    else:
        key = node.input[0]
    src = imp.source(key, node)
    phys = physical_axes(imp, len(shape))
    axes = [0, 1, 2, 3]
    for i, p in enumerate(perm):
        axes[phys[i]] = phys[p]
    cell = transpose_cell(imp, node, node.output[0], src, axes)
    imp.set_value(node.output[0], cell.name, out_shape)


@op("Pad")
def pad(imp, node, a):
    mode = a.get("mode", b"constant")
    mode = mode.decode(errors="replace") if isinstance(mode, bytes) else mode
    if mode != "constant":
        raise imp.error(node, f"mode={mode}: N2D2's Padding cell pads with zeros only")
    x = imp.value(node.input[0], node)
    rank = len(x.shape)
    if "pads" in a or "paddings" in a:
        pads = attr_ints(imp, node, a, "pads" if "pads" in a else "paddings", 2 * rank)
        value = a.get("value", 0.0)
        if not isinstance(value, (int, float)):
            raise imp.error(node, f"attribute value={value!r}: expected a number")
    else:
        if len(node.input) < 2 or not node.input[1]:
            raise imp.error(node, "the pads (attribute or second input) are required")
        pads = [int(p) for p in numpy.ravel(imp.const(node, node.input[1], "pads"))]
        value = imp.const(node, node.input[2], "constant_value") \
            if len(node.input) > 2 and node.input[2] else numpy.zeros(1)
        if numpy.size(value) != 1:
            raise imp.error(node, f"constant_value of shape {numpy.shape(value)}: expected one "
                                  f"value")
        value = float(numpy.ravel(value)[0])
        axes = list(range(rank))
        if len(node.input) > 3 and node.input[3]:
            axes = [int(d) for d in numpy.ravel(imp.const(node, node.input[3], "axes"))]
            if any(not -rank <= d < rank for d in axes) or len({d % rank for d in axes}) != \
                    len(axes):
                raise imp.error(node, f"axes={axes}: expected distinct axes in "
                                      f"{-rank}..{rank - 1}")
            axes = [d % rank for d in axes]
        if len(pads) != 2 * len(axes):
            raise imp.error(node, f"pads={pads}: expected {2 * len(axes)} values (begin and end "
                                  f"of each of {len(axes)} axes)")
        if len(node.input) > 3 and node.input[3]:
            full = [0] * (2 * rank)
            for k, d in enumerate(axes):
                full[d], full[d + rank] = pads[k], pads[k + len(axes)]
            pads = full
    if value != 0.0:
        raise imp.error(node, f"constant value {value}: N2D2's Padding cell pads with zeros")
    begin, end = pads[:rank], pads[rank:]
    if rank not in (3, 4) or any(begin[:2]) or any(end[:2]):
        raise imp.error(node, f"pads={pads} on {x.shape}: only the spatial axes of a rank 3 or "
                              f"4 tensor can be padded")
    if not any(pads):
        return view(imp, node, x.shape)
    t, b, l, r = (0, 0, begin[2], end[2]) if rank == 3 else (begin[2], end[2], begin[3], end[3])
    if imp.transpose:
        t, b, l, r = l, r, t, b
    src = imp.source(node.input[0], node)
    cell = cells().CELLS.get("Padding")(name=node.output[0], parents=[src],
                                        nb_outputs=imp.physical(src)[0], top=t, bottom=b,
                                        left=l, right=r)
    imp.add_cell(cell, node)
    imp.set_value(node.output[0], cell.name,
                  tuple(s + p + q for s, p, q in zip(x.shape, begin, end)))


# ---------------------------------------------------------------- Resize / Upsample
def _decode(value, default):
    value = value if value is not None else default
    return value.decode(errors="replace") if isinstance(value, bytes) else value


@op("Resize", "Upsample")
def resize(imp, node, a):
    x = imp.value(node.input[0], node)
    rank = spatial_rank(imp, node, x)
    sizes = scales = None
    if node.op_type == "Upsample":
        scales = a.get("scales")
        if scales is None:
            scales = imp.const(node, node.input[1], "scales")
        ctm = "asymmetric"
    else:
        if imp.opset < 11:
            scales = imp.const(node, node.input[1], "scales")
        else:
            if len(node.input) > 3 and node.input[3]:
                sizes = imp.const(node, node.input[3], "sizes")
            if sizes is None and len(node.input) > 2 and node.input[2]:
                scales = imp.const(node, node.input[2], "scales")
        ctm = _decode(a.get("coordinate_transformation_mode"),
                      "asymmetric" if imp.opset < 11 else "half_pixel")
    axes = [int(d) % len(x.shape) for d in a.get("axes", range(len(x.shape)))]
    if sizes is None or not len(sizes):
        full = [1.0] * len(x.shape)
        for d, s in zip(axes, scales):
            full[d] = float(s)
        sizes = [int(math.floor(d * s)) for d, s in zip(x.shape, full)]
    else:
        full = list(x.shape)
        for d, s in zip(axes, sizes):
            full[d] = int(s)
        sizes = full
    sizes = [int(s) for s in sizes]
    if scales is not None and any(abs(d * float(f) - s) > 1e-6 for d, f, s in
                                  zip(x.shape[2:], full[2:], sizes[2:])):
        raise imp.error(node, f"scales {list(full)} do not give whole sizes from {x.shape}: "
                              f"N2D2's Resize maps output sizes, not fractional scales")
    if sizes[:2] != list(x.shape[:2]):
        raise imp.error(node, f"resizes {x.shape} to {sizes}: only the spatial axes may change")
    mode = _decode(a.get("mode"), "nearest")
    if a.get("antialias", 0) or _decode(a.get("keep_aspect_ratio_policy"), "stretch") != "stretch":
        raise imp.error(node, "antialias / keep_aspect_ratio_policy are not supported")
    if ctm == "pytorch_half_pixel" and min(sizes[2:]) == 1:
        raise imp.error(node, "pytorch_half_pixel with an output size of 1 is not supported")
    src = imp.source(node.input[0], node)
    in_hw = imp.physical(src)[1:]
    out_hw = hw(imp, sizes[2:], rank, 1)
    if mode == "nearest":
        nearest = _decode(a.get("nearest_mode"), "round_prefer_floor")
        if node.op_type == "Upsample" or imp.opset < 11:
            nearest = "floor"
        if not _floor_equivalent(in_hw, out_hw, nearest, ctm):
            raise imp.error(node, f"nearest resize with coordinate_transformation_mode={ctm}, "
                                  f"nearest_mode={nearest}: only N2D2's floor(o*in/out) "
                                  f"(asymmetric) mapping is supported")
        n2d2_mode, align = "NearestNeighbor", False
    elif mode == "linear":
        table = {"half_pixel": ("Bilinear", False), "pytorch_half_pixel": ("Bilinear", False),
                 "align_corners": ("BilinearTF", True), "asymmetric": ("BilinearTF", False)}
        if ctm not in table:
            raise imp.error(node, f"linear resize with coordinate_transformation_mode={ctm} is "
                                  f"not supported; supported: {', '.join(table)}")
        n2d2_mode, align = table[ctm]
    else:
        raise imp.error(node, f"mode={mode}: N2D2 resizes with nearest or linear")
    cell = cells().CELLS.get("Resize")(name=node.output[0], parents=[src],
                                       nb_outputs=imp.physical(src)[0], output_width=out_hw[1],
                                       output_height=out_hw[0], mode=n2d2_mode,
                                       align_corners=align)
    imp.add_cell(cell, node)
    imp.set_value(node.output[0], cell.name, tuple(sizes))


def _floor_equivalent(in_hw, out_hw, nearest, ctm):
    """Whether ONNX's nearest index (coordinate mode ``ctm``, rounding ``nearest``) equals
    N2D2's floor(o*n/m) on both axes."""
    for n, m in zip(in_hw, out_hw):
        o = numpy.arange(m)
        ref = numpy.floor(o * n / m)
        if ctm == "asymmetric":
            exact = o * n / m
        elif ctm in ("half_pixel", "pytorch_half_pixel"):
            exact = (o + 0.5) * n / m - 0.5
        elif ctm == "align_corners":
            exact = o * (n - 1) / (m - 1) if m > 1 else o * 0.0
        else:
            return False
        got = {"floor": numpy.floor(exact), "ceil": numpy.ceil(exact),
               "round_prefer_floor": numpy.ceil(exact - 0.5),
               "round_prefer_ceil": numpy.floor(exact + 0.5)}.get(nearest)
        if got is None or not numpy.array_equal(numpy.clip(got, 0, n - 1), ref):
            return False
    return True
