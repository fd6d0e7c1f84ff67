"""Transformations: numbers on small arrays against OpenCV / NumPy formulas."""
import cv2
import numpy
import pytest

from n2d2py.data import TRANSFORMATIONS, transformation_from_section
from n2d2py.errors import DataError, IniError
from n2d2py.ini import parse_ini_text


def make(type_name, **keys):
    return TRANSFORMATIONS.get(type_name)(**keys)


def from_text(body):
    return transformation_from_section(parse_ini_text(f"[sp.Transformation-1]\n{body}").section(
        "sp.Transformation-1"))


@pytest.fixture
def image(rng):
    return rng.integers(0, 256, (7, 9, 3), dtype=numpy.uint8)


def test_rescale_is_opencv_bilinear_on_uint8(image):
    out = make("RescaleTransformation", width=12, height=5).apply(image, None)
    assert out.dtype == numpy.uint8 and out.shape == (5, 12, 3)
    numpy.testing.assert_array_equal(out, cv2.resize(image, (12, 5), interpolation=cv2.INTER_LINEAR))
    grey = make("RescaleTransformation", width=4, height=4).apply(image[:, :, :1], None)
    assert grey.shape == (4, 4, 1)


@pytest.mark.parametrize("fit, size", [(True, (8, 6)), (False, (20, 15))])
def test_rescale_keep_aspect_ratio(fit, size):
    t = make("RescaleTransformation", width=8, height=15, keep_aspect_ratio=True, resize_to_fit=fit)
    # w=12, h=9: fit ratio min(8/12, 15/9) = 0.667 -> int(8.0), int(6.0); cover max = 1.667 -> 20, 15
    assert t.apply(numpy.zeros((9, 12, 1), numpy.uint8), None).shape[:2] == size[::-1]


def test_padcrop_centre_pad_and_crop():
    image = numpy.arange(20, dtype=numpy.uint8).reshape(4, 5, 1)
    t = make("PadCropTransformation", width=8, height=3, border_type="ConstantBorder",
             border_value=[9.0])
    out = t.apply(image, None)[:, :, 0]
    # dw = 3 -> left 2, right 1; dh = -1 -> top = ceil(-0.5) = 0, bottom = -1 (crop last row)
    expected = numpy.pad(image[:3, :, 0], ((0, 0), (2, 1)), constant_values=9)
    numpy.testing.assert_array_equal(out, expected)
    reflect = make("PadCropTransformation", width=7, height=4).apply(image, None)[:, :, 0]
    numpy.testing.assert_array_equal(reflect, numpy.pad(image[:, :, 0], ((0, 0), (1, 1)), mode="reflect"))
    grown = make("PadCropTransformation", width=2, height=2, additive_wh=True,
                 border_type="ReplicateBorder").apply(image, None)[:, :, 0]
    numpy.testing.assert_array_equal(grown, numpy.pad(image[:, :, 0], 1, mode="edge"))


def test_range_affine_per_channel_and_second_operator(image):
    t = make("RangeAffineTransformation", first_operator="Minus", first_value=[10.0, 20.0, 30.0],
             second_operator="Divides", second_value=[2.0])
    out = t.apply(image, None)
    assert out.dtype == numpy.float32
    expected = (image.astype(numpy.float32) - numpy.float32([10, 20, 30])) * numpy.float32(0.5)
    numpy.testing.assert_array_equal(out, expected)
    truncated = make("RangeAffineTransformation", first_operator="Multiplies", first_value=[0.3],
                     truncate=True).apply(image, None)
    numpy.testing.assert_array_equal(truncated, numpy.trunc(image.astype(numpy.float32) * numpy.float32(0.3)))
    with pytest.raises(DataError, match="FirstValue has 2 values; expected 1 or one per channel"):
        make("RangeAffineTransformation", first_operator="Plus", first_value=[1.0, 2.0]).apply(image, None)


def test_range_affine_divides_matches_division_to_float_precision(image):
    out = make("RangeAffineTransformation", first_operator="Divides", first_value=[255.0]).apply(image, None)
    numpy.testing.assert_allclose(out, image / 255.0, rtol=1e-7)


def test_color_space(image):
    rgb = make("ColorSpaceTransformation", color_space="RGB")
    numpy.testing.assert_array_equal(rgb.apply(image, None), image[:, :, ::-1])
    numpy.testing.assert_array_equal(rgb.apply_batch(image[None], None)[0], image[:, :, ::-1])
    hsv = make("ColorSpaceTransformation", color_space="HSV").apply(image, None)
    numpy.testing.assert_array_equal(hsv, cv2.cvtColor(image, cv2.COLOR_BGR2HSV))
    bgr = make("ColorSpaceTransformation", color_space="BGR").apply(image[:, :, :1], None)
    assert bgr.shape == (7, 9, 3) and (bgr == image[:, :, :1]).all()


