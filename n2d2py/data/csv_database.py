"""``CSV_Database``: one stimulus per line of a text file, numbers and a label column (N2D2's).

Fields are separated by any run of ``,``, ``;``, space or tab. ``LabelColumn`` picks the label
field (negative: from the end; default -1, the last); every other field must be a number. Labels
are texts (quotes removed), numbered in order of first appearance. ``NbHeaderLines`` lines are
skipped, and empty lines. Each line must have as many fields as the first data line (N2D2 does not
check; here a short or long line is an error naming the file and line). A stimulus is a float32
row of F features: [sp] ``SizeX=F``, ``SizeY=1``, ``NbChannels=1``; float data skips the implicit
/255 normalisation. ``LoadMore`` (chaining sections) is not supported.

Partitioning (``TablePartitioning``, shared with ``NumPy_Database``) follows N2D2's CSV driver:
with ``PerLabelPartitioning=1`` (default) ``Learn``/``Validation``/``Test`` are fractions applied
per label (``EquivLabelPartitioning=1``: every label counts as many stimuli as the smallest one),
``Test`` defaults to 1 - Learn - Validation, and whatever is left over goes to Test; with
``PerLabelPartitioning=0`` they are stimulus *counts* (``Test`` default: the rest).
"""
import re

import numpy

from ..errors import DataError
from ..ini.convert import to_bool, to_float, to_int, to_str
from ..params import REQUIRED, Key
from .database import DATABASES, SETS, Database, read_text_lines

FIELDS = re.compile(r"[,; \t]+")


class TablePartitioning(Database):
    """The partition keys and rule of N2D2's CSV driver."""
    learn_fraction = Key("Learn", to_float, 0.6)
    validation_fraction = Key("Validation", to_float, 0.2)
    test_fraction = Key("Test", to_float, None, doc="default: the rest")
    per_label_partitioning = Key("PerLabelPartitioning", to_bool, True)
    equiv_label_partitioning = Key("EquivLabelPartitioning", to_bool, True)
    load_more = Key("LoadMore", to_str, "")

    def partition_table(self):
        if self.load_more:
            raise self.error(f"LoadMore is not supported by n2d2py's {type(self).__name__}",
                             key="LoadMore")
        learn, validation, test = self.learn_fraction, self.validation_fraction, self.test_fraction
        if self.per_label_partitioning:
            if learn + validation > 1.0:
                raise self.error(f"Learn ({learn:g}) + Validation ({validation:g}) cannot be "
                                 f"more than 1", key="Validation")
            test = 1.0 - learn - validation if test is None else test
            self.partition_stimuli_per_label(learn, validation, test,
                                             self.equiv_label_partitioning)
            self.partition_stimuli(0.0, 0.0, 1.0)
            return
        counts = [learn, validation]
        counts.append(len(self) - learn - validation if test is None else test)
        pool = self.sets["Unpartitioned"]
        for name, count in zip(SETS, counts):
            if count < 0 or count != int(count):
                raise self.error(f"with PerLabelPartitioning=0, {name} is a number of stimuli; "
                                 f"got {count:g} ({len(self)} stimuli)", key=name
                                 if self.section is not None and name in self.section else None)
            taken, pool = self._draw(pool, int(count))
            self.sets[name] = numpy.concatenate([self.sets[name], taken])
        self.sets["Unpartitioned"] = pool


@DATABASES.register("CSV_Database")
class CSV_Database(TablePartitioning):
    data_path = Key("DataPath", to_str, REQUIRED)
    label_column = Key("LabelColumn", to_int, -1)
    nb_header_lines = Key("NbHeaderLines", to_int, 0)

    def load(self):
        path = self.expand_path(self.data_path)
        rows, names, numbers = self.read(path)
        features = numpy.asarray(rows, numpy.float32)
        bad = ~numpy.isfinite(features).all(axis=1)
        if bad.any():
            raise DataError("a value is not a finite number (NaN or infinite)", file=path,
                            line=numbers[int(numpy.argmax(bad))])
        label_ids = {}
        labels = [label_ids.setdefault(name, len(label_ids)) for name in names]
        features = features.reshape(len(rows), 1, -1, 1)
        self.set_stimuli(features, labels, list(label_ids),
                         {"Unpartitioned": numpy.arange(len(rows))})
        self.partition_table()

    def read(self, path):
        """(feature rows, label texts, line numbers) of the file; errors name the file and line."""
        lines = read_text_lines(path, "numbers and a label per line")
        rows, names, numbers, width, first, column = [], [], [], None, None, None
        for number, line in enumerate(lines, 1):
            if number <= self.nb_header_lines or not line.strip():
                continue
            fields = [f for f in FIELDS.split(line.strip()) if f]
            if width is None:
                width, first = len(fields), number
                column = self.label_column + width if self.label_column < 0 else self.label_column
                if not 0 <= column < width:
                    raise DataError(f"LabelColumn={self.label_column} but line {number} has "
                                    f"{width} fields", file=path, line=number)
            if len(fields) != width:
                raise DataError(f"expected {width} fields (as line {first}), got {len(fields)}",
                                file=path, line=number)
            names.append(fields[column].strip("\"'"))
            numbers.append(number)
            values = fields[:column] + fields[column + 1:]
            try:
                rows.append([float(v) for v in values])
            except ValueError:
                bad = next(v for v in values if not is_number(v))
                raise DataError(f"unreadable value {bad[:40]!r} (expected a number; the label is "
                                f"column {column})", file=path, line=number) from None
        if not rows:
            raise DataError("no data line", file=path)
        return rows, names, numbers


def is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False
