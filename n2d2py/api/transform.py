"""``n2d2.transform``: the transformations of N2D2's Python API (``Rescale``, ``PadCrop``,
``ColorSpace``, ``RangeAffine``, ``SliceExtraction``, ``Flip``, ``RandomResizeCrop``,
``Distortion``, ``ChannelExtraction``; ``Composite`` groups several) over ``data/``'s
transformations. ``apply_to``: ``All`` (default), ``LearnOnly``, ``NoLearn``, ...
"""
from ..data.color import ColorSpaceTransformation, RangeAffineTransformation
from ..data.geometric import (DistortionTransformation, FlipTransformation,
                              PadCropTransformation, RandomResizeCropTransformation,
                              RescaleTransformation, SliceExtractionTransformation)
from ..data.transformation import TRANSFORMATIONS
from .errors import WrongInputType
from .view import View


class Transformation(View):
    """Base of the transformations; ``_positional``: the names of the positional arguments."""
    _positional = ()

    def __init__(self, *args, **config_parameters):
        names = self._positional
        if len(args) > len(names):
            raise WrongInputType(f"{type(self).__name__}: takes {len(names)} positional "
                                 f"arguments ({', '.join(names) or 'none'}), got {len(args)}")
        missing = [n for n in names[len(args):] if n not in config_parameters]
        if missing:
            raise WrongInputType(f"{type(self).__name__}: missing argument {', '.join(missing)}")
        super().__init__(**dict(zip(names, args)), **config_parameters)

    def get_apply_set(self):
        return self._core.apply_to


class Rescale(Transformation):
    """``Rescale(width, height, keep_aspect_ratio=False, resize_to_fit=True)``."""
    _core_class = RescaleTransformation
    _positional = ("width", "height")


class PadCrop(Transformation):
    """``PadCrop(width, height, additive_wh=False, border_type=..., border_value=[])``."""
    _core_class = PadCropTransformation
    _positional = ("width", "height")


class ColorSpace(Transformation):
    """``ColorSpace(color_space)``: ``RGB``, ``BGR``, ``HSV``, ``YCrCb``, ``Lab``, ..."""
    _core_class = ColorSpaceTransformation
    _positional = ("color_space",)


class RangeAffine(Transformation):
    """``RangeAffine(first_operator, first_value, second_operator='Plus', second_value=[],
    truncate=False)``; operators ``Plus``, ``Minus``, ``Multiplies``, ``Divides``."""
    _core_class = RangeAffineTransformation
    _positional = ("first_operator", "first_value")


class SliceExtraction(Transformation):
    """``SliceExtraction(width, height, offset_x=0, offset_y=0, random_offset_x=False, ...)``."""
    _core_class = SliceExtractionTransformation
    _positional = ("width", "height")


class RandomResizeCrop(Transformation):
    """``RandomResizeCrop(width, height, scale_min, scale_max, ratio_min, ratio_max)``."""
    _core_class = RandomResizeCropTransformation
    _positional = ("width", "height")


class Flip(Transformation):
    """``Flip(horizontal_flip, vertical_flip, random_horizontal_flip, random_vertical_flip)``."""
    _core_class = FlipTransformation


class Distortion(Transformation):
    """``Distortion(elastic_gaussian_size, elastic_sigma, elastic_scaling, scaling, rotation)``."""
    _core_class = DistortionTransformation


class ChannelExtraction(Transformation):
    """``ChannelExtraction(channel)``: ``Blue``, ``Green``, ``Red``, ``Hue``, ..."""
    _core_class = TRANSFORMATIONS.get("ChannelExtractionTransformation")
    _positional = ("channel",)


class Composite(Transformation):
    """Several transformations given at once to ``add_transformation``."""

    def __init__(self, transformations, **config_parameters):
        if config_parameters:
            raise WrongInputType(f"Composite: takes only the list of transformations, got "
                                 f"{', '.join(config_parameters)}")
        if not isinstance(transformations, list) or not all(
                isinstance(t, Transformation) and not isinstance(t, Composite)
                for t in transformations):
            raise WrongInputType("Composite: expected a list of transformations")
        object.__setattr__(self, "_transformations", list(transformations))

    def get_transformations(self):
        return list(self._transformations)

    def get_apply_set(self):
        return "All"

    def N2D2(self):
        return [t.N2D2() for t in self._transformations]

    def __str__(self):
        return "Composite(" + ", ".join(map(str, self._transformations)) + ")"


__all__ = ["Transformation", "Composite", "Rescale", "PadCrop", "ColorSpace", "RangeAffine",
           "SliceExtraction", "RandomResizeCrop", "Flip", "Distortion", "ChannelExtraction"]