@pytest.mark.parametrize("channel, check", [
    ("Red", lambda im: im[:, :, 2]), ("Blue", lambda im: im[:, :, 0]),
    ("Gray", lambda im: cv2.cvtColor(im, cv2.COLOR_BGR2GRAY)),
    ("Cb", lambda im: cv2.cvtColor(im, cv2.COLOR_BGR2YCrCb)[:, :, 2]),
    ("Saturation", lambda im: cv2.cvtColor(im, cv2.COLOR_BGR2HSV)[:, :, 1])])
def test_channel_extraction(image, channel, check):
    out = make("ChannelExtractionTransformation", cs_channel=channel).apply(image, None)
    assert out.shape == (7, 9, 1)
    numpy.testing.assert_array_equal(out[:, :, 0], check(image))


def test_slice_extraction_fixed_random_and_padding(image, rng):
    fixed = make("SliceExtractionTransformation", width=4, height=3, offset_x=2, offset_y=1)
    numpy.testing.assert_array_equal(fixed.apply(image, rng), image[1:4, 2:6])
    batch = numpy.stack([image, image + 1])
    numpy.testing.assert_array_equal(fixed.apply_batch(batch, rng), batch[:, 1:4, 2:6])
    random = make("SliceExtractionTransformation", width=4, height=3, random_offset_x=True,
                  random_offset_y=True)
    seen = set()
    for _ in range(200):
        out = random.apply(image, rng)
        hits = [(y, x) for y in range(5) for x in range(6)
                if numpy.array_equal(image[y:y + 3, x:x + 4], out)]
        assert len(hits) == 1
        seen.add(hits[0])
    assert len(seen) == 30                      # every offset in [0, w-W] x [0, h-H] occurs
    with pytest.raises(DataError, match="AllowPadding"):
        make("SliceExtractionTransformation", width=12, height=3).apply(image, rng)
    padded = make("SliceExtractionTransformation", width=11, height=7, allow_padding=True,
                  border_type="ConstantBorder").apply(image, rng)
    assert padded.shape == (7, 11, 3) and (padded[:, 9:] == 0).all()


def test_flip(image, rng):
    both = make("FlipTransformation", horizontal_flip=True, vertical_flip=True)
    numpy.testing.assert_array_equal(both.apply(image, rng), image[::-1, ::-1])
    random = make("FlipTransformation", random_horizontal_flip=True)
    batch = numpy.stack([image] * 400)
    out = random.apply_batch(batch, rng)
    flipped = numpy.array([numpy.array_equal(o, image[:, ::-1]) for o in out])
    kept = numpy.array([numpy.array_equal(o, image) for o in out])
    assert (flipped ^ kept).all() and 160 < flipped.sum() < 240


def test_random_resize_crop(image, rng):
    t = make("RandomResizeCropTransformation", width=5, height=4, scale_min=0.3, scale_max=0.6,
             ratio_min=0.75, ratio_max=1.33)
    for _ in range(20):
        x, y, w, h = t.crop_box(9, 7, rng)
        assert 0 <= x <= 9 - w and 0 <= y <= 7 - h and 0.2 * 63 <= w * h <= 0.75 * 63
    assert t.apply(image, rng).shape == (4, 5, 3)
    whole = make("RandomResizeCropTransformation", width=9, height=7, ratio_min=9 / 7, ratio_max=9 / 7)
    numpy.testing.assert_array_equal(whole.apply(image, rng), image)   # the whole image, unscaled
    square = make("RandomResizeCropTransformation", width=7, height=7)   # ratio 1 cannot fit 8x8:
    numpy.testing.assert_array_equal(square.apply(image, rng), image[:, 1:8])   # centre fallback


def test_distortion_identity_and_shape(image, rng):
    identity = make("DistortionTransformation")
    numpy.testing.assert_array_equal(identity.apply(image, rng), image)
    warped = make("DistortionTransformation", elastic_scaling=3.0, rotation=10.0, scaling=10.0)
    out = warped.apply(image, rng)
    assert out.shape == image.shape and out.dtype == numpy.uint8 and not numpy.array_equal(out, image)


def test_apply_to():
    t = from_text("Type=FlipTransformation\nApplyTo=NoLearn\nHorizontalFlip=1\n")
    assert [t.applies(s) for s in ("Learn", "Validation", "Test")] == [False, True, True]
    assert t.horizontal_flip is True
    with pytest.raises(IniError, match="expected one of All, LearnOnly"):
        from_text("Type=FlipTransformation\nApplyTo=Learn\n")


def test_unknown_and_missing_keys_are_fatal():
    with pytest.raises(IniError, match="Widht") as info:
        from_text("Type=RescaleTransformation\nWidht=3\nHeight=3\n")
    assert "sp.Transformation-1" in str(info.value)
    with pytest.raises(IniError, match="needs key Width"):
        from_text("Type=RescaleTransformation\nHeight=3\n")
    with pytest.raises(IniError, match="unknown transformation type 'ResizeTransformation'"):
        from_text("Type=ResizeTransformation\n")
