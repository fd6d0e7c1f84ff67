"""DIR_Database streamed (``LoadInMemory=0``, N2D2's default): only the file list is kept, images
are decoded when a batch needs them (in the loader's workers), the batches are those of
``LoadInMemory=1``, a corrupt image met mid-epoch is one error naming it, and the command learns."""
import os
import re
import uuid

import numpy
import pytest
from cli_runner import error_line, run_subprocess
from image_folders import SMALL_NET, make_dir_folder
from test_streaming_cli import assert_no_process_left

from n2d2py.data import StimuliProvider, database_from_ini, loader
from n2d2py.errors import DataError
from n2d2py.ini import parse_ini_text

# deterministic chain (static, then on the fly) bringing 20..36-pixel pictures to 16 x 16
DIR_SP = """
[database]
Type=DIR_Database
DataPath={root}
Learn=0.5
Validation=0.25
LoadInMemory={in_memory}
{database}

[sp]
SizeX=16
SizeY=16
NbChannels=3
BatchSize=5
{sp}

[sp.Transformation-1]
Type=RescaleTransformation
Width=20
Height=20
KeepAspectRatio=1
ResizeToFit=0

[sp.Transformation-2]
Type=PadCropTransformation
Width=20
Height=20

[sp.Transformation-3]
Type=RangeAffineTransformation
FirstOperator=Minus
FirstValue=100
SecondOperator=Multiplies
SecondValue=0.02

[sp.OnTheFlyTransformation-4]
Type=SliceExtractionTransformation
Width=16
Height=16
OffsetX=2
OffsetY=2
"""
NOT_AN_IMAGE = "OpenCV cannot decode this image (corrupt or not an image)"


def dir_ini(root, in_memory=0, database="", sp=""):
    return DIR_SP.format(root=root, in_memory=in_memory, database=database, sp=sp)


def provider(root, in_memory=0, seed=1, **extra):
    document = parse_ini_text(dir_ini(root, in_memory, **extra))
    db = database_from_ini(document, rng=numpy.random.default_rng(seed))
    return StimuliProvider.from_ini(document, db, numpy.random.default_rng(seed))


@pytest.fixture(autouse=True)
def stop_workers():
    yield
    loader.close_all()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("dir")
    make_dir_folder(root, classes=3, per_class=9)
    return root


def arrays_held(obj):
    """Bytes of the NumPy arrays reachable from ``obj`` through n2d2py objects' attributes,
    containers and array bases (a view counts with the array it views)."""
    seen, total, stack = set(), 0, [obj]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, (bytes, bytearray, str)):
            total += len(item)
        elif isinstance(item, numpy.ndarray):
            total += item.nbytes
            stack.append(item.base)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set)):
            stack.extend(item)
        elif type(item).__module__.startswith("n2d2py") and hasattr(item, "__dict__"):
            stack.extend(vars(item).values())
    return total


def test_streaming_and_in_memory_give_the_same_batches(folder):
    """Same seed: same partitions, then per set and per epoch the same order, labels and bits,
    with the loader in-process or in 2 workers."""
    memory = provider(folder, in_memory=1)
    images = memory.database.images
    assert not memory.streaming and isinstance(images, list)     # sizes differ: one array each
    assert len(images) == 27 and {im.dtype for im in images} == {numpy.dtype(numpy.uint8)}
    for workers in (0, 2):
        streamed = provider(folder, in_memory=0)
        streamed.workers = workers
        assert streamed.streaming
        for name in ("Learn", "Validation", "Test"):
            numpy.testing.assert_array_equal(streamed.database.partition(name),
                                             memory.database.partition(name))
        rng_a, rng_b = numpy.random.default_rng(7), numpy.random.default_rng(7)
        for name in ("Learn", "Learn", "Validation", "Test"):           # two Learn epochs
            a = list(memory.batches(name, True, rng_a))
            b = list(streamed.batches(name, True, rng_b))
            assert len(a) == len(b) > 0
            for (xa, la, ia), (xb, lb, ib) in zip(a, b):
                numpy.testing.assert_array_equal(ia, ib)
                numpy.testing.assert_array_equal(la, lb)
                assert xa.shape == xb.shape and xa.dtype == xb.dtype == numpy.float32
                assert xa.tobytes() == xb.tobytes()
        ids = numpy.concatenate([b[2] for b in streamed.batches("Learn", True, rng_b)])
        assert sorted(ids.tolist()) == sorted(memory.database.partition("Learn").tolist())


def test_streaming_keeps_no_pixels(tmp_path):
    """A few hundred PNGs: the streamed database holds the file list, labels and partitions
    (bytes per file far below one decoded image), before and after a pass; LoadInMemory=1 holds
    every pixel. The same check on a folder three times smaller shows what grows with the files."""
    held = {}
    for count in (100, 300):
        root = tmp_path / f"n{count}"
        make_dir_folder(root, classes=4, per_class=count // 4, sizes=(32, 33),
                        extensions=("png",))
        sp = provider(root, in_memory=0)
        db = sp.database
        assert len(db) == count and db.images.size == 0
        held[count] = arrays_held(db)
        assert held[count] < 256 * count           # a path, a label, a set id: not 32x32x3
        sp.workers = 0
        assert sum(len(x) for x, _, _ in sp.batches("Learn")) == sp.nb_stimuli("Learn")
        assert arrays_held(db) == held[count] and not sp._cache
    assert held[300] - held[100] < 256 * 200
    memory = provider(tmp_path / "n300", in_memory=1).database
    assert memory.images.shape == (300, 32, 32, 3)
    assert arrays_held(memory) >= 300 * 32 * 32 * 3


