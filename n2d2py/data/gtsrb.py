"""``GTSRB_DIR_Database``: the German Traffic Sign Recognition Benchmark in its distribution
layout, labels read from its CSV annotation files as N2D2 does.

Under ``DataPath`` (default ``$N2D2_DATA/GTSRB``)::

    Final_Training/Images/<class folder>/*.ppm + one or more *.csv annotation files
    Final_Test/Images/*.ppm
    GT-final_test.csv

An annotation line is ``Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId`` (``,``,
``;``, space and tab all separate fields; a line whose width/height are not numbers, the header,
is skipped; ``#`` starts a comment). Labels are the ``ClassId`` texts, numbered in order of first
appearance (class folders and files sorted), so GTSRB's classes 0..42 get label indices 0..42. The
training images are split per label into Learn (1 - ``Validation``) and Validation; the test images
all go to Test. With ``ExtractROIs=1`` each stimulus is its annotated box (x2, y2 exclusive)
instead of the whole image. Only ``.ppm`` files are read. An image without an annotation line is
an error here (N2D2 would leave it unlabelled and move it to Test).
"""
import os
import re

import numpy

from ..errors import DataError
from ..ini.convert import to_bool, to_float, to_str
from ..params import Key
from .database import DATABASES, n2d2_data, read_text_lines
from .image_files import ImageFileDatabase, list_images

FIELDS = re.compile(r"[,; \t]+")


@DATABASES.register("GTSRB_DIR_Database")
class GTSRB_DIR_Database(ImageFileDatabase):
    validation_fraction = Key("Validation", to_float, 0.0)
    data_path = Key("DataPath", to_str, None, doc="default: $N2D2_DATA/GTSRB")
    extract_rois = Key("ExtractROIs", to_bool, False)

    def load(self):
        validation = self.validation_fraction
        self.check_fractions(1.0 - validation, validation, 0.0)
        root = self.expand_path(self.data_path) if self.data_path else n2d2_data("GTSRB")
        boxes = []
        images = os.path.join(root, "Final_Training", "Images")
        for folder in sorted_subfolders(images):
            boxes.append(self.load_annotated(folder, csv_files(folder), folder))
        self.flush()
        self.partition_stimuli_per_label(1.0 - validation, validation, 0.0, equiv_label=False)
        test_folder = os.path.join(root, "Final_Test", "Images")
        boxes.append(self.load_annotated(test_folder, [os.path.join(root, "GT-final_test.csv")],
                                         test_folder))
        self.flush()
        self.partition_stimuli(0.0, 0.0, 1.0)
        if self.extract_rois:
            self.crops = numpy.concatenate(boxes) if boxes else numpy.zeros((0, 4), numpy.int64)

    def load_annotated(self, folder, annotation_files, where):
        """The .ppm files of ``folder`` labelled by ``annotation_files``; returns their boxes."""
        paths = list_images(folder, ("ppm",))
        if not paths:
            return numpy.zeros((0, 4), numpy.int64)
        if not annotation_files:
            raise DataError("no .csv annotation file (Filename;Width;Height;Roi.X1;Roi.Y1;"
                            "Roi.X2;Roi.Y2;ClassId) beside the images", file=where)
        rois = {}
        for path in annotation_files:
            for name, box, label, number in read_annotations(path):
                if name in rois:
                    raise DataError(f"'{name}' has more than one annotation line (each image "
                                    f"needs one and only one)", file=path, line=number)
                rois[name] = (box, self.label_id(label))
        labels, boxes = [], []
        for path in paths:
            name = os.path.basename(path)
            if name not in rois:
                raise DataError(f"image '{name}' has no annotation line in "
                                f"{', '.join(os.path.basename(f) for f in annotation_files)}",
                                file=path)
            box, label = rois[name]
            labels.append(label)
            boxes.append(box)
        self.add_stimuli(paths, labels)
        return numpy.asarray(boxes, numpy.int64).reshape(-1, 4)


def sorted_subfolders(folder):
    try:
        with os.scandir(folder) as entries:
            return sorted(os.path.join(folder, e.name) for e in entries if e.is_dir())
    except OSError as exc:
        raise DataError(f"cannot open the database directory ({exc.strerror or exc})",
                        file=folder) from None


def csv_files(folder):
    with os.scandir(folder) as entries:
        return sorted(os.path.join(folder, e.name) for e in entries
                      if e.name.endswith(".csv") and e.is_file())


def read_annotations(path):
    """Yield (file name, (x1, y1, x2, y2), label text, line number) of a GTSRB annotation file."""
    lines = read_text_lines(path, "the GTSRB annotations, Filename;Width;Height;Roi.X1;Roi.Y1;"
                                  "Roi.X2;Roi.Y2;ClassId lines")
    for number, line in enumerate(lines, 1):
        fields = [f for f in FIELDS.split(line.split("#", 1)[0].strip()) if f]
        if not fields:
            continue
        if len(fields) < 3 or not (fields[1].isdigit() and fields[2].isdigit()):
            continue        # the header line (N2D2: "unreadable image size", line skipped)
        if len(fields) != 8:
            raise DataError(f"expected 8 fields (Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;"
                            f"Roi.Y2;ClassId), got {len(fields)}", file=path, line=number)
        try:
            box = tuple(int(float(v)) for v in fields[3:7])
        except ValueError:
            raise DataError(f"unreadable box {' '.join(fields[3:7])!r}: expected numbers",
                            file=path, line=number) from None
        yield fields[0], box, fields[7], number
