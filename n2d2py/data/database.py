"""N2D2's ``Database``: stimuli (uint8 images), labels and the Learn/Validation/Test partitions.

The ``[database]`` section as N2D2 reads it (docs/DATA.md). A driver (``MNIST_IDX_Database``,
``CIFAR10_Database``, ``DIR_Database`` ...) reads its own keys, fills the store with
``set_stimuli`` and partitions the *Unpartitioned* ids with ``partition_stimuli`` or
``partition_stimuli_per_label``. Images stay uint8, (N, H, W) or
(N, H, W, C) in OpenCV's BGR order, so that the StimuliProvider reproduces N2D2's 8-bit pipeline.
"""
import os
import sys

import numpy

from ..errors import DataError, IniError
from ..ini.convert import enum, to_bool, to_str, to_uint
from ..io.files import regular_file_problem
from ..ini.evaluate import expand_env  # ${VAR} in path keys only (docs/INI.md §3)
from ..params import Key, Parameterizable, Registry

DATABASES = Registry("database")
SETS = ("Learn", "Validation", "Test")
_SET_ALIASES = {s.lower(): s for s in SETS + ("Unpartitioned",)}


def n2d2_data(path):
    """N2D2's default data root: ``$N2D2_DATA/path``, else
    ``/local/$USER/n2d2_data/path`` (``/local/n2d2_data/path`` without ``$USER``)."""
    root = os.environ.get("N2D2_DATA")
    if not root:
        user = os.environ.get("USER")
        root = f"/local/{user}/n2d2_data" if user else "/local/n2d2_data"
    return os.path.join(root, path)


def read_text_lines(path, expected):
    """The lines of a text file a database reads (label lists, annotations, CSV); a DataError
    naming the file, saying what was ``expected``, when it cannot be opened or is not text."""
    problem = regular_file_problem(path)
    if problem and problem.startswith("is not"):      # a FIFO would block: never opened
        raise DataError(f"cannot open the file ({problem}); expected {expected}", file=path)
    try:
        with open(path) as handle:
            return handle.read().splitlines()
    except OSError as exc:
        raise DataError(f"cannot open the file ({exc.strerror or exc}); expected {expected}",
                        file=path) from None
    except UnicodeDecodeError:
        raise DataError(f"not a text file; expected {expected}", file=path) from None


def set_name(name):
    """Canonical set name (``"learn"`` -> ``"Learn"``); anything else is a ValueError."""
    try:
        return _SET_ALIASES[str(name).lower()]
    except KeyError:
        raise ValueError(f"unknown stimuli set {name!r}; expected one of {', '.join(SETS)}") from None


def round_half_up(x):
    return int(numpy.floor(x + 0.5))


def round_half_down(x):
    return int(numpy.ceil(x - 0.5))


