"""Value and colour transformations: RangeAffine, ColorSpace, ChannelExtraction
(N2D2's transformation types of those names; docs/INI.md §7).

Channel order is OpenCV's: a colour image is BGR until a ``ColorSpace=RGB`` block swaps it, and
per-channel ``FirstValue`` lists follow that order, as in N2D2.
"""
import numpy

from ..ini.convert import enum, list_of, to_bool, to_float
from ..params import REQUIRED, Key
from .transformation import TRANSFORMATIONS, Transformation, hwc, stack_if_uniform

OPERATORS = ("Plus", "Minus", "Multiplies", "Divides")


UFUNCS = {"Plus": numpy.add, "Minus": numpy.subtract, "Multiplies": numpy.multiply,
          "Divides": numpy.multiply}


def apply_operator(x, operator, values, out=None):
    """``x op v`` over the last (channel) axis, in float32 as OpenCV's ``Mat op= double`` does:
    the scalar is cast to float and division is a multiplication by float(1/v). ``out=x``
    works in place (same bits, no new array)."""
    v = numpy.asarray(values, numpy.float64)
    v = (1.0 / v if operator == "Divides" else v).astype(numpy.float32)
    ufunc = UFUNCS[operator]
    if v.size > 1 and x.ndim >= 2 and x.shape[-1] == v.size and x.flags.c_contiguous \
            and (out is None or out is x):
        # per-channel values broadcast over an axis of 3 make NumPy loop 3 elements at a time;
        # repeated along whole rows the loop is W * C long (5x faster, the same operations)
        rows = x.reshape(-1, x.shape[-2] * x.shape[-1])
        result = ufunc(rows, numpy.tile(v, x.shape[-2]), out=rows if out is x else None)
        return result.reshape(x.shape)
    return ufunc(x, v, out=out)


@TRANSFORMATIONS.register("RangeAffineTransformation")
class RangeAffineTransformation(Transformation):
    """Convert to float32, then per channel ``x = x op1 v1[c]`` and ``x = x op2 v2[c]`` (second
    step skipped when ``SecondValue`` is empty); ``Truncate`` rounds toward zero. Disables the
    implicit /255 normalisation since the output is float."""
    first_operator = Key("FirstOperator", enum(*OPERATORS), REQUIRED)
    first_value = Key("FirstValue", list_of(to_float), REQUIRED)
    second_operator = Key("SecondOperator", enum(*OPERATORS), "Plus")
    second_value = Key("SecondValue", list_of(to_float), [])
    truncate = Key("Truncate", to_bool, False)
    pointwise = True

    def check_channels(self, nb_channels):
        for name, values in (("FirstValue", self.first_value), ("SecondValue", self.second_value)):
            if len(values) > 1 and len(values) != nb_channels:
                raise self.error(f"{name} has {len(values)} values; expected 1 or one per "
                                 f"channel ({nb_channels})")

    def apply(self, image, rng=None):
        return self.apply_batch(image[None], rng)[0]

    def apply_batch(self, batch, rng=None):
        if not isinstance(batch, numpy.ndarray):
            return stack_if_uniform([self.apply(im, rng) for im in batch])
        self.check_channels(batch.shape[-1])
        x = batch.astype(numpy.float32)      # a new array: both steps run in place on it
        apply_operator(x, self.first_operator, self.first_value, out=x)
        if self.second_value:
            apply_operator(x, self.second_operator, self.second_value, out=x)
        return numpy.trunc(x, out=x) if self.truncate else x


# ColorSpace value -> the name of OpenCV's conversion (OpenCV is loaded on first use) from a
# 3-channel BGR image (grey and BGRA are first brought to BGR, as N2D2 does); "RGB_to_X" /
# "X_to_BGR" name their source explicitly.
_FROM_BGR = {"BGR": None, "RGB": "COLOR_BGR2RGB", "HSV": "COLOR_BGR2HSV",
             "HLS": "COLOR_BGR2HLS", "YCrCb": "COLOR_BGR2YCrCb", "CIELab": "COLOR_BGR2Lab",
             "CIELuv": "COLOR_BGR2Luv"}
