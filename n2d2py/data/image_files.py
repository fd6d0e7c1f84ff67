"""Databases of image files read on demand: the file list is built up front, pixels are decoded
only when a stimulus is asked for (by the streaming loader's workers, ``data/loader.py``).

``ImageFileDatabase`` is the base of ``ILSVRC2012_Database``, ``GTSRB_DIR_Database`` and
``DIR_Database`` (which may also decode everything once: ``decode_all``, ``LoadInMemory=1``): it keeps
the paths in a ``FileList`` (one byte buffer and offsets, so that 1.28 M ImageNet paths take
~100 MB and forked workers share them without touching Python objects), appends stimuli in load
order to the *Unpartitioned* set as N2D2's ``loadDir``/``loadFile`` do, and decodes with
``decode_image`` (OpenCV ``IMREAD_UNCHANGED``, as N2D2's ``ImageDataFile``). A JPEG without its
end-of-image marker is refused as truncated: OpenCV would decode it with a grey lower part and
only print a libjpeg warning.
"""
import os

import numpy

from ..errors import DataError
from ..io.files import regular_file_problem
from .database import Database

# N2D2's ImageDataFile extensions (the files loadDir accepts in a class folder)
IMAGE_EXTENSIONS = ("bmp", "dib", "jpeg", "jpg", "jpe", "jp2", "png", "pbm", "pgm", "ppm", "sr",
                    "ras", "tiff", "tif")
JPEG_START, JPEG_END = b"\xff\xd8", b"\xff\xd9"


class FileList:
    """Append-only list of paths stored as UTF-8 bytes in one array with offsets. Appends are
    packed into byte chunks every ``CHUNK`` paths (Python strings cost ~3x their bytes) and the
    chunks joined once, on first access: listing 1000 class folders copies the list once."""
    CHUNK = 1 << 16

    def __init__(self):
        self._pending, self._chunks, self._count = [], [], 0
        self._buffer, self._offsets = numpy.zeros(0, numpy.uint8), numpy.zeros(1, numpy.int64)

    def extend(self, paths):
        for path in paths:
            self._pending.append(os.fsencode(path))
            self._count += 1
            if len(self._pending) >= self.CHUNK:
                self._pack()

    def _pack(self):
        if self._pending:
            lengths = numpy.fromiter(map(len, self._pending), numpy.int64, len(self._pending))
            self._chunks.append((numpy.frombuffer(b"".join(self._pending), numpy.uint8), lengths))
            self._pending = []

    def join(self):
        self._pack()
        if self._chunks:
            ends = self._offsets[-1] + numpy.cumsum(numpy.concatenate([c[1] for c in self._chunks]))
            self._buffer = numpy.concatenate([self._buffer] + [c[0] for c in self._chunks])
            self._offsets = numpy.concatenate([self._offsets, ends])
            self._chunks = []

    def __len__(self):
        return self._count

    def __getitem__(self, i):
        if self._chunks or self._pending:
            self.join()
        start, end = self._offsets[i], self._offsets[i + 1]
        return os.fsdecode(self._buffer[start:end].tobytes())

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    @property
    def nbytes(self):
        self.join()
        return self._buffer.nbytes + self._offsets.nbytes


def read_bytes(path):
    problem = regular_file_problem(path)
    if problem and problem.startswith("is not"):      # a FIFO would block the worker
        raise DataError(f"cannot read the image ({problem})", file=path)
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise DataError(f"cannot read the image ({exc.strerror or exc})", file=path) from None


def jpeg_complete(data):
    """Whether a JPEG's image data reaches its end-of-image marker. Header segments are skipped
    by their lengths (an EXIF thumbnail has its own marker), then the marker is searched after
    the first scan, where a 0xFF byte of image data is always followed by 0x00 or a restart
    marker: bytes after it (camera trailers) are allowed. Odd headers are left to the decoder."""
    pos, size = 2, len(data)
    while pos + 4 <= size:
        if data[pos] != 0xFF:
            return True
        marker = data[pos + 1]
        if marker == 0xFF:                       # fill byte
            pos += 1
        elif marker == 0xDA:                     # start of scan: image data follows
            return data.find(JPEG_END, pos) != -1
        elif 0xD0 <= marker <= 0xD8 or marker == 0x01:
            pos += 2                             # markers without a length
        else:
            pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    return False                                 # the file ends inside its header


def decode_image(path):
    """uint8/uint16 (H, W) or (H, W, C) BGR, as ``cv2.imread(path, IMREAD_UNCHANGED)``; a
    DataError naming the file when it cannot be decoded or is a truncated JPEG."""
    import cv2
    data = read_bytes(path)
    if data[:2] == JPEG_START and not jpeg_complete(data):
        raise DataError(f"truncated JPEG ({len(data)} bytes, no end-of-image marker)", file=path)
    image = cv2.imdecode(numpy.frombuffer(data, numpy.uint8), cv2.IMREAD_UNCHANGED) \
        if data else None
    if image is None:
        raise DataError("OpenCV cannot decode this image (corrupt or not an image)", file=path)
    return image