class Database(Parameterizable):
    """Base database: the generic keys every ``[database]`` accepts, the store and the partitions.

    ``images`` is a uint8 array (N, H, W[, C]) when all stimuli share one size, else a list of
    arrays; ``labels`` an int64 array (-1 = no label); ``label_names`` the names in label order.
    ``sets`` maps Learn/Validation/Test/Unpartitioned to arrays of stimulus ids (order matters:
    it is the draw order of N2D2's partitioning).
    """
    default_label = Key("DefaultLabel", to_str, "")
    rois_margin = Key("ROIsMargin", to_uint, 0)
    random_partitioning = Key("RandomPartitioning", to_bool, True)
    data_file_label = Key("DataFileLabel", to_bool, True)
    composite_label = Key("CompositeLabel", enum("None", "Auto", "Default", "Disjoint", "Combine"),
                          "Auto")
    target_data_path = Key("TargetDataPath", to_str, "")
    multi_channel_match = Key("MultiChannelMatch", to_str, "")
    multi_channel_replace = Key("MultiChannelReplace", to_str, "")

    def __init__(self, rng=None, **values):
        super().__init__(**values)
        self.rng = rng if rng is not None else numpy.random.default_rng(0)
        self.images = numpy.zeros((0, 0, 0), numpy.uint8)
        self.labels = numpy.zeros(0, numpy.int64)
        self.label_names = []
        self.sets = {name: numpy.zeros(0, numpy.int64) for name in SETS + ("Unpartitioned",)}
        self.section = None

    # -- loading ------------------------------------------------------------------------------
    def load(self):
        """Read the files and partition them; the base database is empty (no ``Type``)."""

    def set_stimuli(self, images, labels, label_names, sets):
        """Fill the store: ``sets`` maps a set name to stimulus ids (the others become empty)."""
        self.images = images
        self.labels = numpy.asarray(labels, numpy.int64)
        self.label_names = list(label_names)
        for name in self.sets:
            self.sets[name] = numpy.asarray(sets.get(name, ()), numpy.int64)

    def expand_path(self, text):
        """Env-expand a path key with the INI document's environment when built from one."""
        document = getattr(self.section, "document", None)
        if document is not None and hasattr(document, "expand_env"):
            return document.expand_env(text)
        return expand_env(text)

    def error(self, message, key=None):
        """A DataError naming the ``[database]`` section (and key) when built from an INI."""
        if self.section is not None:
            return self.section.error(message, key=key, error=DataError)
        return DataError(message, section="database", key=key)

    # -- access -------------------------------------------------------------------------------
    def __len__(self):
        return len(self.labels)

    @property
    def learn(self):
        return self.sets["Learn"]

    @property
    def validation(self):
        return self.sets["Validation"]

    @property
    def test(self):
        return self.sets["Test"]

    def partition(self, name):
        """Stimulus ids of set ``name`` (Learn, Validation, Test, Unpartitioned)."""
        return self.sets[set_name(name)]

    def nb_stimuli(self, name):
        return len(self.partition(name))

    @property
    def nb_labels(self):
        return len(self.label_names)

    def image(self, i):
        """Stimulus ``i`` as stored: uint8 (H, W) or (H, W, C) BGR."""
        return self.images[int(i)]

    def label(self, i):
        return int(self.labels[int(i)])

    def stack(self, ids):
        """Stimuli ``ids``: one uint8 array (n, H, W[, C]) when the store is uniform, else a list."""
        if isinstance(self.images, numpy.ndarray):
            return self.images[numpy.asarray(ids, numpy.int64)]
        return [self.image(i) for i in ids]

    # -- partitioning: N2D2's set sizes, sets filled Learn, Validation, Test ------------------
    def _draw(self, pool, n):
        """Take ``n`` ids out of ``pool``: uniformly without replacement when RandomPartitioning,
        else the first ``n`` in load order. Returns (taken, remaining pool)."""
        if n > len(pool):
            raise self.error(f"partition of {n} stimuli larger than the {len(pool)} available")
        if not self.random_partitioning:
            return pool[:n], pool[n:]
        picks = self.rng.choice(len(pool), size=n, replace=False)
        return pool[picks], numpy.delete(pool, picks)

    @staticmethod
    def partition_counts(nb_stimuli, learn, validation, test, cap=False):
        """(nLearn, nValidation, nTest) by N2D2's rounding; ``cap`` adds the per-label ``min``
        guards N2D2 uses against 2.4999/2.5001 float noise."""
        n_learn = round_half_up(nb_stimuli * learn)
        n_vt = round_half_down(nb_stimuli * (validation + test))
        if cap:
            n_vt = min(n_vt, nb_stimuli - n_learn)
        frac_val = validation / (validation + test) if validation > 0 else 0.0
        n_val = round_half_up(n_vt * frac_val)
        n_test = round_half_down(n_vt * (1.0 - frac_val))
        if cap:
            n_test = min(n_test, nb_stimuli - n_learn - n_val)
        return n_learn, n_val, n_test

    def check_fractions(self, learn, validation, test):
        """Each partition fraction in [0, 1] (``Validation=1.5`` would leave a negative Learn)."""
        for label, value in (("Validation", validation), ("Test", test), ("Learn", learn)):
            if not -1e-12 <= value <= 1.0 + 1e-12:
                raise self.error(f"{label} fraction {value:g} is not between 0 and 1 (fractions "
                                 f"Learn {learn:g}, Validation {validation:g}, Test {test:g})",
                                 key=label if self.section is not None and label in self.section
                                 else None)

    def partition_stimuli(self, learn, validation, test):
        """Move Unpartitioned ids into Learn, then Validation, then Test by the given fractions."""
        self.check_fractions(learn, validation, test)
        if learn + validation + test > 1.0 + 1e-12:
            raise self.error(f"partition fractions sum to {learn + validation + test} > 1")
        pool = self.sets["Unpartitioned"]
        counts = self.partition_counts(len(pool), learn, validation, test)
        for name, n in zip(SETS, counts):
            taken, pool = self._draw(pool, n)
            self.sets[name] = numpy.concatenate([self.sets[name], taken])
        self.sets["Unpartitioned"] = pool

    def partition_stimuli_per_label(self, learn, validation, test, equiv_label=True):
        """Same fractions applied to each label separately; with ``equiv_label`` every label
        counts as many stimuli as the smallest one (the surplus stays Unpartitioned)."""
        self.check_fractions(learn, validation, test)
        if learn + validation + test > 1.0 + 1e-12:
            raise self.error(f"partition fractions sum to {learn + validation + test} > 1")
        pool = self.sets["Unpartitioned"]
        per_label = [pool[self.labels[pool] == k] for k in range(self.nb_labels)]
        smallest = min((len(p) for p in per_label), default=0)
        taken_all = {name: [self.sets[name]] for name in SETS}
        left = []
        for ids in per_label:
            n = smallest if equiv_label else len(ids)
            for name, count in zip(SETS, self.partition_counts(n, learn, validation, test, cap=True)):
                taken, ids = self._draw(ids, count)
                taken_all[name].append(taken)
            left.append(ids)
        for name in SETS:
            self.sets[name] = numpy.concatenate(taken_all[name])
        rest = numpy.concatenate(left) if left else pool[:0]
        self.sets["Unpartitioned"] = pool[numpy.isin(pool, rest)]

    def summary(self):
        counts = ", ".join(f"{name} {self.nb_stimuli(name)}" for name in SETS)
        return f"{type(self).__name__}: {len(self)} stimuli, {self.nb_labels} labels ({counts})"


