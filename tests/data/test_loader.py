"""The streaming loader (data/loader.py): same batches bit for bit whatever the worker count, a
stream restarted on the tail of its order draws the same augmentations (resume), the ImageNet
chain per image against OpenCV/NumPy written out by hand, bad images stopped or skipped, worker
errors and deaths reported with the file, workers stopped."""
import os
import signal
import time

import cv2
import numpy
import pytest
from image_folders import imagenet_ini, make_ilsvrc

from n2d2py.data import StimuliProvider, database_from_ini, loader
from n2d2py.errors import DataError
from n2d2py.ini import parse_ini_text


def provider(root, database="", sp="", seed=1):
    document = parse_ini_text(imagenet_ini(root, database, sp))
    db = database_from_ini(document, rng=numpy.random.default_rng(seed))
    return StimuliProvider.from_ini(document, db, numpy.random.default_rng(seed))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("ilsvrc")
    make_ilsvrc(root, per_class=7)
    return root


@pytest.fixture(autouse=True)
def stop_workers():
    yield
    loader.close_all()


def epoch(sp, workers, seed=5, name="Learn", shuffle=True):
    sp.workers = workers
    return list(sp.batches(name, shuffle, numpy.random.default_rng(seed)))


def test_same_batches_bit_for_bit_for_0_1_2_workers(folder):
    sp = provider(folder)
    runs = {w: epoch(sp, w) for w in (0, 1, 2)}
    assert len(runs[0]) == 6 and runs[0][-1][0].shape == (3, 3, 24, 24)     # 28 = 5 * 5 + 3
    for w in (1, 2):
        for (x0, l0, i0), (x1, l1, i1) in zip(runs[0], runs[w]):
            assert x0.dtype == numpy.float32 and x0.tobytes() == x1.tobytes()
            numpy.testing.assert_array_equal(l0, l1)
            numpy.testing.assert_array_equal(i0, i1)
    # the augmentations are random: another seed crops / flips differently
    other = epoch(sp, 2, seed=6)
    assert not all(numpy.array_equal(a[0], b[0]) for a, b in zip(runs[0], other))
    assert sorted(numpy.concatenate([b[2] for b in runs[2]]).tolist()) == list(range(28))


def test_stream_leaves_the_generator_alone_and_a_tail_restarts_identically(folder):
    sp = provider(folder)
    sp.workers = 2
    rng = numpy.random.default_rng(9)
    state = rng.bit_generator.state
    order = rng.permutation(sp.nb_stimuli("Learn"))
    after = rng.bit_generator.state
    full = list(sp._batches("Learn", order, rng))
    assert rng.bit_generator.state == after != state          # the stream drew nothing
    tail = list(sp._batches("Learn", order[2 * sp.batch_size:], rng))   # -l mid-epoch
    assert len(tail) == len(full) - 2
    for (x, labels, ids), (y, labels2, ids2) in zip(full[2:], tail):
        assert x.tobytes() == y.tobytes()
        numpy.testing.assert_array_equal(ids, ids2)


