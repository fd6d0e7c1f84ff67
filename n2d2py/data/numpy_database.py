"""``NumPy_Database``: stimuli and labels from NumPy files (n2d2py's own; N2D2 has none).

``DataPath`` is a ``.npz`` archive holding the stimuli under ``DataArray`` (default ``x``) and the
labels under ``LabelArray`` (default ``y``), or a ``.npy`` array of stimuli with the labels in
``LabelPath`` (a ``.npy``, or a ``.npz`` holding ``LabelArray``). Stimuli are (N, F) feature rows
(a 1 x F image, like CSV_Database), (N, H, W) grey images or (N, H, W, C) images with channels
last in OpenCV's order (BGR); ``Layout=NCHW`` reads (N, C, H, W) instead. uint8 and uint16 stimuli
keep N2D2's implicit normalisation (/255, /65535); any other type becomes float32, used as is.
Labels are whole numbers from 0; ``LabelNames`` (space-separated) names them, and a label outside
0 .. len(LabelNames)-1 is an error naming the file and the stimulus index; without it the labels
are named "0" .. "max".

A ``.npy`` file of stimuli is never loaded whole: each stimulus is read from the file when the
streaming loader needs it, so memory does not grow with the file. A ``.npz`` archive is read into
memory. Partitioning keys and rule are CSV_Database's (``Learn`` 0.6, ``Validation`` 0.2, ``Test``
the rest, per label; see ``csv_database.py``). Files are read by ``io/arrays.py``: numbers only,
never pickled objects.
"""
import os

import numpy

from ..errors import DataError
from ..ini.convert import enum, list_of, to_str
from ..io.arrays import read_array_layout, read_arrays
from ..params import REQUIRED, Key
from .csv_database import TablePartitioning
from .database import DATABASES

KEPT_TYPES = (numpy.uint8, numpy.uint16)


@DATABASES.register("NumPy_Database")
class NumPy_Database(TablePartitioning):
    data_path = Key("DataPath", to_str, REQUIRED)
    label_path = Key("LabelPath", to_str, "")
    data_array = Key("DataArray", to_str, "x")
    label_array = Key("LabelArray", to_str, "y")
    layout = Key("Layout", enum("NHWC", "NCHW"), "NHWC")
    label_names_key = Key("LabelNames", list_of(to_str), None)

    streaming = False

    def load(self):
        path = self.expand_path(self.data_path)
        if path.lower().endswith(".npz"):
            archive = self.archive(path)
            images = self.named(archive, self.data_array, path, "DataArray")
            shape = images.shape
            labels = self.read_labels(archive if not self.label_path else None, path)
            images = self.as_stimuli(images, path)
        else:
            shape, dtype, offset, c_order = read_array_layout(path)
            if not c_order:
                raise DataError("a Fortran-ordered array cannot be read row by row; save it "
                                "with numpy.save(path, numpy.ascontiguousarray(x))", file=path)
            self.check_shape(shape, path)
            self.source = (path, shape, numpy.dtype(dtype), offset)
            self.streaming = True
            images = None
            labels = self.read_labels(None, path)
        if len(labels) != shape[0]:
            where = self.expand_path(self.label_path) if self.label_path else path
            raise DataError(f"{len(labels)} labels for {shape[0]} stimuli", file=where)
        names = self.label_names_key or [str(k) for k in range(int(labels.max(initial=-1)) + 1)]
        self.set_stimuli(images, labels, names, {"Unpartitioned": numpy.arange(len(labels))})
        self.partition_table()

    # -- reading --------------------------------------------------------------------------------
    @staticmethod
    def archive(path):
        arrays = read_arrays(path)
        if not isinstance(arrays, dict):
            raise DataError("expected a .npz archive", file=path)
        return arrays

    def named(self, archive, name, path, key):
        if name not in archive:
            raise DataError(f"no array '{name}' in the archive (it holds "
                            f"{', '.join(sorted(archive)) or 'nothing'}; set {key})", file=path)
        return archive[name]

    def read_labels(self, archive, data_path):
        """Labels as int64, checked: whole numbers in 0 .. nb labels - 1."""
        if archive is not None:
            where = data_path
            labels = self.named(archive, self.label_array, data_path, "LabelArray")
        elif self.label_path:
            where = self.expand_path(self.label_path)
            loaded = read_arrays(where)
            labels = self.named(loaded, self.label_array, where, "LabelArray") \
                if isinstance(loaded, dict) else loaded
        else:
            raise self.error("a .npy DataPath needs LabelPath (a .npy of labels)", key="DataPath")
        labels = numpy.asarray(labels)
        if labels.ndim != 1:
            raise DataError(f"labels must be one number per stimulus, got shape {labels.shape}",
                            file=where)
        if labels.dtype.kind not in "iub" and not (labels.dtype.kind == "f"
                                                   and numpy.all(labels == numpy.round(labels))):
            raise DataError(f"labels must be whole numbers, got {labels.dtype}", file=where)
        labels = labels.astype(numpy.int64)
        limit = len(self.label_names_key) if self.label_names_key else None
        bad = (labels < 0) | (labels >= limit if limit is not None else False)
        if bad.any():
            i = int(numpy.argmax(bad))
            expected = f"0 to {limit - 1} (LabelNames has {limit} names)" if limit else "0 or more"
            raise DataError(f"label {labels[i]} of stimulus {i} out of range: expected {expected}",
                            file=where)
        return labels

    def check_shape(self, shape, path):
        if len(shape) not in (2, 3, 4) or (self.layout == "NCHW" and len(shape) != 4):
            expected = ("(N, C, H, W)" if self.layout == "NCHW"
                        else "(N, F), (N, H, W) or (N, H, W, C)")
            raise DataError(f"stimuli array of shape {shape}: expected {expected}", file=path)

    def as_stimuli(self, images, path):
        """(N, H, W, C) in the stored type (uint8/uint16) or float32."""
        self.check_shape(images.shape, path)
        return to_hwc(images, self.layout)

    # -- access (streaming .npy) ----------------------------------------------------------------
    def image(self, i):
        if not self.streaming:
            return self.images[int(i)]
        path, shape, dtype, offset = self.source
        row = int(numpy.prod(shape[1:], dtype=numpy.int64)) * dtype.itemsize
        fd = os.open(path, os.O_RDONLY)
        try:
            data = os.pread(fd, row, offset + int(i) * row)
        finally:
            os.close(fd)
        if len(data) != row:
            raise DataError(f"file shorter than its header says (stimulus {int(i)} missing)",
                            file=path)
        sample = numpy.frombuffer(data, dtype).reshape((1,) + tuple(shape[1:]))
        return to_hwc(sample, self.layout)[0]

    def stack(self, ids):
        if not self.streaming:
            return super().stack(ids)
        return [self.image(i) for i in ids]

    def __len__(self):
        return len(self.labels)


def to_hwc(images, layout):
    """(N, F) -> (N, 1, F, 1); (N, H, W) -> (N, H, W, 1); NCHW -> NHWC; types kept or float32."""
    if images.ndim == 2:
        images = images[:, None, :, None]
    elif images.ndim == 3:
        images = images[..., None]
    elif layout == "NCHW":
        images = images.transpose(0, 2, 3, 1)
    if images.dtype not in KEPT_TYPES:
        images = images.astype(numpy.float32)
    return numpy.ascontiguousarray(images)
