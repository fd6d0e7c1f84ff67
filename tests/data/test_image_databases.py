"""ILSVRC2012_Database, GTSRB_DIR_Database, CSV_Database and NumPy_Database: N2D2's layouts,
labels and partitions, and their one-line errors on bad data (each names the file and line)."""
import os

import cv2
import numpy
import pytest
from image_folders import SYNSETS, make_gtsrb, make_ilsvrc

from n2d2py.data import database_from_ini
from n2d2py.errors import DataError
from n2d2py.ini import parse_ini_text


def load(text, seed=0):
    return database_from_ini(parse_ini_text(text), rng=numpy.random.default_rng(seed))


def ilsvrc(root, extra=""):
    return load(f"[database]\nType=ILSVRC2012_Database\nDataPath={root}\n"
                f"LabelPath={root}/synsets.txt\n{extra}")


def names(db, ids):
    return [os.path.relpath(db.file_name(i)) for i in ids]


# -- ILSVRC2012 ------------------------------------------------------------------------------------
def test_ilsvrc_layout_labels_and_sets(tmp_path):
    val_labels = make_ilsvrc(tmp_path)
    db = ilsvrc(tmp_path, "RandomPartitioning=0\nLearn=1.0")
    assert db.streaming and db.label_names == list(SYNSETS)
    assert (db.nb_stimuli("Learn"), db.nb_stimuli("Validation"), db.nb_stimuli("Test")) == (24, 8, 8)
    # train files in load order: synsets in label-file order, files sorted in each folder
    expected = [os.path.join(tmp_path, "train", s, f"{s}_{j}.JPEG") for s in SYNSETS for j in range(6)]
    assert [db.file_name(i) for i in db.learn] == expected
    assert db.labels[db.learn].tolist() == [k for k in range(4) for _ in range(6)]
    # val.txt order and labels, twice: Validation, then Test (UseValidationForTest=1)
    val = [os.path.join(tmp_path, "val", f"ILSVRC2012_val_{j + 1:08d}.JPEG") for j in range(8)]
    assert [db.file_name(i) for i in db.validation] == val == [db.file_name(i) for i in db.test]
    assert db.labels[db.validation].tolist() == val_labels == db.labels[db.test].tolist()
    path = db.file_name(db.learn[7])
    numpy.testing.assert_array_equal(db.image(db.learn[7]), cv2.imread(path, cv2.IMREAD_UNCHANGED))


def test_ilsvrc_random_learn_fraction_background_and_no_validation_test(tmp_path):
    make_ilsvrc(tmp_path)
    db = ilsvrc(tmp_path, "Learn=0.5\nBackgroundClass=1\nUseValidationForTest=0")
    assert db.label_names == ["background", *SYNSETS]
    assert (db.nb_stimuli("Learn"), db.nb_stimuli("Validation"), db.nb_stimuli("Test")) == (12, 8, 12)
    train = set(range(24))
    assert set(db.learn.tolist()) | set(db.test.tolist()) == train       # Test = train rest only
    assert not set(db.learn.tolist()) & set(db.test.tolist())
    assert sorted(db.learn.tolist()) != db.learn.tolist() or db.learn.tolist() != list(range(12))
    for i in db.validation:                 # val.txt indices shifted by one (drawn in random order)
        j = int(db.file_name(i)[-13:-5]) - 1
        assert db.labels[i] == j % 4 + 1
    other = ilsvrc(tmp_path, "Learn=0.5\nBackgroundClass=1\nUseValidationForTest=0")
    numpy.testing.assert_array_equal(db.learn, other.learn)              # seeded draw
    assert db.labels[db.learn].min() >= 1


def test_ilsvrc_synset_folder_without_files_creates_no_label(tmp_path):
    """N2D2 creates a folder's label only when it holds files (labels then shift)."""
    make_ilsvrc(tmp_path, synsets=SYNSETS[:2])
    os.makedirs(tmp_path / "train" / "n09999999")
    (tmp_path / "synsets.txt").write_text("n09999999\n" + "\n".join(SYNSETS[:2]) + "\n")
    db = ilsvrc(tmp_path, "Learn=1.0\nRandomPartitioning=0")
    assert db.label_names == list(SYNSETS[:2])


