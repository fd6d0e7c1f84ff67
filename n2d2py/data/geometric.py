"""Geometric transformations: Rescale, PadCrop, SliceExtraction, Flip, RandomResizeCrop,
Distortion (N2D2's types of those names; docs/INI.md §7). All work on (H, W, C) images with
OpenCV, keeping the dtype: bilinear resizing of a uint8 image is OpenCV's fixed-point one, which
N2D2's input depends on (it resizes the 8-bit image and divides by 255 afterwards: a float resize
would change the inputs' last bits).
"""
import math

import numpy

from ..ini.convert import list_of, to_bool, to_float, to_uint
from ..params import REQUIRED, Key
from .transformation import (TRANSFORMATIONS, Transformation, border, border_type_key,
                             border_value_key, hwc)


def resize(image, width, height):
    import cv2
    return hwc(cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR))


@TRANSFORMATIONS.register("RescaleTransformation")
class RescaleTransformation(Transformation):
    """Bilinear resize to exactly ``Width`` x ``Height``, or, with ``KeepAspectRatio``, by
    ratio = min (``ResizeToFit``) or max (cover) of W/w, H/h, sizes truncated to int."""
    width = Key("Width", to_uint, REQUIRED)
    height = Key("Height", to_uint, REQUIRED)
    keep_aspect_ratio = Key("KeepAspectRatio", to_bool, False)
    resize_to_fit = Key("ResizeToFit", to_bool, True)

    def output_size(self, w, h):
        if not self.keep_aspect_ratio:
            return self.width, self.height
        pick = min if self.resize_to_fit else max
        ratio = pick(self.width / w, self.height / h)
        return int(ratio * w), int(ratio * h)

    def apply(self, image, rng=None):
        width, height = self.output_size(image.shape[1], image.shape[0])
        if width < 1 or height < 1:
            raise self.error(f"rescaled size {width}x{height} is empty (Width and Height must "
                             f"be at least 1)")
        return resize(image, width, height)


def pad_crop(image, width, height, border_type, border_value):
    """Centre pad or crop to ``width`` x ``height``: dw = W - w, left = ceil(dw/2), right = dw - left."""
    h, w = image.shape[:2]
    dw, dh = width - w, height - h
    left, top = math.ceil(dw / 2), math.ceil(dh / 2)
    right, bottom = dw - left, dh - top
    # crop the negative sides first, then pad the positive ones
    image = image[max(0, -top): h - max(0, -bottom), max(0, -left): w - max(0, -right)]
    return border(image, max(0, top), max(0, bottom), max(0, left), max(0, right),
                  border_type, border_value)


@TRANSFORMATIONS.register("PadCropTransformation")
class PadCropTransformation(Transformation):
    width = Key("Width", to_uint, REQUIRED)
    height = Key("Height", to_uint, REQUIRED)
    additive_wh = Key("AdditiveWH", to_bool, False)
    border_type = Key("BorderType", border_type_key, "MinusOneReflectBorder")
    border_value = Key("BorderValue", border_value_key, [])

    def apply(self, image, rng=None):
        h, w = image.shape[:2]
        width, height = (w + self.width, h + self.height) if self.additive_wh else (self.width, self.height)
        return pad_crop(image, width, height, self.border_type, self.border_value)


