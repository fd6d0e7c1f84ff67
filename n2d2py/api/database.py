"""``n2d2.database``: MNIST, CIFAR10, CIFAR100, ILSVRC2012, GTSRB, DIR (N2D2's names and
arguments) over ``data/``'s drivers, partitioned with ``global_variables.build_rng()`` as the
INI's ``[database]`` is. MNIST and DIR load when made; the others on ``load(data_path, ...)``.
"""
import os

from ..data.cifar import CIFAR10_Database, CIFAR100_Database
from ..data.database import SETS, Database as EmptyDatabase
from ..data.dir_database import DIR_Database
from ..data.gtsrb import GTSRB_DIR_Database
from ..data.ilsvrc2012 import ILSVRC2012_Database
from ..data.mnist import MNIST_IDX_Database
from .errors import WrongValue
from .globals import global_variables
from .view import View

PARTITIONS = SETS + ("Unpartitioned",)


class AbstractDatabase(View):
    """What every database answers: ``get_nb_stimuli``, ``get_label_name``, ``load`` ..."""
    _skip = ("data_path", "label_path")

    def __init__(self, **config_parameters):
        super().__init__(**config_parameters)
        self._core.rng = global_variables.build_rng()

    def get_nb_stimuli(self, partition):
        if partition not in PARTITIONS:
            raise WrongValue(f"{self._describe()}: partition={partition!r}: expected one of "
                             f"{', '.join(PARTITIONS)}")
        return self._core.nb_stimuli(partition)

    def get_label_name(self, label_idx):
        names = self._core.label_names
        if not 0 <= label_idx < len(names):
            raise WrongValue(f"{self._describe()}: label {label_idx} out of 0..{len(names) - 1}")
        return names[label_idx]

    def get_partition_summary(self):
        counts = {p: self.get_nb_stimuli(p) for p in PARTITIONS}
        total = sum(counts.values())
        if not total:
            print("No stimulus in the database !")
            return
        print(f"Number of stimuli : {total}")
        for name, n in counts.items():
            print(f"{name + ' ':14s}: {n} stimuli ({round(100.0 * n / total, 2)}%)")

    def partition_stimuli(self, learn, validation, test):
        self._core.partition_stimuli(learn, validation, test)

    def load(self, data_path, label_path="", extract_ROIs=False):
        """Read the files under ``data_path`` (``label_path``: the label file some databases
        take), then partition them."""
        if extract_ROIs:
            raise WrongValue(f"{self._describe()}: extract_ROIs=True is not supported by n2d2py")
        self._core.data_path = os.fspath(data_path)
        if label_path:
            if "LabelPath" not in type(self._core).keys():
                raise WrongValue(f"{self._describe()}: takes no label_path")
            self._core.label_path = os.fspath(label_path)
        self._core.load()

    def __str__(self):
        return f"{type(self).__name__}: {self._core.summary()}"


class Database(AbstractDatabase):
    """An empty database (``load_data_in_memory`` is accepted: every stimulus is in memory)."""
    _core_class = EmptyDatabase

    def __init__(self, load_data_in_memory=False, **config_parameters):
        super().__init__(**config_parameters)


class MNIST(AbstractDatabase):
    """``MNIST(data_path, validation=0.0, ...)``: the IDX files under ``data_path``."""
    _core_class = MNIST_IDX_Database
    _renamed = {"validation": "validation_fraction"}

    def __init__(self, data_path, label_path="", extract_roi=False, **config_parameters):
        if label_path or extract_roi:
            raise WrongValue("MNIST: label_path and extract_roi are not used by MNIST's IDX files")
        super().__init__(**config_parameters)
        self._core.data_path = os.fspath(data_path)
        self._core.load()


class _Cifar(AbstractDatabase):
    _renamed = {"validation": "validation_fraction"}

    def load(self, data_path, label_path="", extract_ROIs=False):
        super().load(data_path, "", extract_ROIs)


class CIFAR10(_Cifar):
    """``CIFAR10(validation=0.0, use_test_for_validation=False)``, then ``load(data_path)``."""
    _core_class = CIFAR10_Database


class CIFAR100(_Cifar):
    """``CIFAR100(validation=0.0, use_coarse=False, use_test_for_validation=False)``."""
    _core_class = CIFAR100_Database


class ILSVRC2012(AbstractDatabase):
    """``ILSVRC2012(learn, use_validation_for_test=True, background_class=False,
    random_partitioning=True)``, then ``load(data_path, label_path=<synsets file>)``."""
    _core_class = ILSVRC2012_Database
    _renamed = {"learn": "learn_fraction"}

    def __init__(self, learn, **config_parameters):
        super().__init__(learn=learn, **config_parameters)


class GTSRB(AbstractDatabase):
    """``GTSRB(validation)``, then ``load(data_path)``."""
    _core_class = GTSRB_DIR_Database
    _renamed = {"validation": "validation_fraction"}

    def __init__(self, validation, **config_parameters):
        super().__init__(validation=validation, **config_parameters)


class DIR(AbstractDatabase):
    """``DIR(data_path, learn, test=None, validation=0.0, depth=1, label_depth=1,
    load_data_in_memory=False, ...)``: one sub-directory per label; lists and partitions at
    once (images are decoded when a batch needs them, or all at once with
    ``load_data_in_memory=True``)."""
    _core_class = DIR_Database
    _renamed = {"learn": "learn_fraction", "test": "test_fraction",
                "validation": "validation_fraction", "ignore_mask": "ignore_masks",
                "load_data_in_memory": "load_in_memory"}

    def __init__(self, data_path, learn, label_path="", **config_parameters):
        if label_path:
            raise WrongValue("DIR: label_path is not supported by n2d2py (labels are the "
                             "sub-directory names)")
        mask = config_parameters.get("ignore_mask")
        if isinstance(mask, (list, tuple)):
            config_parameters["ignore_mask"] = ";".join(mask)
        super().__init__(learn=learn, **config_parameters)
        self._core.data_path = os.fspath(data_path)
        self._core.load()


__all__ = ["AbstractDatabase", "Database", "MNIST", "CIFAR10", "CIFAR100", "ILSVRC2012",
           "GTSRB", "DIR"]
