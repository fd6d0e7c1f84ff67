"""Base ``Transformation``: ``ApplyTo``, the registry, and batch helpers
(N2D2's ``ApplyTo`` values; docs/INI.md §7).

A transformation maps images to images. Images here are always (H, W, C) (C = 1 for grey, BGR
order for colour); a *batch* is either one array (N, H, W, C) when all images share a shape, or a
list of (H, W, C) arrays. ``apply(image, rng)`` transforms one image; ``apply_batch(batch, rng)``
defaults to a loop over ``apply`` and is overridden with whole-array NumPy code where the
transformation allows it (RangeAffine, Flip, fixed slices), since the StimuliProvider applies
static transformations once per set and on-the-fly ones once per batch.
"""
import numpy

from ..errors import DataError
from ..ini.convert import enum, list_of, to_float
from ..params import Key, Parameterizable, Registry

TRANSFORMATIONS = Registry("transformation")

APPLY_TO = {
    "All": ("Learn", "Validation", "Test"),
    "LearnOnly": ("Learn",),
    "ValidationOnly": ("Validation",),
    "TestOnly": ("Test",),
    "NoLearn": ("Validation", "Test"),
    "NoValidation": ("Learn", "Test"),
    "NoTest": ("Learn", "Validation"),
}

# N2D2 BorderType -> the name of OpenCV's border constant (OpenCV is loaded on first use);
# MeanBorder is a constant border filled with the image mean.
BORDER_TYPES = {
    "MinusOneReflectBorder": "BORDER_REFLECT_101",
    "ConstantBorder": "BORDER_CONSTANT",
    "ReplicateBorder": "BORDER_REPLICATE",
    "ReflectBorder": "BORDER_REFLECT",
    "WrapBorder": "BORDER_WRAP",
    "MeanBorder": "BORDER_CONSTANT",
}


def hwc(image):
    """(H, W) -> (H, W, 1); OpenCV drops a single channel axis, this puts it back."""
    return image[:, :, None] if image.ndim == 2 else image


def stack_if_uniform(images):
    """One (N, H, W, C) array when every image has the same shape and dtype, else the list."""
    if len(images) and len({(im.shape, im.dtype) for im in images}) == 1:
        return numpy.stack(images)
    return list(images)


class Transformation(Parameterizable):
    """One ``[sp.*Transformation*]`` block. Subclasses declare their keys with ``Key`` and write
    ``apply``; ``is_random`` marks those whose output depends on the rng (augmentations)."""
    apply_to = Key("ApplyTo", enum(*APPLY_TO), "All")
    is_random = False
    pointwise = False      # per-pixel, shape-preserving, deterministic: may run at batch time

    section = None

    def applies(self, set_name):
        return set_name in APPLY_TO[self.apply_to]

    def error(self, message):
        """DataError naming the transformation's section when it came from an INI."""
        if self.section is not None:
            return self.section.error(message, error=DataError)
        return DataError(f"{type(self).__name__}: {message}")

    def apply(self, image, rng):
        raise NotImplementedError

    def apply_batch(self, batch, rng):
        return stack_if_uniform([hwc(self.apply(image, rng)) for image in batch])

    def describe(self):
        place = f" [{self.section.name}]" if self.section is not None else ""
        return f"{type(self).__name__}{place}"


def transformation_from_section(section):
    """Build the transformation of an ``sp.*Transformation*`` section: ``Type`` picks the class,
    every other key must be one of its parameters (N2D2: unknown keys are fatal). ``Channel`` is
    read by the StimuliProvider and skipped here."""
    cls = TRANSFORMATIONS.get(section.get("Type").strip(), section)
    transformation = cls()
    transformation.section = section
    for key in section.keys():
        if key not in ("Type", "Channel") and not key.startswith("_"):
            transformation.set_parameter(key, section.get(key), section)
    missing = transformation.missing_required()
    if missing:
        raise section.error(f"{cls.type_name} needs key {', '.join(missing)}", key=missing[0])
    return transformation


def border(image, top, bottom, left, right, border_type, border_value):
    """Pad with N2D2's BorderType (negative sizes are not allowed here; crop first)."""
    import cv2
    if max(top, bottom, left, right) <= 0:
        return image
    value = list(border_value) or [0.0]
    if border_type == "MeanBorder":
        value = list(image.reshape(-1, image.shape[-1]).mean(axis=0))
    if len(value) == 1:
        value = value * image.shape[-1]
    padded = cv2.copyMakeBorder(image, top, bottom, left, right,
                                getattr(cv2, BORDER_TYPES[border_type]), value=value[:4])
    return hwc(padded)


border_type_key = enum(*BORDER_TYPES)
border_value_key = list_of(to_float)
