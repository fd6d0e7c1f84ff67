"""``Type=Conv`` and ``Type=Deconv``: inputs, connection maps and fillers as in
N2D2 (docs/INI.md §6, §8).

One weight tensor per parent, each with its own connection map:

* full map: ``W_k`` is (O, C_k, kH, kW);
* clean group map (``Mapping.ChannelsPerGroup/NbGroups``, or any table equal to one; depthwise
  = C groups): ``W_k`` is (O, C_k/G, kH, kW) and ``F.conv2d(..., groups=G)``;
* any other map (LeNet's C3 table, patterns): ``W_k`` keeps the full C_k, and the mask zeroes the
  unconnected kernels in the forward (so their gradient stays zero too).

The output is the sum of the per-parent convolutions plus one bias. Deconv keeps PyTorch's
(C_k, O, kH, kW) layout for ``F.deconv2d``; sparse maps are masks there (no groups).
"""
import os

import numpy

from .. import functions as F
from ..backend import asnumpy
from ..ini.convert import enum, to_bool
from ..io import syntxt
from ..params import Key
from .base import CELLS, Cell, WeightedCell, dims_key
from .mapping import MappingSpec, clean_groups


@CELLS.register("Conv")
class ConvCell(WeightedCell):
    """N2D2 ``Type=Conv``: ``y = Σ_k conv(x_k, W_k) + b``, then activation and QAct.
    Output size per axis ``floor((in + 2p - (d(k-1)+1) + s) / s)``, then ``ceil(/SubSample)``."""
    kernel_dims = dims_key("Kernel")
    subsample_dims = dims_key("SubSample", (1, 1))
    stride_dims = dims_key("Stride", (1, 1))
    padding_dims = dims_key("Padding", (0, 0))
    dilation_dims = dims_key("Dilation", (1, 1))
    weights_export_format = Key("WeightsExportFormat", enum("OCHW", "HWCO"), "OCHW", config=True)
    weights_export_flip = Key("WeightsExportFlip", to_bool, False, config=True)
    uses_mapping = True
    strict_unknown_keys = True
    transposed = False
    unsupported_keys = ("WeightsSharing", "BiasesSharing", "KernelDepth", "StrideZ",
                        "PaddingZ", "SubSampleZ", "DilationZ")

    def __init__(self, name="", parents=("env",), mapping=None, **values):
        super().__init__(name, parents, **values)
        self.mapping = mapping if isinstance(mapping, MappingSpec) else MappingSpec(mapping)
        self.masks, self.groups = [], []   # per parent: bool (O, C_k) or None; G or 1

    @classmethod
    def from_section(cls, section, parents):
        cell = super().from_section(section, parents)
        cell.mapping = MappingSpec.from_section(section, cell.parents)
        return cell

    # (H, W) tuples for F.*, from N2D2's (X, Y) dims; SubSample folds into the stride
    # (ceil(out/ss) conv outputs taken every ss == a conv of stride s*ss, same size)
    def hw(self, dims):
        return (int(dims[1]), int(dims[0]))

    @property
    def stride_hw(self):
        s, ss = self.hw(self.stride_dims), self.hw(self.subsample_dims)
        return (s[0] * ss[0], s[1] * ss[1])

    def input_hw(self, in_shapes):
        """The (H, W) all inputs share (their channels are concatenated)."""
        hw = {tuple(s[1:]) for s in in_shapes}
        if len(hw) != 1:
            raise self.error(f"inputs {', '.join(self.parents)} have different sizes {in_shapes}")
        (h, w), = hw
        return h, w

    def kernel_geometry(self):
        """((kH, kW), (pH, pW), (dH, dW)): kernel, padding and dilation as (H, W)."""
        return (self.hw(self.kernel_dims), self.hw(self.padding_dims), self.hw(self.dilation_dims))

    def compute_out_shape(self, in_shapes):
        h, w = self.input_hw(in_shapes)
        (kh, kw), (ph, pw), (dh, dw) = self.kernel_geometry()
        (sh, sw) = self.stride_hw
        out_h = (h + 2 * ph - (dh * (kh - 1) + 1) + sh) // sh
        out_w = (w + 2 * pw - (dw * (kw - 1) + 1) + sw) // sw
        return (self.nb_outputs, out_h, out_w)

    def create_weights(self, rng):
        (kh, kw), nb_out = self.hw(self.kernel_dims), self.nb_outputs
        self.masks, self.groups, self.weights, self.weight_masks = [], [], [], []
        for k, (parent, shape) in enumerate(zip(self.parents, self.in_shapes)):
            mask = self.mapping.resolve(parent, nb_out, shape[0])
            groups = clean_groups(mask) or 1
            if mask is not None and mask.all():
                mask = None
            channels = shape[0] // groups if groups > 1 else shape[0]
            W = self.fill("Weights", self.weight_shape(channels, kh, kw),
                          kh * kw * channels, kh * kw * nb_out, rng)   # per-parent fans, as N2D2
            sparse = mask is not None and groups == 1
            if sparse:
                W = W * self.layout(mask)[:, :, None, None]   # unconnected kernels start at 0
            self.masks.append(mask)
            self.groups.append(groups)
            self.weights.append(self.new_parameter(W, "Weights", f"weights[{k}]"))
            self.weight_masks.append(self.layout(mask)[:, :, None, None].astype(W.dtype)
                                     if sparse else None)

    def weight_shape(self, channels, kh, kw):
        return (self.nb_outputs, channels, kh, kw)

    def layout(self, mask):
        """A (O, C) map in this cell's weight layout (Deconv: (C, O))."""
        return mask

    def forward(self, xs, training=False):
        xs = self.inputs(xs)
        padding, dilation = self.hw(self.padding_dims), self.hw(self.dilation_dims)
        y = None
        for k, (x, W) in enumerate(zip(xs, self.quantized_weights())):
            b = self.bias if k == 0 else None
            if min(padding) < 0:   # N2D2 allows negative padding: crop first
                x = F.pad2d(x, min(padding[0], 0), min(padding[0], 0),
                            min(padding[1], 0), min(padding[1], 0))
            part = self.convolve(x, W, b, tuple(max(p, 0) for p in padding), dilation,
                                 self.groups[k])
            y = part if y is None else y + part
        return self.activate(y, training)

    def convolve(self, x, W, b, padding, dilation, groups):
        return F.conv2d(x, W, b, self.stride_hw, padding, dilation, groups)

    # ---------------------------------------------------------------- traits (cells/base.py)
    def macs_per_weight(self):
        """Once per output position (padding positions included, as every paper counts)."""
        return self.out_shape[1] * self.out_shape[2]

    def export_onnx(self, onnx, xs):
        """``Conv`` (group, dilations, symmetric pads); several parents or a connection map: one
        Conv over the concatenated inputs with the full (O, ΣC, kH, kW) kernels, unconnected
        kernels 0."""
        pads = self.hw(self.padding_dims)
        if min(pads) < 0:
            raise onnx.error(self, "negative padding (crop) has no ONNX export")
        wq = onnx.fake_quantized(self)
        if len(xs) == 1 and (self.masks[0] is None or self.groups[0] > 1):
            W, Wq, group = asnumpy(self.weights[0].data), wq[0], int(self.groups[0])
        else:
            if self.qweight is not None:
                raise onnx.error(self, "several inputs or a connection map with a weight quantizer")
            W, _ = self.full_kernels()
            Wq, group = W, 1
        inputs = [onnx.concat(self, xs), onnx.weight_input(self, W, Wq, f"{self.name}/W")]
        if self.bias is not None:
            inputs.append(onnx.const(f"{self.name}/b", asnumpy(self.bias.data)))
        return onnx.node("Conv", inputs, f"{self.name}/conv", kernel_shape=list(W.shape[2:]),
                         strides=list(self.stride_hw), pads=[pads[0], pads[1], pads[0], pads[1]],
                         dilations=list(self.hw(self.dilation_dims)), group=group)

    def fuse(self, fuser):
        return fuser.conv_batchnorm(self)

    n2d2_neurons = n2d2_shared_synapses = True

    def count_n2d2(self, counter):
        return counter.conv(self)

    # ---------------------------------------------------------------- weights I/O
    def full_kernels(self):
        """Host arrays over all parents: kernels (O, ΣC, kH, kW) with zeros where unconnected,
        and the connection map (O, ΣC)."""
        kernels, maps = [], []
        for W, mask, groups, shape in zip(self.weights, self.masks, self.groups, self.in_shapes):
            data = self.oc_view(asnumpy(W.data))
            connected = numpy.ones(data.shape[:2], bool) if mask is None else mask
            full = data
            if groups > 1:   # grouped storage -> full (O, C_k, kH, kW)
                full = numpy.zeros((self.nb_outputs, shape[0]) + data.shape[2:], data.dtype)
                full[connected] = data.reshape((-1,) + data.shape[2:])
            kernels.append(full)
            maps.append(connected)
        return numpy.concatenate(kernels, axis=1), numpy.concatenate(maps, axis=1)

    def oc_view(self, data):
        return data

    def set_full_kernels(self, full):
        """Inverse of ``full_kernels``: write (O, ΣC, kH, kW) host values into the Parameters."""
        start = 0
        for W, mask, groups, shape in zip(self.weights, self.masks, self.groups, self.in_shapes):
            part = full[:, start:start + shape[0]]
            start += shape[0]
            if groups > 1:
                part = part[mask].reshape((self.nb_outputs, -1) + part.shape[2:])
            elif mask is not None:
                part = part * mask[:, :, None, None]
            xp_data = self.oc_view(part)
            W.data[...] = W.xp.asarray(numpy.ascontiguousarray(xp_data), dtype=W.dtype)

    def export_weights(self, folder, precision=None):
        super().export_weights(folder, precision)
        precision = precision or self.export_precision
        full, connected = self.full_kernels()
        if self.weights_export_flip:
            full = full[:, :, ::-1, ::-1]
        path = syntxt.weights_path(folder, self.name, "weights", create=True)
        if self.weights_export_format == "OCHW":
            counts = connected.sum(axis=1) * full.shape[2] * full.shape[3]
            rows = numpy.split(full[connected].ravel(), numpy.cumsum(counts)[:-1])
        else:   # HWCO: one line per kernel position; channel, then connected output
            per_position = full.transpose(2, 3, 1, 0)[:, :, connected.T]
            rows = per_position.reshape(full.shape[2] * full.shape[3], -1)
        syntxt.write_rows(path, rows, precision)
        self.export_bias_and_quantizer(folder, precision, "Conv", connected)

    def quant_weight_arrays(self):
        """Quantized kernels as full (O, C_k, kH, kW) arrays (zeros where unconnected)."""
        return [self.expand(self.oc_view(w), k) for k, w in enumerate(super().quant_weight_arrays())]

    def expand(self, data, k):
        """Grouped storage of parent k -> full (O, C_k, kH, kW) (zeros where unconnected)."""
        if self.groups[k] == 1:
            return data
        full = numpy.zeros((self.nb_outputs, self.in_shapes[k][0]) + data.shape[2:], data.dtype)
        full[self.masks[k]] = data.reshape((-1,) + data.shape[2:])
        return full

    def import_weights(self, folder, ignore_missing=False):
        super().import_weights(folder, ignore_missing)
        full, connected = self.full_kernels()
        kh, kw = full.shape[2:]
        legacy = syntxt.weights_path(folder, self.name, "")
        if os.path.isfile(legacy):
            return self.import_legacy(legacy, full, connected)
        path = syntxt.weights_path(folder, self.name, "weights")
        values = self.read_weight_file(path, int(connected.sum()) * kh * kw, ignore_missing,
                                       "weights (connected kernels x kH x kW)")
        if values is not None:
            self.place_values(values, full, connected)
        self.import_bias_and_quantizer(folder, ignore_missing)

    def place_values(self, values, full, connected):
        kh, kw = full.shape[2:]
        if self.weights_export_format == "OCHW":
            full[connected] = values.reshape(-1, kh, kw)
        else:
            view = full.transpose(2, 3, 1, 0)
            view[:, :, connected.T] = values.reshape(kh, kw, -1)
        if self.weights_export_flip:
            full = full[:, :, ::-1, ::-1]
        self.set_full_kernels(full)

    def import_legacy(self, path, full, connected):
        """``<cell>.syntxt``: per output, its connected kernels then its bias (N2D2's
        legacy single file)."""
        stream = syntxt.NumberStream(path)
        kh, kw = full.shape[2:]
        biases = []
        for o in range(self.nb_outputs):
            full[o, connected[o]] = stream.take(int(connected[o].sum()) * kh * kw).reshape(-1, kh, kw)
            if self.bias is not None:
                biases.append(stream.take(1)[0])
        stream.finish()
        self.set_full_kernels(full[:, :, ::-1, ::-1] if self.weights_export_flip else full)
        if self.bias is not None:
            self.bias.data[...] = self.bias.xp.asarray(numpy.array(biases, dtype=full.dtype))


