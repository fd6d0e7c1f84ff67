"""StimuliProvider: INI building, file order, implicit normalisation,
size checks, StimuliData, batches, and N2D2's own network input for a bundled test digit."""
import time

import numpy
import pytest

from n2d2py.data import StimuliProvider, database_from_ini
from n2d2py.data.database import Database
from n2d2py.errors import DataError, IniError
from n2d2py.ini import parse_ini_text

MNIST = "[database]\nType=MNIST_IDX_Database\n"
RESCALE32 = "[sp.Transformation-1]\nType=RescaleTransformation\nWidth=32\nHeight=32\n"


@pytest.fixture(autouse=True)
def bundled_mnist(monkeypatch, tmp_path):
    monkeypatch.setenv("N2D2_DATA", str(tmp_path))    # no real MNIST: the bundled subset


def build(text, database=None):
    doc = parse_ini_text(text)
    database = database if database is not None else database_from_ini(doc)
    return StimuliProvider.from_ini(doc, database), doc


def tiny_database(images, labels=None):
    """A database whose Learn, Validation and Test sets all hold ``images``."""
    n = len(images)
    db = Database()
    ids = numpy.arange(n)
    db.set_stimuli(numpy.asarray(images), numpy.zeros(n) if labels is None else labels, ["a"],
                   {"Learn": ids, "Validation": ids, "Test": ids})
    return db


def test_n2d2_oracle_input_for_test_digit_576(n2d2_ini):
    sp, doc = build(MNIST + "[env]\nSizeX=32\nSizeY=32\nBatchSize=8\n" + RESCALE32.replace("sp.", "env."))
    x, label = sp.stimulus("Test", 576)
    expected = numpy.loadtxt(n2d2_ini / "oracle-outputs/LeNet-bn-SAT/test_stimulus_1/env.dat")
    assert label == 3 and x.shape == (1, 32, 32) and x.dtype == numpy.float32
    numpy.testing.assert_allclose(x[0], expected, rtol=5e-6, atol=5e-7)   # 6 printed digits
    assert doc.section("env").get("_EpochSize") == "4000" and sp.epoch_size == 4000


def test_implicit_normalisation_and_signed_mapping():
    image = numpy.array([[0, 128, 255]], numpy.uint8)
    text = "[sp]\nSizeX=3\nSizeY=1\n"
    sp, _ = build(text, tiny_database([image]))
    numpy.testing.assert_allclose(sp.stimulus("Test", 0)[0].ravel(), [0, 128 / 255, 1], rtol=1e-7)
    signed, _ = build(text + "ConfigSection=sp.config\n[sp.config]\nDataSignedMapping=1\n",
                      tiny_database([image]))
    numpy.testing.assert_array_equal(signed.stimulus("Test", 0)[0].ravel(), [-1, 0, 127 / 128])
    affine, _ = build(text + "[sp.Transformation]\nType=RangeAffineTransformation\n"
                      "FirstOperator=Minus\nFirstValue=28\n", tiny_database([image]))
    numpy.testing.assert_array_equal(affine.stimulus("Test", 0)[0].ravel(), [-28, 100, 227])


def test_file_order_static_before_on_the_fly_and_apply_to():
    image = numpy.arange(12, dtype=numpy.uint8).reshape(3, 4)
    text = ("[sp]\nSizeX=4\nSizeY=3\n"
            "[sp.OnTheFlyTransformation-1]\nType=RangeAffineTransformation\nFirstOperator=Multiplies\n"
            "FirstValue=2\n"
            "[sp.Transformation-9]\nType=RangeAffineTransformation\nFirstOperator=Plus\nFirstValue=1\n"
            "[sp.Transformation-2]\nType=FlipTransformation\nHorizontalFlip=1\nApplyTo=LearnOnly\n")
    sp, _ = build(text, tiny_database([image]))
    # static first in file order (+1, then flip for Learn only), then on-the-fly x2
    numpy.testing.assert_array_equal(sp.stimulus("Learn", 0)[0][0], (image[:, ::-1] + 1) * 2)
    numpy.testing.assert_array_equal(sp.stimulus("Test", 0)[0][0], (image + 1) * 2)


def test_bgr_channel_order_and_color_space():
    image = numpy.zeros((2, 2, 3), numpy.uint8)
    image[..., 0], image[..., 2] = 255, 51          # blue 255, red 51
    sp, _ = build("[sp]\nSizeX=2\nSizeY=2\nNbChannels=3\n", tiny_database([image]))
    numpy.testing.assert_allclose(sp.stimulus("Test", 0)[0][:, 0, 0], [1.0, 0.0, 0.2], rtol=1e-7)
    rgb, _ = build("[sp]\nSizeX=2\nSizeY=2\nNbChannels=3\n[sp.Transformation]\n"
                   "Type=ColorSpaceTransformation\nColorSpace=RGB\n", tiny_database([image]))
    numpy.testing.assert_allclose(rgb.stimulus("Test", 0)[0][:, 0, 0], [0.2, 0.0, 1.0], rtol=1e-7)


def test_size_mismatch_names_section_and_sizes():
    sp, _ = build(MNIST + "[sp]\nSizeX=32\nSizeY=32\n")
    with pytest.raises(DataError) as info:
        next(sp.batches("Learn"))
    message = str(info.value)
    assert "[sp]" in message and "28x28 with 1 channel(s)" in message and "32x32" in message


