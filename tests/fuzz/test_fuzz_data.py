"""Fuzzing data files: IDX (raw and gzip, from the bundled ``n2d2py/data/mnist5k``) and CIFAR
binary records, read directly and through the INI databases (``MNIST_IDX_Database``,
``CIFAR10_Database``, ``CIFAR100_Database`` with ``DataPath`` on a damaged folder).

Each read ends in arrays consistent with the header (IDX) or record size (CIFAR), or in a
``DataError``/``N2D2Error`` naming the file. A database that loads has every label inside its
label names: a damaged label byte must not build a silently wrong data set.
"""
import functools
import gzip
import pathlib
import tempfile

import numpy
from hypothesis import given, strategies as st

from fuzzing import budget, count_case, outcome
from n2d2py.data.cifar import PIXELS, read_cifar_records
from n2d2py.data.database import database_from_section
from n2d2py.data.idx import read_idx, write_idx
from n2d2py.data.mnist import BUNDLED_MNIST, FILES
from n2d2py.errors import N2D2Error
from n2d2py.ini import parse_ini_text

SAMPLES = 12


@functools.lru_cache(maxsize=None)
def small_mnist():
    """{stem: IDX bytes (raw)} of the first SAMPLES digits of the bundled subset."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for stem in FILES:
            array = read_idx(str(pathlib.Path(BUNDLED_MNIST) / (stem + ".gz")))[:SAMPLES]
            path = pathlib.Path(tmp) / stem
            write_idx(str(path), array)
            out[stem] = path.read_bytes()
    return out


@st.composite
def damaged_bytes(draw, data):
    """``data`` with 0-4 byte-level mutations, header-aware for the first 16 bytes."""
    data = bytearray(data)
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["flip", "payload", "payload", "header", "dim", "truncate",
                                     "extend", "delete"]))
        position = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "payload" and len(data) > 16:       # a pixel or a label (labels > 9 too)
            data[draw(st.integers(16, len(data) - 1))] = draw(st.integers(0, 255))
        elif kind == "flip" and data:
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "header" and len(data) >= 4:
            data[draw(st.integers(0, 3))] = draw(st.sampled_from([0, 1, 3, 8, 9, 0x0B, 0x0C, 0x0D,
                                                                  0x0E, 0x0F, 0xFF]))
        elif kind == "dim" and len(data) >= 8:
            dim = 4 + 4 * draw(st.integers(0, max(0, min(data[3], 3) - 1)))
            value = draw(st.sampled_from([0, 1, SAMPLES - 1, SAMPLES + 1, 2 ** 31, 2 ** 32 - 1]))
            data[dim:dim + 4] = value.to_bytes(4, "big")
        elif kind == "truncate":
            del data[position:]
        elif kind == "extend":
            data += draw(st.binary(min_size=1, max_size=32))
        elif kind == "delete" and data:
            del data[position]
    return bytes(data)


def write(path, data, compress, gzip_cut):
    if compress:
        data = gzip.compress(data)
        if gzip_cut:
            data = data[:max(0, len(data) - gzip_cut)]
        path = path.with_name(path.name + ".gz")
    path.write_bytes(data)
    return path


@budget(0.1)
@given(st.sampled_from(FILES), st.data(), st.booleans(), st.sampled_from([0, 0, 1, 9, 40]))
def test_damaged_idx_file(stem, data, compress, gzip_cut):
    count_case("idx damaged files")
    raw = data.draw(damaged_bytes(small_mnist()[stem]))
    with tempfile.TemporaryDirectory() as tmp:
        path = write(pathlib.Path(tmp) / stem, raw, compress, gzip_cut)
        array = outcome("idx: read_idx", read_idx, str(path), data.draw(st.sampled_from([None, 1, 3])))
        if not isinstance(array, N2D2Error):
            header = 4 + 4 * raw[3]
            assert array.size * array.dtype.itemsize == len(raw) - header
            assert array.shape == tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big")
                                        for i in range(raw[3]))


def load_database(kind, folder):
    document = parse_ini_text(f"[database]\nType={kind}\nDataPath={folder}\nValidation=0.2\n",
                              "/tmp/fuzz.ini", env={})
    database = database_from_section(document.section("database"), numpy.random.default_rng(1))
    return database


def check_labels(database):
    """Every label of a loaded database names one of its classes."""
    labels = numpy.asarray(getattr(database, "labels", []))
    names = getattr(database, "label_names", None)
    if labels.size and names:
        assert labels.min() >= 0 and labels.max() < len(names), \
            f"labels {labels.min()}..{labels.max()} but {len(names)} label names"


@budget(0.1)
@given(st.sampled_from(FILES), st.data(), st.booleans())
def test_mnist_database_on_damaged_folder(stem, data, compress):
    count_case("idx MNIST database folders")
    raw = data.draw(damaged_bytes(small_mnist()[stem]))
    with tempfile.TemporaryDirectory() as tmp:
        for other, content in small_mnist().items():
            if other != stem:
                (pathlib.Path(tmp) / other).write_bytes(content)
        write(pathlib.Path(tmp) / stem, raw, compress, 0)
        database = outcome("idx: MNIST_IDX_Database", load_database, "MNIST_IDX_Database", tmp)
        if not isinstance(database, N2D2Error):
            check_labels(database)


# -- CIFAR -----------------------------------------------------------------------------------
def cifar_records(count, label_bytes, labels, seed):
    rng = numpy.random.default_rng(seed)
    rows = [bytes(labels[:label_bytes]) + rng.integers(0, 256, PIXELS, numpy.uint8).tobytes()
            for _ in range(count)]
    return b"".join(rows)


@st.composite
def cifar_file(draw, label_bytes):
    labels = draw(st.lists(st.integers(0, 255) | st.integers(0, 9), min_size=2, max_size=2))
    data = bytearray(cifar_records(draw(st.integers(0, 3)), label_bytes, labels, 0))
    kind = draw(st.sampled_from(["ok", "truncate", "extend", "label"]))
    if kind == "truncate":
        del data[draw(st.integers(0, len(data))):]
    elif kind == "extend":
        data += draw(st.binary(min_size=1, max_size=40))
    elif kind == "label" and data:
        data[0] = draw(st.integers(0, 255))
    return bytes(data)


@budget(0.1)
@given(st.sampled_from([1, 2]), st.data())
def test_cifar_records(label_bytes, data):
    count_case("cifar record files")
    raw = data.draw(cifar_file(label_bytes))
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "data_batch_1.bin"
        path.write_bytes(raw)
        result = outcome("cifar: read_cifar_records", read_cifar_records, str(path), label_bytes)
        if not isinstance(result, N2D2Error):
            labels, images = result
            assert len(labels) * (label_bytes + PIXELS) == len(raw)
            assert images.shape == (len(labels), 32, 32, 3)


@budget(0.1)
@given(st.sampled_from(["CIFAR10_Database", "CIFAR100_Database"]), st.data())
def test_cifar_database_on_damaged_folder(kind, data):
    count_case("cifar database folders")
    label_bytes = 1 if kind == "CIFAR10_Database" else 2
    names = ([f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
             if label_bytes == 1 else ["train.bin", "test.bin"])
    damaged = data.draw(st.sampled_from(names + ["none"]))
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            content = data.draw(cifar_file(label_bytes)) if name == damaged else \
                cifar_records(1, label_bytes, [3, 5], 1)
            (pathlib.Path(tmp) / name).write_bytes(content)
        database = outcome("cifar: database", load_database, kind, tmp)
        if not isinstance(database, N2D2Error):
            check_labels(database)