def test_validation_chain_per_image_matches_opencv_by_hand(folder):
    """Rescale 32 keep-aspect cover (sizes truncated), centre PadCrop 32 (reflect 101), BGR,
    (x - mean) * 0.017 in float32, slice at (4, 4): N2D2's ImageNet chain at a small size."""
    sp = provider(folder)
    sp.workers = 2
    x, labels, ids = next(iter(sp.batches("Validation", False)))
    for row, i in enumerate(ids):
        image = cv2.imread(sp.database.file_name(i), cv2.IMREAD_UNCHANGED)
        h, w = image.shape[:2]
        ratio = max(32 / w, 32 / h)
        image = cv2.resize(image, (int(ratio * w), int(ratio * h)), interpolation=cv2.INTER_LINEAR)
        h, w = image.shape[:2]
        top, left = -(-(32 - h) // 2), -(-(32 - w) // 2)
        image = image[max(0, -top):, max(0, -left):][:32, :32]
        image = cv2.copyMakeBorder(image, max(0, top), max(0, 32 - h - top), max(0, left),
                                   max(0, 32 - w - left), cv2.BORDER_REFLECT_101)
        expected = (image.astype(numpy.float32) - numpy.float32([103.94, 116.78, 123.68]))
        expected = (expected * numpy.float32(0.017))[4:28, 4:28].transpose(2, 0, 1)
        assert x[row].tobytes() == expected.tobytes()


def damaged(tmp_path):
    root = tmp_path / "bad"
    make_ilsvrc(root)
    truncated = root / "train" / SYN(1) / f"{SYN(1)}_2.JPEG"
    truncated.write_bytes(truncated.read_bytes()[:300])
    garbage = root / "train" / SYN(3) / f"{SYN(3)}_0.JPEG"
    garbage.write_bytes(b"not an image at all")
    return root, str(truncated), str(garbage)


def SYN(k):
    from image_folders import SYNSETS
    return SYNSETS[k]


@pytest.mark.parametrize("workers", [0, 2])
def test_bad_images_stop_by_default_naming_the_first_in_order(tmp_path, workers):
    root, truncated, garbage = damaged(tmp_path)
    sp = provider(root)
    with pytest.raises(DataError) as info:
        epoch(sp, workers, shuffle=False)
    assert str(info.value) == f"{truncated}: truncated JPEG (300 bytes, no end-of-image marker)"


def test_bad_images_skipped_on_request_and_counted(tmp_path):
    root, truncated, garbage = damaged(tmp_path)
    runs = {}
    for workers in (0, 2):
        sp = provider(root, sp="SkipBadImages=1")
        runs[workers] = epoch(sp, workers)
        assert sorted(sp.skipped) == sorted([truncated, garbage])
        assert "cannot decode" in sp.skipped[garbage]
    ids = numpy.concatenate([b[2] for b in runs[0]])
    assert len(ids) == 22 and len({sp.database.file_name(i) for i in ids} & {truncated, garbage}) == 0
    for a, b in zip(runs[0], runs[2]):
        assert a[0].tobytes() == b[0].tobytes()


def test_a_transformation_error_in_a_worker_names_the_image(folder):
    sp = provider(folder, sp="")
    sp.static[0].width = sp.static[0].height = 12    # slices of 24 from 12-pixel images
    sp.static[1].width = sp.static[1].height = 12
    with pytest.raises(DataError) as info:
        epoch(sp, 2)
    message = str(info.value)
    assert "SliceExtraction" in message or "slice 24x24 larger" in message
    assert "while reading" in message and ".JPEG" in message


def test_workers_restart_on_a_new_count_and_stop_at_close(folder):
    sp = provider(folder)
    epoch(sp, 1)
    first = sp._pool.processes
    epoch(sp, 2)
    assert all(not p.is_alive() for p in first) and len(sp._pool.processes) == 2
    second = sp._pool.processes
    loader.close_all()
    assert all(not p.is_alive() for p in second)
    assert len(epoch(sp, 2)) == 6                        # a closed pool is replaced


def test_a_pool_dropped_without_close_takes_its_workers_with_it(folder):
    """A provider garbage-collected with its pool open (a test, a notebook cell) leaves no
    worker: they ignore SIGTERM, and the interpreter's exit would otherwise wait for them."""
    import gc
    sp = provider(folder)
    sp.workers = 2
    next(iter(sp.batches("Learn", True, numpy.random.default_rng(1))))
    workers = list(sp._pool.processes)
    assert all(p.is_alive() for p in workers)
    del sp
    gc.collect()
    assert not any(p.is_alive() for p in workers)


def test_a_process_ends_with_its_pool_open(folder):
    """Interpreter exit with workers running: multiprocessing's exit handler terminates and
    joins its children, but loader workers ignore SIGTERM; n2d2py's handler must run first
    (the process used to hang here, after a whole test suite had passed)."""
    import subprocess
    import sys
    import textwrap
    code = textwrap.dedent(f"""
        import numpy
        from n2d2py.data import StimuliProvider, database_from_ini
        from n2d2py.ini import parse_ini_text
        from image_folders import imagenet_ini
        document = parse_ini_text(imagenet_ini({str(folder)!r}, "", ""))
        db = database_from_ini(document, rng=numpy.random.default_rng(1))
        sp = StimuliProvider.from_ini(document, db, numpy.random.default_rng(1))
        sp.workers = 2
        next(iter(sp.batches("Learn", True, numpy.random.default_rng(1))))
        print("batch read", flush=True)
    """)
    here = os.path.dirname(os.path.abspath(__file__))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=env)
    assert done.returncode == 0 and done.stdout.strip() == "batch read", done.stderr


def test_close_all_also_stops_workers_of_pools_no_longer_tracked(folder):
    sp = provider(folder)
    epoch(sp, 1)
    workers = list(sp._pool.processes)
    loader._POOLS.discard(sp._pool)      # as if the pool had left the registry
    loader.close_all()
    assert not any(p.is_alive() for p in workers)


def test_a_superseded_iterator_says_so(folder):
    sp = provider(folder)
    sp.workers = 1
    old = iter(sp.batches("Learn", True, numpy.random.default_rng(1)))
    next(old)
    assert len(list(sp.batches("Learn", True, numpy.random.default_rng(2)))) == 6
    with pytest.raises(RuntimeError, match="superseded"):
        next(old)


def test_a_worker_killed_is_reported(folder):
    sp = provider(folder)
    sp.workers = 2
    batches = iter(sp.batches("Learn", True, numpy.random.default_rng(1)))
    next(batches)
    victim = sp._pool.processes[0]
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(5)
    with pytest.raises(DataError, match=r"worker died \(exit code -9"):
        for _ in range(20):
            next(batches)
            time.sleep(0.05)
