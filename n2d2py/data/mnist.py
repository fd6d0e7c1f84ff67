"""``MNIST_IDX_Database`` and ``Fashion_MNIST_IDX_Database``, N2D2's keys (docs/INI.md §7).

``train-*`` files -> Learn + Validation (``Validation`` fraction), ``t10k-*`` -> Test, in file
order. Labels are "0".."9". When ``DataPath`` holds no IDX files and is the default one, the
bundled 5000-digit subset (``n2d2py/data/mnist5k``, CC BY-SA 3.0) is used instead, with a notice.
"""
import os

import numpy

from ..ini.convert import to_float, to_str
from ..params import Key
from .database import DATABASES, Database, n2d2_data, notice
from .idx import find_idx, read_idx

BUNDLED_MNIST = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mnist5k")
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@DATABASES.register("MNIST_IDX_Database")
class MNIST_IDX_Database(Database):
    """MNIST in IDX format (raw or ``.gz``): 28x28 uint8 digits, labels "0".."9"."""
    validation_fraction = Key("Validation", to_float, 0.0)
    data_path = Key("DataPath", to_str, None, doc="default: $N2D2_DATA/mnist")
    default_folder = "mnist"
    bundled = BUNDLED_MNIST

    def folder(self):
        """The folder to read: ``DataPath`` (env-expanded), or the default data root; the
        bundled subset when the default folder has no IDX files."""
        if self.data_path is not None:
            return self.expand_path(self.data_path)
        folder = n2d2_data(self.default_folder)
        if self.bundled and not all(find_idx(folder, f) for f in FILES):
            notice(f"{folder} not found: using the bundled 5000-digit MNIST subset (CC BY-SA 3.0)")
            return self.bundled
        return folder

    def read_pair(self, folder, images_stem, labels_stem):
        paths = [find_idx(folder, stem) for stem in (images_stem, labels_stem)]
        for stem, path in zip((images_stem, labels_stem), paths):
            if path is None:
                raise self.error(f"MNIST file {os.path.join(folder, stem)}[.gz] not found",
                                 key="DataPath")
        images, labels = read_idx(paths[0], expect_ndim=3), read_idx(paths[1], expect_ndim=1)
        if len(images) != len(labels):
            raise self.error(f"{paths[0]} has {len(images)} images but {paths[1]} has "
                             f"{len(labels)} labels")
        if images.dtype != numpy.uint8:
            raise self.error(f"{paths[0]}: expected uint8 digits")
        if labels.max(initial=0) > 9 or labels.min(initial=0) < 0:   # a signed IDX: -128
            raise self.error(f"{paths[1]}: expected labels 0..9, found {labels.min()}.."
                             f"{labels.max()}")
        return images, labels

    def load(self):
        folder = self.folder()
        train_x, train_y = self.read_pair(folder, FILES[0], FILES[1])
        test_x, test_y = self.read_pair(folder, FILES[2], FILES[3])
        n_train, n_test = len(train_x), len(test_x)
        self.set_stimuli(numpy.concatenate([train_x, test_x]),
                         numpy.concatenate([train_y, test_y]).astype(numpy.int64),
                         [str(d) for d in range(10)],
                         {"Unpartitioned": numpy.arange(n_train),
                          "Test": numpy.arange(n_train, n_train + n_test)})
        self.partition_stimuli(1.0 - self.validation_fraction, self.validation_fraction, 0.0)


@DATABASES.register("Fashion_MNIST_IDX_Database")
class Fashion_MNIST_IDX_Database(MNIST_IDX_Database):
    """Fashion-MNIST: same IDX files, default folder ``fashion-mnist/data/fashion``; no bundled
    fallback (the bundled subset is MNIST digits)."""
    default_folder = "fashion-mnist/data/fashion"
    bundled = None