def has_extension(name, extensions):
    return "." in name and name.rsplit(".", 1)[1].lower() in extensions


def list_images(folder, extensions=IMAGE_EXTENSIONS):
    """Sorted paths of the image files directly in ``folder`` (N2D2's loadDir at depth 0); a
    DataError naming the folder when it cannot be listed."""
    try:
        with os.scandir(folder) as entries:
            names = [e.name for e in entries if has_extension(e.name, extensions) and e.is_file()]
    except OSError as exc:
        raise DataError(f"cannot open the database directory ({exc.strerror or exc})",
                        file=folder) from None
    return [os.path.join(folder, name) for name in sorted(names)]


class ImageFileDatabase(Database):
    """A Database whose stimuli are image files decoded on demand (``streaming``)."""
    streaming = True

    def __init__(self, rng=None, **values):
        super().__init__(rng=rng, **values)
        self.files = FileList()
        self.crops = None          # (N, 4) x1, y1, x2, y2 (exclusive) when stimuli are ROIs
        self._labels = []
        self._label_index = {}

    # -- loading (N2D2's labelID / loadDir / loadFile) ----------------------------------------
    def label_id(self, name):
        """Index of label ``name``, created at the end when new (N2D2's ``labelID``)."""
        if name not in self._label_index:
            self._label_index[name] = len(self.label_names)
            self.label_names.append(name)
        return self._label_index[name]

    def add_stimuli(self, paths, labels):
        """Append files (with their label ids) to the store and to the Unpartitioned set; the
        arrays are joined by ``flush()`` (called before partitioning)."""
        self.files.extend(paths)
        self._labels.append(numpy.asarray(labels, numpy.int64).reshape(-1))

    def flush(self):
        """Join the stimuli added since the last call into ``labels`` and Unpartitioned, and
        the paths into the file list's one buffer (before workers are forked: each would
        otherwise join its own copy)."""
        self.files.join()
        if self._labels:
            first = len(self.labels)
            self.labels = numpy.concatenate([self.labels] + self._labels)
            self._labels = []
            added = numpy.arange(first, len(self.labels), dtype=numpy.int64)
            self.sets["Unpartitioned"] = numpy.concatenate([self.sets["Unpartitioned"], added])

    def load_dir(self, folder, label_name, extensions=IMAGE_EXTENSIONS):
        """The image files of ``folder`` (sorted), labelled ``label_name`` (None: no label).
        As in N2D2, the label is created only when the folder has files."""
        paths = list_images(folder, extensions)
        if paths:
            label = -1 if label_name is None else self.label_id(label_name)
            self.add_stimuli(paths, numpy.full(len(paths), label))
        return len(paths)

    def decode_all(self):
        """Decode every stimulus now and keep it (N2D2's ``LoadInMemory=1``): the database stops
        streaming, and ``images`` is one array when all stimuli share a shape and type (filled in
        place: no second copy of the set), else a list."""
        images = None
        for i in range(len(self)):
            image = self.image(i)
            if images is None:
                images = self._store_for(image)
            if isinstance(images, numpy.ndarray) and images.shape[1:] == image.shape \
                    and images.dtype == image.dtype:
                images[i] = image
                continue
            if isinstance(images, numpy.ndarray):
                images = list(images[:i])          # sizes differ: one array per stimulus
            images.append(image)
        self.images = images if images is not None else self.images
        self.streaming = False

    def _store_for(self, first):
        """The (N, *shape) array of a set whose stimuli are all like ``first``; one line naming
        the section when it cannot be allocated (NumPy only reserves it: pages are used as
        images are written)."""
        shape = (len(self),) + first.shape
        try:
            return numpy.empty(shape, first.dtype)
        except MemoryError:
            size = numpy.prod(shape, dtype=numpy.float64) * first.dtype.itemsize / 2 ** 30
            raise self.error(f"LoadInMemory=1: {len(self)} images of {first.shape} would take "
                             f"{size:.1f} GiB, more than this machine can hold; LoadInMemory=0 "
                             f"streams them", key="LoadInMemory") from None

    # -- access ------------------------------------------------------------------------------
    def __len__(self):
        return len(self.files)

    def file_name(self, i):
        return self.files[int(i)]

    @property
    def file_names(self):
        return list(self.files)

    def image(self, i):
        if not self.streaming:
            return self.images[int(i)]
        image = decode_image(self.files[int(i)])
        if self.crops is not None and self.crops[int(i)][2] > 0:
            x1, y1, x2, y2 = (int(v) for v in self.crops[int(i)])
            image = image[max(0, y1):max(0, y2), max(0, x1):max(0, x2)]
            if image.size == 0:
                raise DataError(f"empty region of interest ({x1}, {y1})-({x2}, {y2})",
                                file=self.files[int(i)])
        return image

    def stack(self, ids):
        if not self.streaming:
            return super().stack(ids)
        return [self.image(i) for i in ids]
