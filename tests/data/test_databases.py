"""Databases: partition arithmetic, MNIST (files and bundled subset), CIFAR
binary layout, DIR_Database, INI errors."""
import os

import cv2
import numpy
import pytest

from n2d2py.data import DATABASES, database_from_ini
from n2d2py.data.database import Database, round_half_down, round_half_up
from n2d2py.data.idx import write_idx
from n2d2py.errors import DataError, IniError
from n2d2py.ini import parse_ini_text


def unpartitioned(n, labels=None, random=True, seed=0):
    db = Database(rng=numpy.random.default_rng(seed), random_partitioning=random)
    labels = numpy.zeros(n, numpy.int64) if labels is None else numpy.asarray(labels)
    db.set_stimuli(numpy.zeros((n, 2, 2), numpy.uint8), labels,
                   [str(k) for k in range(labels.max() + 1)], {"Unpartitioned": numpy.arange(n)})
    return db


def test_rounding_helpers():
    assert [round_half_up(x) for x in (2.5, 2.4999, -0.5, 3.0)] == [3, 2, 0, 3]
    assert [round_half_down(x) for x in (2.5, 2.5001, 0.5, 3.0)] == [2, 3, 0, 3]


@pytest.mark.parametrize("n, fractions, counts", [
    (5000, (0.8, 0.2, 0.0), (4000, 1000, 0)),
    (60000, (0.8, 0.2, 0.0), (48000, 12000, 0)),
    (5, (0.5, 0.5, 0.0), (3, 2, 0)),            # 2.5 -> 3 (half up) ; 2.5 -> 2 (half down)
    (5, (0.3, 0.3, 0.4), (2, 1, 2)),            # nVT = 3.5 -> 3; nVal = round_up(3*0.3/0.7=1.29)
    (10, (0.6, 0.0, 0.0), (6, 0, 0)),
])
def test_partition_counts(n, fractions, counts):
    db = unpartitioned(n)
    db.partition_stimuli(*fractions)
    assert (db.nb_stimuli("Learn"), db.nb_stimuli("Validation"), db.nb_stimuli("Test")) == counts
    everything = numpy.concatenate([db.learn, db.validation, db.test, db.sets["Unpartitioned"]])
    assert sorted(everything.tolist()) == list(range(n))          # no id lost or duplicated


def test_random_partitioning_is_seeded_and_load_order_otherwise():
    a, b, c = unpartitioned(100, seed=3), unpartitioned(100, seed=3), unpartitioned(100, seed=4)
    for db in (a, b, c):
        db.partition_stimuli(0.7, 0.3, 0.0)
    numpy.testing.assert_array_equal(a.validation, b.validation)
    assert not numpy.array_equal(a.validation, c.validation)
    assert not numpy.array_equal(numpy.sort(a.learn), numpy.arange(70))
    ordered = unpartitioned(100, random=False)
    ordered.partition_stimuli(0.7, 0.3, 0.0)
    numpy.testing.assert_array_equal(ordered.learn, numpy.arange(70))
    numpy.testing.assert_array_equal(ordered.validation, numpy.arange(70, 100))


def test_partition_per_label_equiv():
    labels = [0] * 10 + [1] * 6 + [2] * 8
    db = unpartitioned(24, labels)
    db.partition_stimuli_per_label(0.5, 0.25, 0.25, equiv_label=True)   # 6 per label counted
    for name, per_label in (("Learn", 3), ("Validation", 2), ("Test", 1)):
        assert numpy.bincount(db.labels[db.partition(name)], minlength=3).tolist() == [per_label] * 3
    assert numpy.bincount(db.labels[db.sets["Unpartitioned"]]).tolist() == [4, 0, 2]
    db = unpartitioned(24, labels)
    db.partition_stimuli_per_label(0.5, 0.5, 0.0, equiv_label=False)
    assert numpy.bincount(db.labels[db.learn]).tolist() == [5, 3, 4]


