"""``ILSVRC2012_Database``: ImageNet in N2D2's layout, read as a file list (images are decoded by
the streaming loader's workers).

Layout under ``DataPath`` (default ``$N2D2_DATA/ILSVRC2012``)::

    train/<synset>/*.JPEG     one folder per synset named in LabelPath
    val/*.JPEG                the validation images
    val.txt                   "<file name> <label index>" per line, indices into LabelPath's order

``LabelPath`` (default ``$N2D2_DATA/ILSVRC2012/synsets.txt``) lists the synsets separated by
white space (one per line in practice). Loading follows N2D2: with ``BackgroundClass=1`` the label
``background`` is created first (index 0; val.txt indices are shifted by one); each synset folder
is listed in sorted order and its label created when it holds files; the train images are split
by ``Learn`` into Learn and Test (``RandomPartitioning``: drawn at random, else in load order);
then the val images all go to Validation and, with ``UseValidationForTest=1`` (default), once more
to Test. So ``Learn=1.0`` (N2D2's model files) gives Validation = Test = the ImageNet val set.
"""
import os

from ..errors import DataError, printable
from ..ini.convert import to_bool, to_float, to_str
from ..io.names import path_inside
from ..params import REQUIRED, Key
from .database import DATABASES, n2d2_data, read_text_lines
from .image_files import ImageFileDatabase


@DATABASES.register("ILSVRC2012_Database")
class ILSVRC2012_Database(ImageFileDatabase):
    learn_fraction = Key("Learn", to_float, REQUIRED)
    use_validation_for_test = Key("UseValidationForTest", to_bool, True)
    background_class = Key("BackgroundClass", to_bool, False)
    data_path = Key("DataPath", to_str, None, doc="default: $N2D2_DATA/ILSVRC2012")
    label_path = Key("LabelPath", to_str, None, doc="default: $N2D2_DATA/ILSVRC2012/synsets.txt")

    def load(self):
        self.check_fractions(self.learn_fraction, 0.0, 1.0 - self.learn_fraction)
        root = self.expand_path(self.data_path) if self.data_path else n2d2_data("ILSVRC2012")
        labels = self.expand_path(self.label_path) if self.label_path \
            else n2d2_data("ILSVRC2012/synsets.txt")
        if self.background_class:
            self.label_id("background")
        train = os.path.join(root, "train")
        for synset in read_synsets(labels):
            folder = path_inside(train, synset, links_inside=False)
            if folder is None or "/" in synset.replace("\\", "/") or synset == ".":
                raise DataError(f"synset '{printable(synset)[:80]}' is not a folder name inside "
                                f"{train}", file=labels)
            self.load_dir(folder, synset)
        self.flush()
        self.partition_stimuli(self.learn_fraction, 0.0, 1.0 - self.learn_fraction)
        val = self.validation_files(root)
        self.add_stimuli(*val)
        self.flush()
        self.partition_stimuli(0.0, 1.0, 0.0)
        if self.use_validation_for_test:
            self.add_stimuli(*val)
            self.flush()
            self.partition_stimuli(0.0, 0.0, 1.0)

    def validation_files(self, root):
        """(paths, label ids) of ``val.txt``: each line must be ``<file> <label index>`` with
        an index into the synsets and a file that exists under ``val/``."""
        listing, folder = os.path.join(root, "val.txt"), os.path.join(root, "val")
        lines = read_text_lines(listing, "the validation labels, '<file> <label index>' lines")
        present = existing_names(folder)
        offset, nb_labels = int(self.background_class), len(self.label_names)
        paths, labels = [], []
        for number, line in enumerate(lines, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or not fields[1].lstrip("-").isdigit():
                raise DataError(f"expected '<file> <label index>', got {line.strip()[:80]!r}",
                                file=listing, line=number)
            label = int(fields[1]) + offset
            if not 0 <= label < nb_labels:
                raise DataError(f"label index {fields[1]} out of range: the label file has "
                                f"{nb_labels - offset} synsets (0 to {nb_labels - offset - 1})",
                                file=listing, line=number)
            path = path_inside(folder, fields[0], links_inside=False)
            if path is None:
                raise DataError(f"validation image '{printable(fields[0])[:80]}' is not a path "
                                f"inside {folder}", file=listing, line=number)
            if fields[0] not in present and not os.path.isfile(path):
                raise DataError(f"validation image '{printable(fields[0])[:80]}' not found in "
                                f"{folder}",
                                file=listing, line=number)
            paths.append(path)
            labels.append(label)
        return paths, labels


def read_synsets(path):
    """The synset folder names of the label file (white-space separated), in order."""
    names = " ".join(read_text_lines(path, "the synset names (one per line)")).split()
    if not names:
        raise DataError("no synset in the label file", file=path)
    return names


def existing_names(folder):
    """Names of the regular files directly in ``folder`` (one listing instead of a stat per
    val.txt line); a DataError naming the folder when it cannot be listed."""
    try:
        with os.scandir(folder) as entries:
            return {e.name for e in entries if e.is_file()}
    except OSError as exc:
        raise DataError(f"cannot open the validation image folder ({exc.strerror or exc})",
                        file=folder) from None