@TRANSFORMATIONS.register("SliceExtractionTransformation")
class SliceExtractionTransformation(Transformation):
    """Crop a ``Width`` x ``Height`` window at (``OffsetX``, ``OffsetY``), or at a uniform random
    offset in [0, w - W] per axis; optional random rotation / scaling about the window centre."""
    width = Key("Width", to_uint, 0)
    height = Key("Height", to_uint, 0)
    offset_x = Key("OffsetX", to_uint, 0)
    offset_y = Key("OffsetY", to_uint, 0)
    random_offset_x = Key("RandomOffsetX", to_bool, False)
    random_offset_y = Key("RandomOffsetY", to_bool, False)
    random_rotation = Key("RandomRotation", to_bool, False)
    random_rotation_range = Key("RandomRotationRange", list_of(to_float, 2), [0.0, 360.0])
    random_scaling = Key("RandomScaling", to_bool, False)
    random_scaling_range = Key("RandomScalingRange", list_of(to_float, 2), [0.8, 1.2])
    allow_padding = Key("AllowPadding", to_bool, False)
    border_type = Key("BorderType", border_type_key, "MinusOneReflectBorder")
    border_value = Key("BorderValue", border_value_key, [])

    @property
    def is_random(self):
        return any((self.random_offset_x, self.random_offset_y, self.random_rotation,
                    self.random_scaling))

    def window(self, w, h, rng):
        width, height = self.width or w, self.height or h
        if (width > w or height > h) and not self.allow_padding:
            raise self.error(f"slice {width}x{height} larger than the {w}x{h} image "
                             f"(set AllowPadding=1 to pad)")
        x = int(rng.integers(0, max(0, w - width) + 1)) if self.random_offset_x else self.offset_x
        y = int(rng.integers(0, max(0, h - height) + 1)) if self.random_offset_y else self.offset_y
        return x, y, width, height

    def apply(self, image, rng):
        import cv2
        h, w = image.shape[:2]
        x, y, width, height = self.window(w, h, rng)
        if self.random_rotation or self.random_scaling:
            angle = rng.uniform(*self.random_rotation_range) if self.random_rotation else 0.0
            scale = rng.uniform(*self.random_scaling_range) if self.random_scaling else 1.0
            matrix = cv2.getRotationMatrix2D((x + width / 2.0, y + height / 2.0), angle, scale)
            image = hwc(cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR,
                                       borderMode=cv2.BORDER_REFLECT_101))
        pad_right, pad_bottom = max(0, x + width - w), max(0, y + height - h)
        if pad_right or pad_bottom:
            image = border(image, 0, pad_bottom, 0, pad_right, self.border_type, self.border_value)
        return image[y:y + height, x:x + width]

    def apply_batch(self, batch, rng):
        if isinstance(batch, numpy.ndarray) and not self.is_random and len(batch):
            x, y, width, height = self.window(batch.shape[2], batch.shape[1], rng)
            if x + width <= batch.shape[2] and y + height <= batch.shape[1]:
                return batch[:, y:y + height, x:x + width]      # one slice for the whole set
        return super().apply_batch(batch, rng)


@TRANSFORMATIONS.register("FlipTransformation")
class FlipTransformation(Transformation):
    """Horizontal / vertical flips; the random variants flip each image with probability 1/2."""
    horizontal_flip = Key("HorizontalFlip", to_bool, False)
    vertical_flip = Key("VerticalFlip", to_bool, False)
    random_horizontal_flip = Key("RandomHorizontalFlip", to_bool, False)
    random_vertical_flip = Key("RandomVerticalFlip", to_bool, False)

    @property
    def is_random(self):
        return self.random_horizontal_flip or self.random_vertical_flip

    def draws(self, n, rng):
        """(horizontal, vertical) boolean flags per image: fixed flips XOR random draws."""
        hor = numpy.full(n, self.horizontal_flip)
        ver = numpy.full(n, self.vertical_flip)
        if self.random_horizontal_flip:
            hor ^= rng.random(n) < 0.5
        if self.random_vertical_flip:
            ver ^= rng.random(n) < 0.5
        return hor, ver

    def apply(self, image, rng):
        return self.apply_batch([image], rng)[0]

    def apply_batch(self, batch, rng):
        hor, ver = self.draws(len(batch), rng)
        if isinstance(batch, numpy.ndarray):
            out = batch.copy()
            out[hor] = out[hor][:, :, ::-1]
            out[ver] = out[ver][:, ::-1]
            return out
        return [im[::-1 if v else 1, ::-1 if h else 1] for im, h, v in zip(batch, hor, ver)]