def test_load_in_memory_too_large_is_one_line(tmp_path):
    """The array of a uniform set is reserved at the first image: one that no machine can hold
    (10^6 images of 40000 x 40000 x 3: 4.8 PB, past any address space) is refused naming the key."""
    make_dir_folder(tmp_path, classes=1, per_class=2, extensions=("png",))
    db = provider(tmp_path, in_memory=1).database
    db.files.extend(["unused"] * 10 ** 6)
    with pytest.raises(DataError) as info:
        db._store_for(numpy.broadcast_to(numpy.uint8(0), (40000, 40000, 3)))   # no pixels
    message = str(info.value)
    assert "\n" not in message and "[database]" in message and "LoadInMemory" in message
    assert "1000002 images of (40000, 40000, 3) would take 4470" in message


def corrupt_folder(tmp_path):
    root = tmp_path / "data"
    paths = make_dir_folder(root, classes=3, per_class=8)
    bad = paths[10]         # class1/002: 7th of Learn in load order, in its second batch of 5
    with open(bad, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n but not an image")
    return root, bad


@pytest.mark.parametrize("workers", [0, 2])
def test_a_corrupt_image_met_mid_epoch_names_the_file(tmp_path, workers):
    root, bad = corrupt_folder(tmp_path)
    sp = provider(root, in_memory=0, database="RandomPartitioning=0", sp="")
    sp.workers = workers                          # the database loaded: nothing decoded yet
    done = 0
    with pytest.raises(DataError) as info:
        for x, _, _ in sp.batches("Learn", shuffle=False):
            done += len(x)
    assert done > 0                               # mid-epoch, after good batches
    assert str(info.value) == f"{bad}: {NOT_AN_IMAGE}"
    with pytest.raises(DataError) as info:        # LoadInMemory=1 finds it while loading
        provider(root, in_memory=1)
    assert str(info.value) == f"{bad}: {NOT_AN_IMAGE}"


def test_skip_bad_images_applies_to_a_streamed_folder(tmp_path):
    root, bad = corrupt_folder(tmp_path)
    sp = provider(root, in_memory=0, database="RandomPartitioning=0", sp="SkipBadImages=1")
    sp.workers = 2
    ids = numpy.concatenate([b[2] for b in sp.batches("Learn", shuffle=False)])
    assert len(ids) == sp.nb_stimuli("Learn") - 1 and list(sp.skipped) == [bad]


def test_python_api_dir_streams_unless_asked_to_load_in_memory(tmp_path):
    """N2D2's ``n2d2.database.DIR(..., load_data_in_memory=)``: both read the same batches."""
    import n2d2py as n2d2
    make_dir_folder(tmp_path, classes=2, per_class=6, sizes=(16, 17), extensions=("png",))
    batches = {}
    for in_memory in (False, True):
        n2d2.global_variables.seed = 1
        database = n2d2.database.DIR(tmp_path, learn=0.5, load_data_in_memory=in_memory)
        assert database._core.streaming == (not in_memory)
        sp = n2d2.provider.DataProvider(database, [16, 16, 3], batch_size=4)
        sp.add_transformation(n2d2.transform.PadCrop(16, 16))
        sp.set_partition("Learn")
        batches[in_memory] = [sp.read_batch(k).to_numpy() for k in (0, 2)]
    for a, b in zip(batches[False], batches[True]):
        assert a.shape == (4, 3, 16, 16) and a.tobytes() == b.tobytes()


# -- the command ------------------------------------------------------------------------------
def write_net(folder, root, **extra):
    text = dir_ini(root, **extra) + SMALL_NET.format(outputs=3)
    (folder / "net.ini").write_text(text)


def test_command_learns_from_a_streamed_folder(tmp_path):
    make_dir_folder(tmp_path / "data", classes=3, per_class=12)
    write_net(tmp_path, tmp_path / "data")
    token = uuid.uuid4().hex
    status, out, err = run_subprocess(tmp_path, "net.ini", "--learn-epoch", "8", "--seed", "1",
                                      "--workers", "2", env={"DIRDB_TOKEN": token})
    assert status == 0, err
    assert "Learning database size: 18 images" in out and "Validation database size: 9" in out
    rate = float(re.findall(r"Final recognition rate: ([0-9.]+)%", out)[-1])
    assert rate >= 80, out[-2000:]
    assert os.path.isfile(tmp_path / "weights_validation" / "fc_weights.syntxt")
    assert_no_process_left(token)


@pytest.mark.parametrize("workers", ["0", "2"])
def test_command_stops_on_a_corrupt_image_with_one_line(tmp_path, workers):
    root, bad = corrupt_folder(tmp_path)
    write_net(tmp_path, root)
    token = uuid.uuid4().hex
    status, _, err = run_subprocess(tmp_path, "net.ini", "--learn-epoch", "1", "--workers",
                                    workers, env={"DIRDB_TOKEN": token}, timeout=120)
    assert status == 2
    assert error_line(err) == f"n2d2py: error: {bad}: {NOT_AN_IMAGE}"
    assert_no_process_left(token)
