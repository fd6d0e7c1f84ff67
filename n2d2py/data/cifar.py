"""``CIFAR10_Database`` and ``CIFAR100_Database``, binary versions, N2D2's keys.

Each record is the label byte(s) then 3072 bytes: the red, green and blue 32x32 planes, row-major.
Images are stored (N, 32, 32, 3) in OpenCV's **BGR** order, as N2D2 holds them. Unlike N2D2, no
``.ppm`` copy of every image is written next to the data (N2D2 writes one the first time it
reads the set; n2d2py never writes into a data folder).
"""
import os

import numpy

from ..errors import DataError
from ..ini.convert import to_bool, to_float, to_str
from ..params import Key
from .database import DATABASES, Database, n2d2_data

PIXELS = 3 * 32 * 32


def read_cifar_records(path, nb_label_bytes, nb_classes=None):
    """(labels (N, nb_label_bytes) uint8, images (N, 32, 32, 3) BGR uint8) from a .bin file.
    ``nb_classes``: one class count per label byte (CIFAR-100: coarse 20, fine 100); a label
    byte at or above it is a DataError naming the file and the record."""
    record = nb_label_bytes + PIXELS
    try:
        raw = numpy.fromfile(path, numpy.uint8)
    except OSError as exc:
        raise DataError(f"cannot read CIFAR file: {exc}", file=path) from None
    if len(raw) == 0 or len(raw) % record:
        raise DataError(f"CIFAR file size {len(raw)} bytes is not a positive multiple of the "
                        f"{record}-byte record (truncated or wrong CIFAR version?)", file=path)
    raw = raw.reshape(-1, record)
    for column, count in enumerate(nb_classes or ()):
        bad = numpy.flatnonzero(raw[:, column] >= count)
        if bad.size:
            which = ("coarse label", "fine label")[column] if nb_label_bytes == 2 else "label"
            raise DataError(f"record {int(bad[0])} (byte offset {int(bad[0]) * record + column}): "
                            f"{which} {int(raw[bad[0], column])} is not one of the {count} "
                            f"classes (0..{count - 1}); {bad.size} such record(s)", file=path)
    rgb = raw[:, nb_label_bytes:].reshape(-1, 3, 32, 32)
    return raw[:, :nb_label_bytes], numpy.ascontiguousarray(rgb[:, ::-1].transpose(0, 2, 3, 1))


def read_label_names(path, count):
    """Non-empty lines of a label-name file, or "0".."count-1" when the file is absent."""
    if not os.path.isfile(path):
        return [str(i) for i in range(count)]
    with open(path, encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()]


class _CIFARDatabase(Database):
    validation_fraction = Key("Validation", to_float, 0.0)
    use_test_for_validation = Key("UseTestForValidation", to_bool, False)
    data_path = Key("DataPath", to_str, None)
    default_folder = None
    names_file = None

    def folder(self):
        return self.expand_path(self.data_path) if self.data_path is not None else n2d2_data(self.default_folder)

    def read(self, name, nb_classes):
        path = os.path.join(self.folder(), name)
        if not os.path.isfile(path):
            raise self.error(f"CIFAR file {path} not found", key="DataPath")
        return read_cifar_records(path, len(nb_classes), nb_classes)

    def check_names(self, labels, names, names_file):
        """Every label must have a name (a short label-name file would leave classes unnamed)."""
        if len(labels) and int(labels.max()) >= len(names):
            raise DataError(f"{len(names)} label names but the records use label "
                            f"{int(labels.max())}",
                            file=os.path.join(self.folder(), names_file) if names_file else None)

    def store(self, train, test, label_column, label_names):
        """Train -> Learn/Validation by ``Validation``; test -> Test (and -> Validation too with
        ``UseTestForValidation``, so the test batch doubles as the validation set)."""
        (train_y, train_x), (test_y, test_x) = train, test
        n_train, n_test = len(train_x), len(test_x)
        test_ids = numpy.arange(n_train, n_train + n_test)
        labels = numpy.concatenate([train_y[:, label_column], test_y[:, label_column]])
        self.check_names(labels, label_names, self.names_file)
        self.set_stimuli(numpy.concatenate([train_x, test_x]), labels, label_names, {"Unpartitioned": numpy.arange(n_train), "Test": test_ids})
        validation = 0.0 if self.use_test_for_validation else self.validation_fraction
        self.partition_stimuli(1.0 - validation, validation, 0.0)
        if self.use_test_for_validation:
            self.sets["Validation"] = test_ids.copy()


@DATABASES.register("CIFAR10_Database")
class CIFAR10_Database(_CIFARDatabase):
    """CIFAR-10: ``data_batch_1..5.bin`` -> Learn/Validation, ``test_batch.bin`` -> Test."""
    default_folder = "cifar-10-batches-bin"

    def load(self):
        batches = [self.read(f"data_batch_{i}.bin", (10,)) for i in range(1, 6)]
        train = tuple(numpy.concatenate(parts) for parts in zip(*batches))
        self.names_file = "batches.meta.txt"
        names = read_label_names(os.path.join(self.folder(), self.names_file), 10)
        self.store(train, self.read("test_batch.bin", (10,)), 0, names)


@DATABASES.register("CIFAR100_Database")
class CIFAR100_Database(_CIFARDatabase):
    """CIFAR-100: ``train.bin``/``test.bin``, fine labels (or coarse with ``UseCoarse``)."""
    use_coarse = Key("UseCoarse", to_bool, False)
    default_folder = "cifar-100-binary"

    def load(self):
        column = 0 if self.use_coarse else 1          # record = coarse byte, fine byte, pixels
        self.names_file = "coarse_label_names.txt" if self.use_coarse else "fine_label_names.txt"
        names = read_label_names(os.path.join(self.folder(), self.names_file),
                                 20 if self.use_coarse else 100)
        self.store(self.read("train.bin", (20, 100)), self.read("test.bin", (20, 100)), column,
                   names)