@pytest.mark.parametrize("damage, fragments", [
    (lambda root: os.remove(root / "synsets.txt"), ["synsets.txt", "cannot open the file", "expected the synset names"]),
    (lambda root: (root / "synsets.txt").write_text(""), ["synsets.txt", "no synset"]),
    (lambda root: (root / "synsets.txt").write_text("n01440764 n07777777\n"),
     ["n07777777", "cannot open the database directory"]),
    (lambda root: os.remove(root / "val.txt"), ["val.txt", "cannot open the file", "expected the validation labels"]),
    (lambda root: (root / "val.txt").write_text("ILSVRC2012_val_00000001.JPEG 0\nx.JPEG 4\n"),
     ["val.txt:2", "label index 4 out of range", "4 synsets (0 to 3)"]),
    (lambda root: (root / "val.txt").write_text("ILSVRC2012_val_00000001.JPEG zero\n"),
     ["val.txt:1", "expected '<file> <label index>'"]),
    (lambda root: (root / "val.txt").write_text("missing.JPEG 1\n"),
     ["val.txt:1", "'missing.JPEG' not found"]),
])
def test_ilsvrc_bad_label_files_are_one_line_errors(tmp_path, damage, fragments):
    make_ilsvrc(tmp_path)
    damage(tmp_path)
    with pytest.raises(DataError) as info:
        ilsvrc(tmp_path, "Learn=1.0")
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_ilsvrc_default_data_root_is_n2d2_data(tmp_path, monkeypatch):
    make_ilsvrc(tmp_path / "ILSVRC2012")
    monkeypatch.setenv("N2D2_DATA", str(tmp_path))
    db = load("[database]\nType=ILSVRC2012_Database\nRandomPartitioning=0\nLearn=1.0")
    assert db.nb_stimuli("Learn") == 24


# -- GTSRB ------------------------------------------------------------------------------------------
def gtsrb(root, extra=""):
    return load(f"[database]\nType=GTSRB_DIR_Database\nDataPath={root}\n{extra}")


def test_gtsrb_labels_from_annotations_and_per_label_validation(tmp_path):
    truth = make_gtsrb(tmp_path)
    db = gtsrb(tmp_path, "Validation=0.25")
    assert db.label_names == ["0", "1", "2"]
    assert (db.nb_stimuli("Learn"), db.nb_stimuli("Validation"), db.nb_stimuli("Test")) == (18, 6, 9)
    for name in ("Learn", "Validation", "Test"):
        for i in db.partition(name):
            assert db.labels[i] == truth[db.file_name(i)][1]
    assert numpy.bincount(db.labels[db.validation]).tolist() == [2, 2, 2]   # 8 * 0.25 per class
    assert all("Final_Test" in db.file_name(i) for i in db.test)


def test_gtsrb_extract_rois_crops_to_the_box(tmp_path):
    truth = make_gtsrb(tmp_path)
    db = gtsrb(tmp_path, "ExtractROIs=1")
    i = db.test[0]
    (x1, y1, x2, y2), _ = truth[db.file_name(i)]
    full = cv2.imread(db.file_name(i), cv2.IMREAD_UNCHANGED)
    numpy.testing.assert_array_equal(db.image(i), full[y1:y2, x1:x2])


@pytest.mark.parametrize("damage, fragments", [
    (lambda root: os.remove(root / "GT-final_test.csv"), ["GT-final_test.csv", "cannot open the file", "GTSRB annotations"]),
    (lambda root: os.remove(root / "Final_Training" / "Images" / "00001" / "GT-00001.csv"),
     ["00001", "no .csv annotation file"]),
    (lambda root: (root / "GT-final_test.csv").write_text("00000.ppm;40;40;1;1;9;9\n"),
     ["GT-final_test.csv:1", "expected 8 fields"]),
    (lambda root: (root / "GT-final_test.csv").write_text("00000.ppm;40;40;1;1;9;9;0\n"),
     ["00001.ppm", "no annotation line"]),
])
def test_gtsrb_bad_annotations_are_one_line_errors(tmp_path, damage, fragments):
    make_gtsrb(tmp_path)
    damage(tmp_path)
    with pytest.raises(DataError) as info:
        gtsrb(tmp_path)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


# -- CSV ---------------------------------------------------------------------------------------------
CSV_ROWS = [(k % 3, [k, 2.5 * k, -k]) for k in range(30)]


