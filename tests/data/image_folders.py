"""Small image folders in the layouts of N2D2's ILSVRC2012, GTSRB and DIR databases, made by the
tests (a few dozen JPEG/PPM files), and the tiny INI sections that read them."""
import os

import cv2
import numpy

SYNSETS = ("n01440764", "n01443537", "n01484850", "n01491361")


def picture(rng, height, width, colour):
    """A random picture whose dominant channel is ``colour`` (so that a network can learn it)."""
    image = rng.integers(0, 120, (height, width, 3), dtype=numpy.uint8)
    image[..., colour] = 200
    return image


def make_ilsvrc(root, per_class=6, val=8, sizes=(40, 72), seed=0, synsets=SYNSETS):
    """``root/train/<synset>/*.JPEG``, ``root/val/*.JPEG``, ``root/val.txt``, ``root/synsets.txt``;
    returns the val.txt labels."""
    rng = numpy.random.default_rng(seed)
    for k, synset in enumerate(synsets):
        os.makedirs(os.path.join(root, "train", synset), exist_ok=True)
        for j in range(per_class):
            h, w = (int(v) for v in rng.integers(*sizes, size=2))
            cv2.imwrite(os.path.join(root, "train", synset, f"{synset}_{j}.JPEG"),
                        picture(rng, h, w, k % 3))
    os.makedirs(os.path.join(root, "val"), exist_ok=True)
    lines, labels = [], []
    for j in range(val):
        k = j % len(synsets)
        h, w = (int(v) for v in rng.integers(*sizes, size=2))
        name = f"ILSVRC2012_val_{j + 1:08d}.JPEG"
        cv2.imwrite(os.path.join(root, "val", name), picture(rng, h, w, k % 3))
        lines.append(f"{name} {k}")
        labels.append(k)
    with open(os.path.join(root, "val.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(root, "synsets.txt"), "w") as f:
        f.write("\n".join(synsets) + "\n")
    return labels


def make_dir_folder(root, classes=3, per_class=8, sizes=(20, 36), seed=0, extensions=("png", "jpg")):
    """``root/class<k>/<j>.<ext>`` (DIR_Database's layout: one folder per class), pictures whose
    dominant channel is the class, extensions taken in turn; returns the paths in sorted order."""
    rng = numpy.random.default_rng(seed)
    paths = []
    for k in range(classes):
        os.makedirs(os.path.join(root, f"class{k}"), exist_ok=True)
        for j in range(per_class):
            h, w = (int(v) for v in rng.integers(*sizes, size=2))
            path = os.path.join(root, f"class{k}", f"{j:03d}.{extensions[j % len(extensions)]}")
            cv2.imwrite(path, picture(rng, h, w, k % 3))
            paths.append(path)
    return paths


GTSRB_HEADER = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId"


def make_gtsrb(root, classes=3, per_class=8, test=9, seed=0):
    """GTSRB's Final_Training/Images/<class>/*.ppm + GT-<class>.csv and Final_Test/Images/*.ppm
    + GT-final_test.csv; returns {image path: (box, class)}."""
    rng = numpy.random.default_rng(seed)
    truth = {}

    def write(folder, name, k):
        h, w = (int(v) for v in rng.integers(30, 50, size=2))
        path = os.path.join(folder, name)
        cv2.imwrite(path, picture(rng, h, w, k % 3))
        box = (2, 3, w - 2, h - 1)
        truth[path] = (box, k)
        return f"{name};{w};{h};{box[0]};{box[1]};{box[2]};{box[3]};{k}"

    for k in range(classes):
        folder = os.path.join(root, "Final_Training", "Images", f"{k:05d}")
        os.makedirs(folder, exist_ok=True)
        lines = [GTSRB_HEADER] + [write(folder, f"{k:05d}_{j:05d}.ppm", k) for j in range(per_class)]
        with open(os.path.join(folder, f"GT-{k:05d}.csv"), "w") as f:
            f.write("\n".join(lines) + "\n")
    folder = os.path.join(root, "Final_Test", "Images")
    os.makedirs(folder, exist_ok=True)
    lines = [GTSRB_HEADER] + [write(folder, f"{j:05d}.ppm", j % classes) for j in range(test)]
    with open(os.path.join(root, "GT-final_test.csv"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return truth


# [database] + [sp] of N2D2's ImageNet models (MobileNet_v2.ini, ResNet-18-BN.ini), at a small size
IMAGENET_SP = """
[database]
Type=ILSVRC2012_Database
RandomPartitioning=0
Learn=1.0
{database}

[sp]
SizeX=24
SizeY=24
NbChannels=3
BatchSize=5
{sp}

[sp.Transformation-1]
Type=RescaleTransformation
Width=32
Height=32
KeepAspectRatio=1
ResizeToFit=0

[sp.Transformation-2]
Type=PadCropTransformation
Width=[sp.Transformation-1]Width
Height=[sp.Transformation-1]Height

[sp.Transformation-3]
Type=ColorSpaceTransformation
ColorSpace=BGR

[sp.Transformation-4]
Type=RangeAffineTransformation
FirstOperator=Minus
FirstValue=103.94 116.78 123.68
SecondOperator=Multiplies
SecondValue=0.017

[sp.Transformation-6]
Type=SliceExtractionTransformation
ApplyTo=NoLearn
Width=[sp]SizeX
Height=[sp]SizeY
OffsetX=4
OffsetY=4

[sp.OnTheFlyTransformation-5]
Type=SliceExtractionTransformation
ApplyTo=LearnOnly
Width=[sp]SizeX
Height=[sp]SizeY
RandomOffsetX=1
RandomOffsetY=1

[sp.OnTheFlyTransformation-6]
Type=FlipTransformation
ApplyTo=LearnOnly
RandomHorizontalFlip=1
"""

SMALL_NET = """
[conv1]
Input=sp
Type=Conv
KernelDims=3 3
NbOutputs=6
Stride=2
ActivationFunction=Rectifier
WeightsFiller=HeFiller
ConfigSection=common.config

[fc]
Input=conv1
Type=Fc
NbOutputs={outputs}
ActivationFunction=Linear
ConfigSection=common.config

[softmax]
Input=fc
Type=Softmax
NbOutputs=[fc]NbOutputs
WithLoss=1

[softmax.Target]

[common.config]
Solvers.LearningRate=0.05
Solvers.Momentum=0.9
"""


def imagenet_ini(root, database="", sp="", outputs=len(SYNSETS)):
    """A small network reading the ILSVRC2012 folder ``root`` through N2D2's ImageNet chain."""
    database = f"DataPath={root}\nLabelPath={os.path.join(root, 'synsets.txt')}\n{database}"
    return IMAGENET_SP.format(database=database, sp=sp) + SMALL_NET.format(outputs=outputs)
