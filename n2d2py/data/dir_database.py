"""``DIR_Database``: one sub-directory per class, images decoded by OpenCV (keys: docs/DATA.md).

Files are listed in sorted order (deterministic, as N2D2 sorts) and decoded as
``cv2.imread(IMREAD_UNCHANGED)`` does (grey stays (H, W), colour is BGR (H, W, 3), 16-bit stays
uint16; ``image_files.decode_image``). The label of a file is the path of its first ``LabelDepth``
folders below ``DataPath`` (``LabelName`` for files above that depth). Partitioning is per label by
default. ROI files (``ROIFile``, ``ROIDir``) and ``LoadMore`` chaining are not supported.

``LoadInMemory=0`` (N2D2's default) keeps only the file list: an image is decoded when a batch
needs it, by the streaming loader's workers, so memory does not grow with the folder and the first
batch comes without decoding the whole folder first. ``LoadInMemory=1`` decodes every image once
at load and keeps them (static transformations are then cached as for MNIST).
"""
import os

import numpy

from ..errors import DataError
from ..ini.convert import list_of, to_bool, to_float, to_int, to_str
from ..params import REQUIRED, Key
from .database import DATABASES
from .image_files import ImageFileDatabase

MAX_DEPTH = 64             # folder levels below DataPath, whatever Depth says
# names listed in all folders walked: ImageNet-21k's 14.2 M images fit (listed at ~0.4 M names/s,
# the file list then takes ~100 bytes an image)
MAX_ENTRIES = 16_000_000

DEFAULT_EXTENSIONS = ("bmp", "dib", "jpeg", "jpg", "jpe", "jp2", "png", "webp", "pbm", "pgm",
                      "ppm", "pxm", "pnm", "tiff", "tif", "exr", "hdr", "pic")


@DATABASES.register("DIR_Database")
class DIR_Database(ImageFileDatabase):
    data_path = Key("DataPath", to_str, REQUIRED)
    learn_fraction = Key("Learn", to_float, REQUIRED)
    validation_fraction = Key("Validation", to_float, 0.0)
    test_fraction = Key("Test", to_float, None, doc="default: 1 - Learn - Validation")
    depth = Key("Depth", to_int, 1)
    label_name = Key("LabelName", to_str, "")
    label_depth = Key("LabelDepth", to_int, 1)
    per_label_partitioning = Key("PerLabelPartitioning", to_bool, True)
    equiv_label_partitioning = Key("EquivLabelPartitioning", to_bool, True)
    roi_file = Key("ROIFile", to_str, "")
    roi_dir = Key("ROIDir", to_str, "")
    roi_extension = Key("ROIExtension", to_str, "json")
    ignore_masks = Key("IgnoreMasks", to_str, "")
    valid_extensions = Key("ValidExtensions", list_of(to_str), None)
    load_more = Key("LoadMore", to_str, "")
    load_in_memory = Key("LoadInMemory", to_bool, False)

    def list_files(self, root):
        """Add every image file up to ``Depth`` folder levels below ``root`` (``Depth`` < 0: any
        depth, as N2D2) to the file list, folder by folder; returns the label name of each
        folder's files, in list order (their ids are known once every name is).

        Symbolic links are followed, but no folder is visited twice (same device and inode): a
        link to a parent folder, or two links to one folder, cannot make the walk loop or
        repeat. At most ``MAX_DEPTH`` levels and ``MAX_ENTRIES`` folder entries are read; past
        either the database is refused, naming the folder."""
        extensions = {e.lower().lstrip(".") for e in (self.valid_extensions or DEFAULT_EXTENSIONS)}
        groups, seen, listed = [], set(), 0
        stack = [(root, [], self.depth)]
        while stack:                     # depth first, files of a folder before its folders
            folder, rel, depth = stack.pop()
            try:
                info = os.stat(folder)
                if (info.st_dev, info.st_ino) in seen:
                    continue
                with os.scandir(folder) as listing:     # file types without a stat per name
                    entries = sorted(listing, key=lambda entry: entry.name)
            except OSError as exc:
                raise DataError(f"cannot read the folder ({exc.strerror or exc})",
                                file=folder) from None
            seen.add((info.st_dev, info.st_ino))
            listed += len(entries)
            if listed > MAX_ENTRIES:
                raise self.error(f"more than {MAX_ENTRIES} files and folders below {root} "
                                 f"(a link to a large folder?)", key="DataPath")
            if len(rel) > MAX_DEPTH:
                raise self.error(f"folders nested deeper than {MAX_DEPTH} levels below {root} "
                                 f"({folder})", key="Depth")
            folders, images = [], []
            for entry in entries:
                kind = entry_kind(entry)
                if kind == "folder":
                    folders.append(entry.name)
                elif kind == "file" and entry.name.rsplit(".", 1)[-1].lower() in extensions:
                    images.append(entry.path)
            if images:
                parts = rel[:self.label_depth] if len(rel) >= self.label_depth > 0 else None
                self.add_stimuli(images, numpy.full(len(images), len(groups)))
                groups.append("/".join(parts) if parts else self.label_name)
            if depth != 0:
                stack.extend((os.path.join(folder, name), rel + [name], depth - 1)
                             for name in reversed(folders))
        return groups

    def load(self):
        for key, value in (("ROIFile", self.roi_file), ("ROIDir", self.roi_dir),
                           ("LoadMore", self.load_more)):
            if value:
                raise self.error(f"{key} is not supported by n2d2py's DIR_Database", key=key)
        root = self.expand_path(self.data_path)
        if not os.path.isdir(root):
            raise self.error(f"DIR_Database folder {root} not found", key="DataPath")
        groups = self.list_files(root)          # labels hold folder numbers until flushed
        for name in sorted({label for label in groups if label}):
            self.label_id(name)
        self.flush()
        self.labels = numpy.asarray([self._label_index.get(label, -1) for label in groups],
                                    numpy.int64)[self.labels]
        if self.load_in_memory:
            self.decode_all()
        learn, validation = self.learn_fraction, self.validation_fraction
        test = self.test_fraction if self.test_fraction is not None else max(0.0, 1.0 - learn - validation)
        if self.per_label_partitioning:
            self.partition_stimuli_per_label(learn, validation, test, self.equiv_label_partitioning)
        else:
            self.partition_stimuli(learn, validation, test)


def entry_kind(entry):
    """"folder", "file" (links followed, as ``os.path.isdir``/``isfile``) or None (a broken
    link, a FIFO or device, an entry that vanished or cannot be examined)."""
    try:
        if entry.is_dir():
            return "folder"
        return "file" if entry.is_file() else None
    except OSError:
        return None