def test_mnist_bundled_fallback(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("N2D2_DATA", str(tmp_path))
    db = DATABASES.get("MNIST_IDX_Database")()
    db.load()
    assert f"{tmp_path}/mnist not found: using the bundled 5000-digit MNIST subset" in capsys.readouterr().err
    assert (db.nb_stimuli("Learn"), db.nb_stimuli("Validation"), db.nb_stimuli("Test")) == (4000, 0, 1000)
    assert numpy.bincount(db.labels[db.learn]).tolist() == [400] * 10
    assert numpy.bincount(db.labels[db.test]).tolist() == [100] * 10
    assert db.images.dtype == numpy.uint8 and db.images.shape == (5000, 28, 28)
    assert db.label_names == [str(d) for d in range(10)]
    numpy.testing.assert_array_equal(db.test, numpy.arange(4000, 5000))   # Test keeps file order
    assert db.label(db.test[576]) == 3                                     # oracle digit


def test_mnist_from_ini_with_idx_files(tmp_path, rng):
    folder = tmp_path / "m"
    folder.mkdir()
    train, test = rng.integers(0, 256, (50, 28, 28), dtype=numpy.uint8), rng.integers(0, 256, (7, 28, 28), dtype=numpy.uint8)
    write_idx(str(folder / "train-images-idx3-ubyte"), train)
    write_idx(str(folder / "train-labels-idx1-ubyte.gz"), numpy.arange(50, dtype=numpy.uint8) % 10)
    write_idx(str(folder / "t10k-images-idx3-ubyte.gz"), test)
    write_idx(str(folder / "t10k-labels-idx1-ubyte"), numpy.arange(7, dtype=numpy.uint8))
    os.environ["N2D2PY_TEST_ROOT"] = str(tmp_path)
    doc = parse_ini_text("[database]\nType=MNIST_IDX_Database\nDataPath=${N2D2PY_TEST_ROOT}/m\n"
                         "Validation=0.2\nRandomPartitioning=0\n")
    db = database_from_ini(doc)
    assert (len(db.learn), len(db.validation), len(db.test)) == (40, 10, 7)
    numpy.testing.assert_array_equal(db.image(db.validation[0]), train[40])
    numpy.testing.assert_array_equal(db.image(db.test[6]), test[6])
    assert db.label(db.test[6]) == 6


def test_unknown_database_key_is_fatal():
    doc = parse_ini_text("[database]\nType=MNIST_IDX_Database\nValidaton=0.2\n")
    with pytest.raises(IniError, match="Validaton") as info:
        database_from_ini(doc)
    assert "did you mean 'Validation'" in str(info.value)
    with pytest.raises(IniError, match="unknown database type 'MNIST_Database'"):
        database_from_ini(parse_ini_text("[database]\nType=MNIST_Database\n"))


def test_no_database_section_gives_empty_database(capsys):
    db = database_from_ini(parse_ini_text("[sp]\nSizeX=2\nSizeY=2\n"))
    assert len(db) == 0 and db.nb_stimuli("Learn") == 0
    assert "no [database] section" in capsys.readouterr().err


def cifar_record(label_bytes, r, g, b):
    return bytes(label_bytes) + bytes([r] * 1024 + [g] * 1024 + [b] * 1024)


def test_cifar10_binary_layout_is_bgr(tmp_path):
    for i in range(1, 6):
        (tmp_path / f"data_batch_{i}.bin").write_bytes(
            b"".join(cifar_record([k % 10], 10 * i, k, 200) for k in range(4)))
    (tmp_path / "test_batch.bin").write_bytes(cifar_record([7], 1, 2, 3))
    (tmp_path / "batches.meta.txt").write_text("airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\n"
                                               "horse\nship\ntruck\n\n")
    doc = parse_ini_text(f"[database]\nType=CIFAR10_Database\nDataPath={tmp_path}\nValidation=0.25\n")
    db = database_from_ini(doc)
    assert (len(db.learn), len(db.validation), len(db.test)) == (15, 5, 1)
    assert db.images.shape == (21, 32, 32, 3) and db.label_names[7] == "horse"
    assert db.image(db.test[0])[5, 9].tolist() == [3, 2, 1]              # B, G, R
    assert db.label(db.test[0]) == 7
    assert not list(tmp_path.glob("*.ppm"))                               # no side effect


def test_cifar100_fine_and_coarse(tmp_path):
    (tmp_path / "train.bin").write_bytes(cifar_record([3, 42], 0, 0, 0) * 2)
    (tmp_path / "test.bin").write_bytes(cifar_record([5, 99], 0, 0, 9))
    fine = database_from_ini(parse_ini_text(f"[database]\nType=CIFAR100_Database\nDataPath={tmp_path}\n"))
    coarse = database_from_ini(parse_ini_text(
        f"[database]\nType=CIFAR100_Database\nDataPath={tmp_path}\nUseCoarse=1\n"))
    assert fine.label(fine.test[0]) == 99 and coarse.label(coarse.test[0]) == 5
    assert fine.nb_labels == 100 and coarse.nb_labels == 20


def test_cifar_truncated_file(tmp_path):
    (tmp_path / "train.bin").write_bytes(cifar_record([0, 0], 0, 0, 0)[:-1])
    with pytest.raises(DataError, match="3074-byte record"):
        database_from_ini(parse_ini_text(f"[database]\nType=CIFAR100_Database\nDataPath={tmp_path}\n"))


@pytest.mark.parametrize("keys, expected", [
    ("Depth=-1\nLabelDepth=2\nLabelName=misc\nValidExtensions=png jpg\n",
     [("top.png", "misc"), ("a/1.png", "misc"), ("a/x/2.png", "a/x"), ("a/x/y/3.jpg", "a/x"),
      ("b/4.PNG", "misc")]),
    ("", [("top.png", None), ("a/1.png", "a"), ("b/4.PNG", "b"), ("b/6.bmp", "b")]),
])
def test_dir_database_labels_depths_and_extensions(tmp_path, keys, expected):
    """Depth first, a folder's files (sorted) before its folders; the label is the first
    LabelDepth folders, LabelName (or none) above them; ValidExtensions in any case."""
    for name in ("top.png", "a/1.png", "a/x/2.png", "a/x/y/3.jpg", "a/x/5.bmp", "b/4.PNG",
                 "b/6.bmp", "c/notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".txt"):
            (tmp_path / name).write_text("text")
        else:
            cv2.imwrite(str(tmp_path / name), numpy.zeros((2, 2), numpy.uint8))
    db = database_from_ini(parse_ini_text(f"[database]\nType=DIR_Database\nDataPath={tmp_path}\n"
                                          f"Learn=1.0\nPerLabelPartitioning=0\n{keys}"))
    assert db.file_names == [str(tmp_path / name) for name, _ in expected]
    assert [db.label_names[k] if k >= 0 else None for k in db.labels] == [l for _, l in expected]
    assert db.label_names == sorted({l for _, l in expected if l})


@pytest.mark.parametrize("in_memory", [0, 1])
def test_dir_database(tmp_path, in_memory):
    """Streamed (LoadInMemory=0: nothing decoded at load) or decoded once and kept."""
    for k, name in enumerate(["cat", "dog"]):
        (tmp_path / name).mkdir()
        for i in range(10 + 2 * k):
            image = numpy.full((6, 5, 3), (k, i, 100), numpy.uint8)
            cv2.imwrite(str(tmp_path / name / f"{i:02d}.png"), image)
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    doc = parse_ini_text(f"[database]\nType=DIR_Database\nDataPath={tmp_path}\nLearn=0.6\n"
                         f"Validation=0.2\nLoadInMemory={in_memory}\n")
    db = database_from_ini(doc)
    assert db.label_names == ["cat", "dog"] and len(db) == 22
    assert db.streaming == (not in_memory)
    assert db.images.shape == ((22, 6, 5, 3) if in_memory else (0, 0, 0))
    assert db.file_names[11] == str(tmp_path / "dog" / "01.png")
    for name, count in (("Learn", 6), ("Validation", 2), ("Test", 2)):   # 10 per label (equiv)
        assert numpy.bincount(db.labels[db.partition(name)]).tolist() == [count, count]
    stored = db.image(11)           # dog/01.png, sorted order
    assert db.label(11) == 1 and stored[0, 0].tolist() == [1, 1, 100]