def write_csv(path, rows=CSV_ROWS, header="a,b,c,label\n", label_first=False):
    lines = [header.rstrip("\n")] if header else []
    for label, values in rows:
        fields = [f"{v:g}" for v in values]
        fields = [f"c{label}"] + fields if label_first else fields + [f"c{label}"]
        lines.append(";".join(fields[:2]) + " \t" + ",".join(fields[2:]))   # mixed separators
    path.write_text("\n\n".join(lines) + "\n")


def csv(path, extra=""):
    return load(f"[database]\nType=CSV_Database\nDataPath={path}\nNbHeaderLines=1\n{extra}")


def test_csv_rows_labels_and_per_label_partition(tmp_path):
    write_csv(tmp_path / "d.csv")
    db = csv(tmp_path / "d.csv", "RandomPartitioning=0")
    assert db.label_names == ["c0", "c1", "c2"]
    assert db.images.shape == (30, 1, 3, 1) and db.images.dtype == numpy.float32
    numpy.testing.assert_array_equal(db.images[7, 0, :, 0], [7, 17.5, -7])
    assert db.labels[7] == 1
    # per label: 10 each -> 6 Learn, 2 Validation, the rest (2) to Test
    assert (db.nb_stimuli("Learn"), db.nb_stimuli("Validation"), db.nb_stimuli("Test")) == (18, 6, 6)
    assert db.labels[db.learn].tolist() == [0] * 6 + [1] * 6 + [2] * 6


def test_csv_label_column_and_counts_without_per_label(tmp_path):
    write_csv(tmp_path / "d.csv", label_first=True, header="")
    db = load(f"[database]\nType=CSV_Database\nDataPath={tmp_path / 'd.csv'}\nLabelColumn=0\n"
              f"PerLabelPartitioning=0\nLearn=20\nValidation=4")
    numpy.testing.assert_array_equal(db.images[2, 0, :, 0], [2, 5, -2])
    assert (db.nb_stimuli("Learn"), db.nb_stimuli("Validation"), db.nb_stimuli("Test")) == (20, 4, 6)


@pytest.mark.parametrize("line, fragments", [
    ("1;2 c0", ["d.csv:4", "expected 4 fields (as line 2), got 3"]),
    ("1;2;3;4;c0", ["d.csv:4", "got 5"]),
    ("1;two;3;c0", ["d.csv:4", "unreadable value 'two'"]),
    ("1;nan;3;c0", ["d.csv:4", "not a finite number"]),
])
def test_csv_bad_rows_name_file_and_line(tmp_path, line, fragments):
    path = tmp_path / "d.csv"
    path.write_text("a,b,c,label\n1,2,3,c0\n4,5,6,c1\n" + line + "\n")
    with pytest.raises(DataError) as info:
        csv(path)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


# -- NumPy ---------------------------------------------------------------------------------------------
def numpy_db(extra):
    return load(f"[database]\nType=NumPy_Database\nLearn=0.5\nValidation=0.25\n{extra}")


def test_numpy_npz_in_memory_and_npy_streamed_alike(tmp_path, rng):
    x = rng.integers(0, 256, (24, 6, 5, 3), dtype=numpy.uint8)
    y = numpy.arange(24) % 4
    numpy.savez(tmp_path / "d.npz", x=x, y=y)
    numpy.save(tmp_path / "x.npy", x)
    numpy.save(tmp_path / "y.npy", y)
    a = numpy_db(f"DataPath={tmp_path / 'd.npz'}\nLabelNames=a b c d")
    b = numpy_db(f"DataPath={tmp_path / 'x.npy'}\nLabelPath={tmp_path / 'y.npy'}")
    assert not a.streaming and b.streaming
    assert a.label_names == ["a", "b", "c", "d"] and b.label_names == ["0", "1", "2", "3"]
    for name in ("Learn", "Validation", "Test"):
        numpy.testing.assert_array_equal(a.partition(name), b.partition(name))
    # per label of 6: Learn 3; 3 left for Validation + Test split 1.5 / 1.5 -> 2 (half up), 1
    assert (a.nb_stimuli("Learn"), a.nb_stimuli("Validation"), a.nb_stimuli("Test")) == (12, 8, 4)
    for i in (0, 5, 23):
        numpy.testing.assert_array_equal(b.image(i), x[i])
        numpy.testing.assert_array_equal(a.image(i), x[i])