@TRANSFORMATIONS.register("RandomResizeCropTransformation")
class RandomResizeCropTransformation(Transformation):
    """torchvision-style RandomResizedCrop: area fraction in [ScaleMin, ScaleMax], log-uniform
    aspect ratio in [RatioMin, RatioMax], random position (10 tries, then the centred largest
    crop), bilinear resize to ``Width`` x ``Height``."""
    width = Key("Width", to_uint, REQUIRED)
    height = Key("Height", to_uint, REQUIRED)
    scale_min = Key("ScaleMin", to_float, 1.0)
    scale_max = Key("ScaleMax", to_float, 1.0)
    ratio_min = Key("RatioMin", to_float, 1.0)
    ratio_max = Key("RatioMax", to_float, 1.0)
    is_random = True

    def crop_box(self, w, h, rng):
        area = w * h
        log_ratio = (math.log(self.ratio_min), math.log(self.ratio_max))
        for _ in range(10):
            target = area * rng.uniform(self.scale_min, self.scale_max)
            ratio = math.exp(rng.uniform(*log_ratio))
            cw, ch = int(round(math.sqrt(target * ratio))), int(round(math.sqrt(target / ratio)))
            if 0 < cw <= w and 0 < ch <= h:
                return int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1)), cw, ch
        ratio = min(max(w / h, self.ratio_min), self.ratio_max)
        cw, ch = (w, int(round(w / ratio))) if w / h < ratio else (int(round(h * ratio)), h)
        return (w - cw) // 2, (h - ch) // 2, cw, ch

    def apply(self, image, rng):
        x, y, cw, ch = self.crop_box(image.shape[1], image.shape[0], rng)
        if self.width < 1 or self.height < 1:
            raise self.error(f"size {self.width}x{self.height} is empty (Width and Height must "
                             f"be at least 1)")
        return resize(image[y:y + ch, x:x + cw], self.width, self.height)


@TRANSFORMATIONS.register("DistortionTransformation")
class DistortionTransformation(Transformation):
    """Random elastic + affine distortion (basic version of N2D2's): a uniform [-1, 1]
    displacement field smoothed by a Gaussian (``ElasticGaussianSize``, ``ElasticSigma``) times
    ``ElasticScaling`` pixels, plus a scaling of ±``Scaling`` % and a rotation of ±``Rotation``
    degrees about the centre; bilinear remap, outside pixels 0 (``IgnoreMissingData``)."""
    elastic_gaussian_size = Key("ElasticGaussianSize", to_uint, 15)
    elastic_sigma = Key("ElasticSigma", to_float, 6.0)
    elastic_scaling = Key("ElasticScaling", to_float, 0.0)
    scaling = Key("Scaling", to_float, 0.0)
    rotation = Key("Rotation", to_float, 0.0)
    ignore_missing_data = Key("IgnoreMissingData", to_bool, True)
    is_random = True

    def maps(self, w, h, rng):
        import cv2
        gx, gy = numpy.meshgrid(numpy.arange(w, dtype=numpy.float32),
                                numpy.arange(h, dtype=numpy.float32))
        if self.elastic_scaling:
            k = self.elastic_gaussian_size | 1          # OpenCV needs an odd kernel size
            for grid in (gx, gy):
                field = rng.uniform(-1, 1, (h, w)).astype(numpy.float32)
                grid += self.elastic_scaling * cv2.GaussianBlur(field, (k, k), self.elastic_sigma)
        scale = 1.0 + rng.uniform(-self.scaling, self.scaling) / 100.0
        angle = math.radians(rng.uniform(-self.rotation, self.rotation))
        cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
        cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
        dx, dy = gx - cx, gy - cy
        return ((cos * dx - sin * dy + cx).astype(numpy.float32),
                (sin * dx + cos * dy + cy).astype(numpy.float32))

    def apply(self, image, rng):
        import cv2
        map_x, map_y = self.maps(image.shape[1], image.shape[0], rng)
        mode = cv2.BORDER_CONSTANT if self.ignore_missing_data else cv2.BORDER_REPLICATE
        return hwc(cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=mode, borderValue=0))


__all__ = ["RescaleTransformation", "PadCropTransformation", "SliceExtractionTransformation",
           "FlipTransformation", "RandomResizeCropTransformation", "DistortionTransformation"]
