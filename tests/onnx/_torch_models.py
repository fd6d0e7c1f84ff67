"""PyTorch models written out by hand (torchvision's ResNet-18 and MobileNet-v2 structure and
module names, narrowed), LeNet-like CNNs with and without BatchNorm, their ONNX export as a
user does it, and the small image folders the tests train them on. Imported only by tests that
have already asked ``pytest.importorskip("torch")``."""
import gzip
import pathlib
import struct
import warnings

import numpy
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

MNIST5K = pathlib.Path(__file__).resolve().parents[2] / "n2d2py" / "data" / "mnist5k"


# -- ResNet-18 (torchvision.models.resnet18's modules and forward) -----------------------------
class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    def __init__(self, widths=(8, 16, 32, 64), classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = widths[0]
        for index, width in enumerate(widths):
            stride = 1 if index == 0 else 2
            setattr(self, f"layer{index + 1}", nn.Sequential(BasicBlock(cin, width, stride),
                                                             BasicBlock(width, width, 1)))
            cin = width
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for index in range(4):
            x = getattr(self, f"layer{index + 1}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


# -- MobileNet-v2 (torchvision.models.mobilenet_v2's modules and forward) ----------------------
def divisible(value, divisor=8):
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin, cout, kernel=3, stride=1, groups=1):
        super().__init__(nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups,
                                   bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = int(round(cin * expand))
        self.use_res_connect = stride == 1 and cin == cout
        layers = [ConvBNReLU(cin, hidden, 1)] if expand != 1 else []
        layers += [ConvBNReLU(hidden, hidden, stride=stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, 1, 0, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class MobileNetV2(nn.Module):
    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self, width=0.25, last_channel=128, classes=10):
        super().__init__()
        cin = divisible(32 * width)
        features = [ConvBNReLU(3, cin, stride=2)]
        for t, c, n, s in self.SETTINGS:
            cout = divisible(c * width)
            for i in range(n):
                features.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        features.append(ConvBNReLU(cin, last_channel, 1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last_channel, classes))

    def forward(self, x):
        x = nn.functional.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


# -- LeNet-like CNN with BatchNorm -------------------------------------------------------------
class LeNetBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 5, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 5, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.fc1 = nn.Linear(16 * 4 * 4, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
        x = nn.functional.max_pool2d(torch.relu(self.bn2(self.conv2(x))), 2)
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))


# -- the same without BatchNorm (Conv + ReLU, as SqueezeNet, AlexNet, VGG without BN) ----------
class LeNetNoBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 5)
        self.conv2 = nn.Conv2d(8, 16, 5)
        self.fc1 = nn.Linear(16 * 4 * 4, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))


# -- export, data, training ----------------------------------------------------------------------
def export(model, path, shape, opset=13):
    """What docs/pytorch.md tells users: eval mode, BatchNorm kept as BatchNormalization
    (TrainingMode.PRESERVE), the legacy exporter, one input named "input", output "logits"."""
    model.eval()
    with warnings.catch_warnings():     # the legacy exporter's deprecation notices
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.zeros(1, *shape), str(path), dynamo=False,
                          opset_version=opset,
                          training=torch.onnx.TrainingMode.PRESERVE,
                          input_names=["input"], output_names=["logits"])
    return path


def image_folder(root, classes=10, per_class=16, size=64, seed=0):
    """A DIR_Database: ``root/class<k>/<i>.png``, 64x64 colour images whose class is a colour
    and the place of a bright square, with noise. Returns (images (N, 3, H, W) in [0, 1], labels)
    in the order written (the arrays PyTorch trains on: the PNGs' BGR channels as stored)."""
    import cv2
    rng = numpy.random.default_rng(seed)
    images, labels = [], []
    for k in range(classes):
        (root / f"class{k}").mkdir(parents=True, exist_ok=True)
        colour = rng.integers(40, 200, 3)
        for i in range(per_class):
            image = rng.normal(0, 25, (size, size, 3)) + colour
            y, x = divmod(k, 4)
            image[8 + 14 * y:20 + 14 * y, 8 + 12 * x:20 + 12 * x] = 255
            image = numpy.clip(image, 0, 255).astype(numpy.uint8)
            cv2.imwrite(str(root / f"class{k}" / f"{i}.png"), image)
            images.append(image.transpose(2, 0, 1) / 255.0)
            labels.append(k)
    return numpy.asarray(images, numpy.float32), numpy.asarray(labels)


def idx(path):
    raw = gzip.open(path).read()
    ndim = struct.unpack(">I", raw[:4])[0] & 0xFF
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return numpy.frombuffer(raw[4 + 4 * ndim:], numpy.uint8).reshape(dims)


def bundled_digits(part):
    """The bundled MNIST subset ("train": 4000 digits, "t10k": 1000) as [0, 1] floats."""
    x = idx(MNIST5K / f"{part}-images-idx3-ubyte.gz").astype(numpy.float32)[:, None] / 255
    return x, idx(MNIST5K / f"{part}-labels-idx1-ubyte.gz").astype(numpy.int64)


def train(model, x, y, epochs, lr=0.05, batch=32, seed=0):
    """Plain SGD with momentum and cross-entropy, one thread (the suite runs on 2 cores)."""
    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x, y = torch.as_tensor(x), torch.as_tensor(y)
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        for _ in range(epochs):
            model.train()
            order = torch.randperm(len(x))
            for i in range(0, len(x), batch):
                b = order[i:i + batch]
                opt.zero_grad()
                nn.functional.cross_entropy(model(x[b]), y[b]).backward()
                opt.step()
        model.eval()
    finally:
        torch.set_num_threads(threads)
    return model


def accuracy(model, x, y):
    with torch.no_grad():
        return 100.0 * float((model(torch.as_tensor(x)).argmax(1).numpy() == y).mean())