def test_numpy_layouts_and_types(tmp_path, rng):
    x = rng.normal(size=(8, 3, 4, 5))
    numpy.savez(tmp_path / "d.npz", x=x, y=numpy.zeros(8, numpy.int32))
    db = numpy_db(f"DataPath={tmp_path / 'd.npz'}\nLayout=NCHW")
    assert db.images.shape == (8, 4, 5, 3) and db.images.dtype == numpy.float32
    numpy.testing.assert_array_equal(db.images[1], x[1].transpose(1, 2, 0).astype(numpy.float32))
    numpy.savez(tmp_path / "f.npz", features=x.reshape(8, -1), labels=numpy.ones(8))
    db = numpy_db(f"DataPath={tmp_path / 'f.npz'}\nDataArray=features\nLabelArray=labels")
    assert db.images.shape == (8, 1, 60, 1) and db.labels.tolist() == [1] * 8


@pytest.mark.parametrize("labels, extra, fragments", [
    (numpy.array([0, 1, 2, 5]), "LabelNames=a b c", ["label 5 of stimulus 3 out of range",
                                                     "0 to 2 (LabelNames has 3 names)"]),
    (numpy.array([0, -1, 2, 1]), "", ["label -1 of stimulus 1 out of range"]),
    (numpy.array([0, 1, 2]), "", ["3 labels for 4 stimuli"]),
    (numpy.array([0.5, 1, 2, 1]), "", ["whole numbers"]),
])
def test_numpy_bad_labels_name_the_label_file(tmp_path, labels, extra, fragments):
    numpy.save(tmp_path / "x.npy", numpy.zeros((4, 2, 2), numpy.uint8))
    numpy.save(tmp_path / "y.npy", labels)
    with pytest.raises(DataError) as info:
        numpy_db(f"DataPath={tmp_path / 'x.npy'}\nLabelPath={tmp_path / 'y.npy'}\n{extra}")
    assert str(tmp_path / "y.npy") in str(info.value)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)


def test_numpy_missing_arrays_and_pickles_are_refused(tmp_path):
    numpy.savez(tmp_path / "d.npz", images=numpy.zeros((4, 2)), y=numpy.zeros(4))
    with pytest.raises(DataError, match="no array 'x' in the archive.*images, y.*DataArray"):
        numpy_db(f"DataPath={tmp_path / 'd.npz'}")
    numpy.save(tmp_path / "o.npy", numpy.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="object arrays are refused"):
        numpy_db(f"DataPath={tmp_path / 'o.npy'}\nLabelPath={tmp_path / 'o.npy'}")


# -- truncated JPEGs -----------------------------------------------------------------------------------
def test_truncated_jpeg_detection(rng):
    from n2d2py.data.image_files import jpeg_complete
    image = rng.integers(0, 256, (64, 80, 3), dtype=numpy.uint8)
    plain = cv2.imencode(".jpg", image)[1].tobytes()
    progressive = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
    thumbnail = cv2.imencode(".jpg", image[::8, ::8])[1].tobytes()        # ends with its own EOI
    app1 = b"Exif\0\0" + thumbnail
    with_thumbnail = plain[:2] + b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1 + plain[2:]
    assert cv2.imdecode(numpy.frombuffer(with_thumbnail, numpy.uint8), cv2.IMREAD_UNCHANGED) is not None
    for data in (plain, progressive, with_thumbnail, plain + b"\0" * 5000 + b"camera trailer"):
        assert jpeg_complete(data)
    for data in (plain, progressive, with_thumbnail):
        for cut in (10, len(data) // 3, len(data) - 2):
            assert not jpeg_complete(data[:cut]), cut


def test_file_list_packs_paths_in_chunks():
    from n2d2py.data.image_files import FileList
    files = FileList()
    files.CHUNK = 3
    paths = [f"/data/train/n{k:08d}/é_{k}.JPEG" for k in range(10)]
    files.extend(paths[:4])
    assert files[1] == paths[1] and len(files) == 4
    files.extend(iter(paths[4:]))
    assert len(files) == 10 and list(files) == paths
    assert files.nbytes == sum(len(p.encode()) for p in paths) + 11 * 8
