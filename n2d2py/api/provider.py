"""``n2d2.provider.DataProvider``: batches of a database's stimuli through the transformations,
over our ``data.StimuliProvider`` (the pipeline the INI's ``[sp]`` builds).

``read_random_batch()`` draws ``batch_size`` stimuli of the current partition at random (with
replacement, as N2D2); ``read_batch(idx)`` reads the stimuli from position ``idx``; each starts
a new ``DeepNet`` (the graph of that batch). Batch draws and on-the-fly augmentation use
``global_variables.data_rng()``; the static transformations are computed once per partition.
"""
import numpy

from ..autograd import Variable
from ..data import StimuliProvider
from ..data.database import set_name
from .database import AbstractDatabase
from .errors import WrongInputType, WrongValue, check_type
from .globals import generate_name, global_variables
from .tensor import Tensor
from .transform import Composite, Transformation

PARTITIONS = ("Learn", "Validation", "Test", "Unpartitioned")


class Provider:
    """Base of the providers."""

    def get_name(self):
        return self._name

    def get_deepnet(self):
        return self._deepnet


class DataProvider(Provider):
    """``DataProvider(database, size=[W, H, C], random_read=False, batch_size=1)``."""

    def __init__(self, database, size, random_read=False, batch_size=1, composite_stimuli=False,
                 name=None):
        self._name = name or generate_name(self)
        check_type(self._name, "database", database, AbstractDatabase,
                   "an n2d2.database database (MNIST, ILSVRC2012, ...)")
        if not isinstance(size, (list, tuple)) or len(size) not in (2, 3) or not all(
                isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in size):
            raise WrongInputType(f"{self._name}: size must be [width, height, channels] "
                                 f"(positive ints), got {size!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise WrongValue(f"{self._name}: batch_size must be a positive int, got {batch_size!r}")
        if composite_stimuli:
            raise WrongValue(f"{self._name}: composite_stimuli=True (pixel-wise labels) is not "
                             f"supported by n2d2py")
        width, height = size[0], size[1]
        channels = size[2] if len(size) == 3 else 1
        self._database = database
        self._core = StimuliProvider(database.N2D2(), (channels, height, width), batch_size,
                                     rng=global_variables.build_rng(), name=self._name)
        self._transformations, self._partition = [], "Test"
        self._random_read, self._index = random_read, 0
        self._labels, self._deepnet = None, None
        self._order, self._cursor = None, 0

    def N2D2(self):
        return self._core

    # -- settings ----------------------------------------------------------------------------------
    def set_partition(self, partition):
        if partition not in PARTITIONS:
            raise WrongValue(f"{self._name}: partition={partition!r}: expected one of "
                             f"{', '.join(PARTITIONS)}")
        self._partition = partition

    def get_partition(self):
        return self._partition

    def set_reading_randomly(self, random_read):
        self._random_read = bool(random_read)

    def get_database(self):
        return self._database

    def get_size(self):
        c, h, w = self._core.size
        return [w, h, c]

    def get_batch_size(self):
        return self._core.batch_size

    def dims(self):
        return self.get_size() + [self.get_batch_size()]

    def shape(self):
        return list(reversed(self.dims()))

    def add_transformation(self, transformation):
        """A static transformation (computed once per partition), or each of a ``Composite``."""
        self._add(transformation, on_the_fly=False)

    def add_on_the_fly_transformation(self, transformation):
        """A transformation applied at every read (augmentation)."""
        self._add(transformation, on_the_fly=True)

    def _add(self, transformation, on_the_fly):
        check_type(self._name, "transformation", transformation, Transformation,
                   "an n2d2.transform transformation")
        parts = transformation.get_transformations() \
            if isinstance(transformation, Composite) else [transformation]
        for part in parts:
            self._core.add_transformation(part.N2D2(), on_the_fly)
            self._transformations.append(part)

    def get_transformations(self):
        return list(self._transformations)

    def normalize_stimuli(self):
        """Integer stimuli are scaled to [0, 1] already (the provider's implicit normalisation)."""

    # -- reading -------------------------------------------------------------------------------------
    def _size_of(self, partition):
        n = self._core.nb_stimuli(set_name(partition))
        if n == 0:
            raise WrongValue(f"{self._name}: the {partition} partition of the database is empty")
        return n

    def read_random_batch(self):
        n = self._size_of(self._partition)
        positions = global_variables.data_rng().integers(0, n, size=self.get_batch_size())
        return self._read(positions)

    def read_batch(self, idx=None):
        """The batch from position ``idx`` (None: the next one of ``set_batch``'s order)."""
        n = self._size_of(self._partition)
        if idx is None:
            if self._order is None:
                self.set_batch(shuffle=False)
            positions = self._order[self._cursor:self._cursor + self.get_batch_size()]
            self._cursor += len(positions)
            if not len(positions):
                raise WrongValue(f"{self._name}: every batch of {self._partition} was read "
                                 f"(call set_batch() to start again)")
            return self._read(positions)
        if isinstance(idx, bool) or not isinstance(idx, (int, numpy.integer)) or not 0 <= idx < n:
            raise WrongValue(f"{self._name}: read_batch(idx={idx!r}): expected a position in "
                             f"0..{n - 1} of the {self._partition} partition")
        return self._read(numpy.arange(idx, min(n, idx + self.get_batch_size())))

    def set_batch(self, shuffle=True):
        n = self._size_of(self._partition)
        self._order = global_variables.data_rng().permutation(n) if shuffle else numpy.arange(n)
        self._cursor = 0

    def all_batchs_provided(self):
        return self._order is None or self._cursor >= len(self._order)

    def _read(self, positions):
        from .deepnet import DeepNet
        name = set_name(self._partition)
        x = self._core.transform(name, numpy.asarray(positions), global_variables.data_rng())
        ids = self._core.database.partition(name)[numpy.asarray(positions)]
        self._labels = self._core.database.labels[ids]
        self._deepnet = DeepNet(provider=self)
        self._deepnet._input = Variable(x)
        self._deepnet._labels = self._labels
        return Tensor._wrap(self._deepnet._input, cell=self, deepnet=self._deepnet)

    def get_data(self):
        return None if self._deepnet is None else Tensor._wrap(self._deepnet._input, cell=self)

    def get_labels(self):
        return None if self._labels is None else Tensor.from_numpy(self._labels.astype(numpy.int32))

    def batch_number(self):
        return self._index

    def __iter__(self):
        self._index = 0
        return self

    def __next__(self):
        if self._index < self._size_of(self._partition) // self.get_batch_size():
            self._index += 1
            if self._random_read:
                return self.read_random_batch()
            return self.read_batch((self._index - 1) * self.get_batch_size())
        raise StopIteration

    def __str__(self):
        w, h, c = self.get_size()
        text = (f"'{self._name}' DataProvider(size=[{w}, {h}, {c}], "
                f"batch_size={self.get_batch_size()})")
        if self._transformations:
            text += "[Transformations=" + ", ".join(map(str, self._transformations)) + "]"
        return text


__all__ = ["Provider", "DataProvider"]
