"""Every INI of N2D2's corpus (tests/data/n2d2) either builds with ``--build-only`` or fails with one
clear sentence saying why: the outcome of each file is pinned here, so a file that
starts or stops building is noticed."""
import os

import pytest

from n2d2py.cli import main
from n2d2py.deepnet import DeepNet
from n2d2py.errors import N2D2Error

#: the core and QAT models (and the ImageNet family with templates): they build
BUILDS = {
    "models/GTSRB29_32c4s1_32mp2_48c5s1_48mp3_200_43.ini", "models/LeNet.ini",
    "models/MobileNet_v1.ini", "models/MobileNet_v1_batchnorm.ini",
    "models/MobileNet_v1_batchnorm_grayscale.ini", "models/MobileNet_v2.ini", "models/ResNet-11.ini",
    "models/ResNet-18.ini", "models/ResNet-34.ini", "models/ResNet-50-BN.ini", "models/ResNet-50.ini",
    "models/SqueezeNet_v1.0.ini", "models/SqueezeNet_v1.1.ini", "models/cifar-10.ini",
    "models/mnist-autoencoder.ini", "models/mnist24_16c4s2_24c5s2_150_10.ini",
    "models/mnist24_16c4s2_24c5s2_150_10_AM-Softmax.ini", "tests_data/ResNet-18.ini",
    *(f"tests_data/mnist_model/{n}.ini" for n in (
        "LeNet-bn-SAT-8b", "LeNet-bn-SAT", "LeNet_4b", "LeNet_w1_a2", "LeNet_w1_a4", "LeNet_w1_a8",
        "LeNet_w3_a4", "LeNet_w4_a8", "LeNet_w5_a8", "LeNet_wMix_a4", "model", "model_CUDA",
        "model_wo_softmax", "model_wo_softmax_CUDA")),
    *(f"tests_data/mnist_multibranch_model/{n}.ini" for n in (
        "MobileNet_v2_mini", "MobileNet_v2_mini_wSym", "model", "model_CUDA", "model_wo_softmax",
        "model_wo_softmax_CUDA")),
}

ONNX_MISSING = "not found"  # tier 2: the ONNX model files are not in N2D2's repository either
#: the rest, with the words their one-line error must contain
FAILS = {
    "models/IMDBWIKI.ini": "CompositeStimuli",
    "models/IMDBWIKI_FasterRCNN.ini": "CompositeStimuli",
    "models/LeNet_Spike.ini": "spiking",
    "models/mnist24_16c4s2_24c5s2_150_10_Spike.ini": "spiking",
    "models/mnist-stdp-ijcnn.ini": "spiking",
    "models/mnist-stdp.ini": "spiking",
    "models/n-mnist-stdp.ini": "spiking",
    "models/LeNet_quant.ini": "unknown parameter 'QuantizationLevels'",   # N2D2 rejects it too
    "models/ResNet-18-BN.ini": "Missing [sp] section",                    # N2D2 rejects it too
    "models/VGG16.ini": "${STEPDECAY_RATE}",                             # never defined in the file
    "tests_data/mnist_multibranch_model/model_dneuro_v2_params.ini": "NbDSPs",  # not a network
    **{f"models/ONNX/{n}-onnx.ini": ONNX_MISSING for n in (
        "googlenet", "inceptionv2", "mobilenetv2", "resnet-101-v1", "resnet-101-v2", "resnet-152-v1",
        "resnet-152-v2", "resnet-18-v1", "resnet-18-v2", "resnet-34-v1", "resnet-34-v2",
        "resnet-50-v1", "resnet-50-v2", "squeezenet", "vgg16-bn", "vgg16", "vgg19-bn", "vgg19")},
    **{f"models/{n}.ini": ONNX_MISSING for n in (
        "MobileNet_v1_ONNX", "MobileNet_v1_ONNX_mxnet", "MobileNet_v1_ONNX_transfer",
        "MobileNet_v2_ONNX", "MobileNet_v2_ONNX_pytorch", "ResNet_ONNX", "mnist_ONNX")},
    "models/quantizer/inception-resnet-v2-onnx-ImageNet-LSQ-8b.ini": ONNX_MISSING,
    "models/quantizer/resnet-18v1-LSQ-8b.ini": ONNX_MISSING,
}


def corpus(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.ini"))


def test_every_corpus_file_is_classified(n2d2_ini):
    assert set(corpus(n2d2_ini)) == BUILDS | set(FAILS)


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_builds(n2d2_ini, name, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("N2D2_MODELS", raising=False)
    net = DeepNet.from_ini(str(n2d2_ini / name), load_data=False)
    assert net.cells and all(c.out_shape is not None for c in net.cells.values())


@pytest.mark.parametrize("name", sorted(FAILS))
def test_fails_with_one_clear_line(n2d2_ini, name, monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("N2D2_MODELS", raising=False)
    with pytest.raises(N2D2Error) as info:
        DeepNet.from_ini(str(n2d2_ini / name), load_data=False)
    assert FAILS[name] in str(info.value)
    assert os.path.basename(name) in str(info.value)  # the message names the file
    assert main([str(n2d2_ini / name), "--build-only"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("n2d2py: error:") and FAILS[name] in err[0]