def notice(message):
    """One-line notice on stderr (N2D2 prints its notices on the console, not as errors)."""
    print(f"Notice: {message}", file=sys.stderr)


def database_from_section(section, rng=None, load=True):
    """Build (and, with ``load``, load and partition) the database of a ``[database]`` section
    (docs/DATA.md). ``Type`` picks the driver; every other key must be one of its parameters
    (unknown keys are fatal in N2D2: IniError naming the key). Without ``Type``, an empty one.
    ``rng`` (numpy Generator) draws the random partitions; default: seeded with 0.
    """
    type_name = section.get("Type", None)
    cls = Database if type_name is None else DATABASES.get(type_name.strip(), section)
    database = cls(rng=rng)
    database.section = section
    for key in section.keys():
        if key != "Type" and not key.startswith("_"):
            database.set_parameter(key, section.get(key), section)
    missing = database.missing_required()
    if missing:
        raise section.error(f"{type_name} needs key {', '.join(missing)}", key=missing[0])
    if load:
        database.load()
    return database


def database_from_ini(document, rng=None, load=True):
    """The database of an IniDocument's ``[database]`` section, or an empty one (with a warning)
    when there is none. ``[database.*]`` sub-sections (slicing, label filters) are not supported."""
    for sub in document.matching("database.*"):
        raise sub.error("database sub-sections (sortAndDropLabels, filterROIs, slicing) are not "
                        "supported by n2d2py", error=IniError)
    if "database" not in document:
        print("Warning: no [database] section: using an empty database", file=sys.stderr)
        return Database(rng=rng)
    return database_from_section(document.section("database"), rng, load)