_EXPLICIT = {"RGB_to_BGR": "COLOR_RGB2BGR", "RGB_to_HSV": "COLOR_RGB2HSV",
             "RGB_to_HLS": "COLOR_RGB2HLS", "RGB_to_YCrCb": "COLOR_RGB2YCrCb",
             "RGB_to_CIELab": "COLOR_RGB2Lab", "RGB_to_CIELuv": "COLOR_RGB2Luv",
             "HSV_to_BGR": "COLOR_HSV2BGR", "HSV_to_RGB": "COLOR_HSV2RGB",
             "HLS_to_BGR": "COLOR_HLS2BGR", "HLS_to_RGB": "COLOR_HLS2RGB",
             "YCrCb_to_BGR": "COLOR_YCrCb2BGR", "YCrCb_to_RGB": "COLOR_YCrCb2RGB",
             "CIELab_to_BGR": "COLOR_Lab2BGR", "CIELab_to_RGB": "COLOR_Lab2RGB",
             "CIELuv_to_BGR": "COLOR_Luv2BGR", "CIELuv_to_RGB": "COLOR_Luv2RGB"}


def to_bgr(image):
    """Grey (C=1) -> BGR, BGRA (C=4) -> BGR, BGR unchanged."""
    import cv2
    if image.shape[-1] == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[-1] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


@TRANSFORMATIONS.register("ColorSpaceTransformation")
class ColorSpaceTransformation(Transformation):
    color_space = Key("ColorSpace", enum(*_FROM_BGR, *_EXPLICIT), REQUIRED)

    def apply(self, image, rng=None):
        import cv2
        if self.color_space in _EXPLICIT:
            return hwc(cv2.cvtColor(image, getattr(cv2, _EXPLICIT[self.color_space])))
        bgr = to_bgr(image)
        code = _FROM_BGR[self.color_space]
        return hwc(bgr if code is None else cv2.cvtColor(bgr, getattr(cv2, code)))

    def apply_batch(self, batch, rng=None):
        # BGR <-> RGB on a set of 3-channel images is a channel reversal: one NumPy view
        if (isinstance(batch, numpy.ndarray) and batch.ndim == 4 and batch.shape[-1] == 3
                and self.color_space in ("BGR", "RGB", "RGB_to_BGR")):
            return batch if self.color_space == "BGR" else numpy.ascontiguousarray(batch[..., ::-1])
        return super().apply_batch(batch, rng)


# CSChannel -> (conversion from BGR or None, channel index in the converted image)
_CHANNELS = {"Blue": (None, 0), "Green": (None, 1), "Red": (None, 2),
             "Hue": ("COLOR_BGR2HSV", 0), "Saturation": ("COLOR_BGR2HSV", 1),
             "Value": ("COLOR_BGR2HSV", 2), "Gray": ("COLOR_BGR2GRAY", 0),
             "Y": ("COLOR_BGR2YCrCb", 0), "Cr": ("COLOR_BGR2YCrCb", 1),
             "Cb": ("COLOR_BGR2YCrCb", 2)}


@TRANSFORMATIONS.register("ChannelExtractionTransformation")
class ChannelExtractionTransformation(Transformation):
    """One channel of a BGR image (``Red``, ``Hue``, ``Gray``, ``Cb`` ...); output has C = 1.
    A grey image is returned unchanged for ``Gray``."""
    cs_channel = Key("CSChannel", enum(*_CHANNELS), REQUIRED)

    def apply(self, image, rng=None):
        import cv2
        if image.shape[-1] == 1 and self.cs_channel == "Gray":
            return image
        code, index = _CHANNELS[self.cs_channel]
        bgr = to_bgr(image)
        converted = hwc(bgr if code is None else cv2.cvtColor(bgr, getattr(cv2, code)))
        return converted[:, :, index:index + 1]