@CELLS.register("Deconv")
class DeconvCell(ConvCell):
    """N2D2 ``Type=Deconv`` (transposed convolution). Output size per axis
    ``in*s + (d(k-1)+1) - 2p - s``. Weights are (C_k, O, kH, kW); the files use Conv's layout
    (one line per output, its connected channels' kernels) [layout of N2D2's file unverified]."""
    transposed = True

    def compute_out_shape(self, in_shapes):
        h, w = self.input_hw(in_shapes)
        (kh, kw), (ph, pw), (dh, dw) = self.kernel_geometry()
        sh, sw = self.hw(self.stride_dims)
        return (self.nb_outputs, h * sh + (dh * (kh - 1) + 1) - 2 * ph - sh,
                w * sw + (dw * (kw - 1) + 1) - 2 * pw - sw)

    def create_weights(self, rng):
        super().create_weights(rng)
        # groups are expressed as masks here: deconv2d's grouped layout is not worth the
        # complexity for the one Deconv model in N2D2's corpus (mnist-autoencoder, full maps)
        for k, groups in enumerate(self.groups):
            if groups > 1:
                raise self.error("grouped Deconv maps are not supported", key="Mapping.ChannelsPerGroup")

    def weight_shape(self, channels, kh, kw):
        return (channels, self.nb_outputs, kh, kw)

    def layout(self, mask):
        return None if mask is None else mask.T

    def oc_view(self, data):
        return data.transpose(1, 0, 2, 3)

    @property
    def stride_hw(self):
        return self.hw(self.stride_dims)

    def convolve(self, x, W, b, padding, dilation, groups):
        return F.deconv2d(x, W, b, self.stride_hw, padding, dilation, 1)

    # ---------------------------------------------------------------- traits (cells/base.py)
    def macs_per_weight(self):
        """Every input pixel scatters through the whole kernel."""
        return self.in_shapes[0][1] * self.in_shapes[0][2]

    onnx_refusal = "Deconv has no ONNX export yet"
    export_onnx = Cell.export_onnx
    fusion_refusal = "a transposed convolution is not part of N2D2's QAT fusion (Conv+BN, Fc)"
    fuse = Cell.fuse


__all__ = ["ConvCell", "DeconvCell"]