def test_unknown_keys_and_sub_sections():
    with pytest.raises(IniError, match="unknown key 'Batchsize'"):
        build(MNIST + "[sp]\nSizeX=28\nSizeY=28\nBatchsize=3\n")
    with pytest.raises(IniError, match="Unknown StimuliProvider type"):
        build(MNIST + "[sp]\nSizeX=28\nSizeY=28\n[sp.MyTransformation]\nType=FlipTransformation\n")
    with pytest.raises(IniError, match="unknown StimuliProvider parameter 'Levels'"):
        build(MNIST + "[sp]\nSizeX=28\nSizeY=28\nConfigSection=c\n[c]\nLevels=3\n")


def test_batches_partial_last_batch_and_shuffle(rng):
    sp, _ = build(MNIST + "[sp]\nSizeX=28\nSizeY=28\nBatchSize=300\n")
    sizes = [len(labels) for _, labels, _ in sp.batches("Test", shuffle=False)]
    assert sizes == [300, 300, 300, 100]
    seen = numpy.concatenate([ids for _, _, ids in sp.batches("Learn", shuffle=True, rng=rng)])
    assert sorted(seen.tolist()) == sorted(sp.database.learn.tolist())
    assert not numpy.array_equal(seen, sp.database.learn)
    x, labels, ids = next(sp.batches("Test", shuffle=False, limit=5))
    assert x.shape == (5, 1, 28, 28) and labels.dtype == numpy.int64
    numpy.testing.assert_allclose(x[:, 0], sp.database.images[ids] / 255.0, rtol=2e-7)
    numpy.testing.assert_array_equal(labels, sp.database.labels[ids])
    drawn = list(sp.random_batches("Learn", 650, rng))
    assert [len(b[1]) for b in drawn] == [300, 300, 50]


def test_stimuli_data_publishes_global_values():
    images = numpy.array([[[0, 10]], [[20, 30]]], numpy.uint8)
    text = ("[sp]\nSizeX=2\nSizeY=1\n"
            "[sp.StimuliData-normalize]\nApplyTo=LearnOnly\n"
            "[sp.Transformation-normalize]\nType=RangeAffineTransformation\nFirstOperator=Minus\n"
            "FirstValue=[sp.StimuliData-normalize]_GlobalValue.mean\nSecondOperator=Divides\n"
            "SecondValue=[sp.StimuliData-normalize]_GlobalValue.stdDev\n")
    sp, doc = build(text, tiny_database(images))
    section = doc.section("sp.StimuliData-normalize")
    assert float(section.get("_GlobalValue.mean")) == 15.0
    assert float(section.get("_GlobalValue.stdDev")) == pytest.approx(numpy.std([0, 10, 20, 30]))
    assert (float(section.get("_GlobalValue.minVal")), float(section.get("_GlobalValue.maxVal"))) == (0, 30)
    x = sp.stimulus("Learn", 1)[0].ravel()
    numpy.testing.assert_allclose(x, (numpy.array([20, 30]) - 15) / numpy.std([0, 10, 20, 30]), rtol=1e-6)


def test_channel_transformations_build_channels():
    image = numpy.zeros((2, 2, 3), numpy.uint8)
    image[..., 0], image[..., 1], image[..., 2] = 10, 20, 30
    channels = "".join(f"[sp.ChannelTransformation-{c}]\nType=ChannelExtractionTransformation\n"
                       f"CSChannel={c}\n" for c in ("Red", "Green", "Blue"))
    scale = ("[sp.ChannelTransformation-r]\nType=RangeAffineTransformation\nChannel=0\n"
             "FirstOperator=Multiplies\nFirstValue=2\n")
    sp, _ = build("[sp]\nSizeX=2\nSizeY=2\n" + channels + scale, tiny_database([image]))
    assert sp.size == (3, 2, 2)
    # channel 0 (Red) became float through RangeAffine, so no channel is divided by 255
    assert sp.stimulus("Test", 0)[0][:, 0, 0].tolist() == [60.0, 20.0, 10.0]


def test_shapes_only_build_without_database():
    sp, doc = build("[sp]\nSizeX=5\nSizeY=4\nNbChannels=3\nBatchSize=7\n" + RESCALE32, database=None)
    assert (sp.size, sp.batch_size, sp.epoch_size) == ((3, 4, 5), 7, 0)


def test_batches_cost_mnist_rescale32():
    """The per-batch cost of ``batches()`` must stay far below a LeNet step (~10+ ms at B=128)."""
    sp, _ = build(MNIST + "[sp]\nSizeX=32\nSizeY=32\nBatchSize=128\n" + RESCALE32)
    list(sp.batches("Learn"))                   # fills the static cache once
    start = time.perf_counter()
    count = sum(1 for _ in sp.batches("Learn"))
    per_batch = (time.perf_counter() - start) / count
    assert per_batch < 2e-3, f"{per_batch * 1e3:.3f} ms per batch"


def test_oracle_input_through_lenet_bn_sat_ini(n2d2_ini):
    """The QAT test net's own [env] (Rescale 32x32 then RangeAffine Divides 255) gives N2D2's input."""
    from n2d2py.ini import load_ini
    doc = load_ini(str(n2d2_ini / "tests_data/mnist_model/LeNet-bn-SAT.ini"))
    sp = StimuliProvider.from_ini(doc, database_from_ini(doc))
    for folder, index, label in (("test_stimulus_1", 576, 3), ("test_stimulus_2", 660, 2)):
        x, got = sp.stimulus("Test", index)
        expected = numpy.loadtxt(n2d2_ini / "oracle-outputs/LeNet-bn-SAT" / folder / "env.dat")
        assert got == label
        numpy.testing.assert_allclose(x[0], expected, rtol=5e-6, atol=5e-7)
