"""torchvision's classification families exported to ONNX by PyTorch, run by n2d2py and by
onnxruntime on the same seeded input: the model x exporter matrix of docs/ONNX.md.

    python tools/torchvision_onnx.py                    # full-size models, 224 px (slow)
    python tools/torchvision_onnx.py --small            # the narrow models the tests use
    python tools/torchvision_onnx.py --user-path        # + train, export, SAT, --qat-sat
    python tools/torchvision_onnx.py --family resnet18 --exporter 17 --keep out/

Each row: a model built with random weights (``torch.manual_seed``), BatchNorm statistics and
ConvNeXt's layer scales randomised (so that every block shapes the output), exported by the
TorchScript exporter at opsets 13 and 17 and by the dynamo exporter (opset 20, needs
``onnxscript``), then ``OnnxModel(path).run`` (what ``n2d2py model.onnx --infer`` runs) against
onnxruntime: ``match`` is ``numpy.allclose(ours, ort, rtol=1e-3, atol=1e-4)``. A refused import
prints n2d2py's one-line error.

``--user-path`` adds a second table, per family at opset 17 (``user_path``): one training step
of an INI importing the export, ``--export ONNX`` of the trained network against onnxruntime,
``--calib`` (8-bit post-training quantization) of it, one step with SAT 4-bit overrides (the
export with its BatchNorms kept), and ``--qat-sat``'s fusion of that network.

torchvision: the PyPI wheel for torch 2.13 is torchvision 0.28.0; its compiled operators may not
load beside a CPU torch ("operator torchvision::nms does not exist"). ``import_torchvision``
then declares the two operator schemas its Python code registers fake kernels for (``nms``,
``qnms``) and imports it again: the model definitions are pure Python and never call them.
``--torchvision-path DIR`` puts DIR first on ``sys.path`` (``pip install --no-deps --target DIR
torchvision==0.28.0``). The tests (tests/onnx/test_torchvision.py) load this file.
"""
import argparse
import os
import platform
import sys
import tempfile
import time
import warnings

import numpy

EXPORTERS = ("13", "17", "dynamo")
RTOL, ATOL = 1e-3, 1e-4


def import_torchvision(path=None):
    """``(torch, torchvision)``, by the benchmarks' torchvision peer (``tools/bench/
    loader_torchvision.py``), which declares the two operator schemas when the compiled
    extension does not load (see the module docstring). ImportError when absent."""
    import importlib.util
    if "torchvision" in sys.modules:
        return sys.modules["torch"], sys.modules["torchvision"]
    spec = importlib.util.spec_from_file_location(
        "loader_torchvision", os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench",
                                           "loader_torchvision.py"))
    peer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peer)
    return peer.import_torchvision(path)


# ---------------------------------------------------------------- the families
def narrow_classifier(torch, widths, dropout=True):
    """The Linear/ReLU/Dropout stack of AlexNet and VGG with ``widths`` (in, hidden, out)."""
    nn = torch.nn
    a, b, c = widths
    layers = [nn.Dropout(0.5)] if dropout == "first" else []
    layers += [nn.Linear(a, b), nn.ReLU(True), nn.Dropout(0.5), nn.Linear(b, b), nn.ReLU(True)]
    layers += [nn.Dropout(0.5)] if dropout is True else []
    return nn.Sequential(*layers, nn.Linear(b, c))


def small_alexnet(torch, tv):
    """AlexNet's layers with 1/8 of its channels and a narrow classifier. At 224 px its
    features end at 6x6, AdaptiveAvgPool2d((6, 6))'s size; below, the TorchScript exporter
    refuses the pool (its output size must divide the input's) and the dynamo exporter writes
    it as Transpose, GatherND, Transpose, ReduceMean (tests/onnx/test_torchvision.py runs that
    at 64 px)."""
    nn = torch.nn
    model = tv.models.AlexNet(num_classes=10)
    model.features = nn.Sequential(
        nn.Conv2d(3, 8, 11, 4, 2), nn.ReLU(True), nn.MaxPool2d(3, 2),
        nn.Conv2d(8, 24, 5, padding=2), nn.ReLU(True), nn.MaxPool2d(3, 2),
        nn.Conv2d(24, 48, 3, padding=1), nn.ReLU(True), nn.Conv2d(48, 32, 3, padding=1),
        nn.ReLU(True), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(True), nn.MaxPool2d(3, 2))
    model.classifier = narrow_classifier(torch, (32 * 6 * 6, 64, 10), dropout="first")
    return model


def small_vgg11_bn(torch, tv):
    """VGG-11-BN's layer pattern (make_layers, batch_norm=True) at 1/8 width, narrow
    classifier (224 px: AdaptiveAvgPool2d((7, 7)) as for AlexNet)."""
    from torchvision.models.vgg import VGG, make_layers
    cfg = [8, "M", 16, "M", 32, 32, "M", 64, 64, "M", 64, 64, "M"]
    model = VGG(make_layers(cfg, batch_norm=True), num_classes=10)
    model.classifier = narrow_classifier(torch, (64 * 7 * 7, 64, 10))
    return model


def small_regnet(torch, tv):
    from torchvision.models.regnet import BlockParams, RegNet
    params = BlockParams.from_init_params(depth=4, w_0=16, w_a=8.0, w_m=2.0, group_width=8)
    return RegNet(params, num_classes=10, stem_width=16)


def small_convnext(torch, tv):
    from torchvision.models.convnext import CNBlockConfig, ConvNeXt
    setting = [CNBlockConfig(16, 32, 1), CNBlockConfig(32, 64, 1), CNBlockConfig(64, 64, 1),
               CNBlockConfig(64, None, 1)]
    return ConvNeXt(setting, num_classes=10)


def small_mobilenet_v3(torch, tv):
    from torchvision.models.mobilenetv3 import MobileNetV3, _mobilenet_v3_conf
    setting, last = _mobilenet_v3_conf("mobilenet_v3_small", width_mult=0.25)
    return MobileNetV3(setting, last, num_classes=10)


def small_efficientnet(torch, tv):
    from torchvision.models.efficientnet import EfficientNet, _efficientnet_conf
    setting, last = _efficientnet_conf("efficientnet_b0", width_mult=0.25, depth_mult=0.34)
    return EfficientNet(setting, 0.2, num_classes=10, last_channel=last)


def small_models(torch, tv):
    """{family: (builder(), input size)}: narrow members of each family (seconds each)."""
    M = tv.models
    R = M.resnet
    return {
        "resnet18": (lambda: R.ResNet(R.BasicBlock, [1, 1, 1, 1], num_classes=10), 32),
        "resnet50": (lambda: R.ResNet(R.Bottleneck, [1, 1, 1, 1], num_classes=10,
                                      width_per_group=16), 32),
        "mobilenet_v2": (lambda: M.mobilenet_v2(num_classes=10, width_mult=0.25), 32),
        "mobilenet_v3_small": (lambda: small_mobilenet_v3(torch, tv), 64),
        "squeezenet1_1": (lambda: M.squeezenet1_1(num_classes=10), 64),
        "shufflenet_v2": (lambda: M.ShuffleNetV2([2, 2, 2], [8, 16, 32, 64, 128],
                                                 num_classes=10), 32),
        "efficientnet_b0": (lambda: small_efficientnet(torch, tv), 32),
        "regnet_x_400mf": (lambda: small_regnet(torch, tv), 32),
        "densenet121": (lambda: M.DenseNet(8, (2, 2, 2, 2), 16, 2, num_classes=10), 32),
        "googlenet": (lambda: M.GoogLeNet(num_classes=10, aux_logits=False,
                                          transform_input=False, init_weights=True), 32),
        "mnasnet": (lambda: M.MNASNet(0.25, num_classes=10), 32),
        "alexnet": (lambda: small_alexnet(torch, tv), 224),
        "vgg11_bn": (lambda: small_vgg11_bn(torch, tv), 224),
        "convnext_tiny": (lambda: small_convnext(torch, tv), 32),
    }


def full_models(torch, tv):
    """{family: (builder(), input size)}: torchvision's own constructors, 224 px."""
    M = tv.models
    plain = {"resnet18": M.resnet18, "resnet50": M.resnet50, "mobilenet_v2": M.mobilenet_v2,
             "mobilenet_v3_small": M.mobilenet_v3_small, "squeezenet1_1": M.squeezenet1_1,
             "shufflenet_v2": M.shufflenet_v2_x1_0, "efficientnet_b0": M.efficientnet_b0,
             "regnet_x_400mf": M.regnet_x_400mf, "densenet121": M.densenet121,
             "mnasnet": M.mnasnet1_0, "alexnet": M.alexnet, "vgg11_bn": M.vgg11_bn,
             "convnext_tiny": M.convnext_tiny}
    models = {name: (fn, 224) for name, fn in plain.items()}
    models["googlenet"] = (lambda: M.googlenet(aux_logits=False, init_weights=True), 224)
    return dict(sorted(models.items(), key=lambda kv: list(small_models(torch, tv)).index(kv[0])))


def randomise(torch, model, seed):
    """BatchNorm statistics and affine terms, ConvNeXt's layer scales and the Linear layers'
    weights drawn from a seeded generator: random init leaves the first at 0/1, the layer
    scales at 1e-6 and some classifiers at std 0.01 (the blocks would barely count and the
    outputs would be too small for atol 1e-4 to mean anything)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                fan_in = module.weight.shape[1]
                module.weight.copy_(torch.randn(module.weight.shape, generator=g) / fan_in ** 0.5)
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                c = module.num_features
                module.running_mean.copy_(0.2 * torch.randn(c, generator=g))
                module.running_var.copy_(0.5 + torch.rand(c, generator=g))
                module.weight.copy_(1 + 0.2 * torch.randn(c, generator=g))
                module.bias.copy_(0.2 * torch.randn(c, generator=g))
            if hasattr(module, "layer_scale"):
                module.layer_scale.copy_(0.5 + torch.rand(module.layer_scale.shape, generator=g))
    return model.eval()


def build(torch, tv, family, small=True, seed=0):
    """(model in eval mode, seeded input (2, 3, S, S))."""
    builder, size = (small_models if small else full_models)(torch, tv)[family]
    torch.manual_seed(seed)
    model = randomise(torch, builder(), seed + 1)
    x = torch.from_numpy(numpy.random.default_rng(seed).standard_normal((2, 3, size, size))
                         .astype(numpy.float32))
    return model, x


def export(torch, model, x, path, exporter, keep_batchnorm=False):
    """Write ``path``: TorchScript exporter at opset ``exporter`` ("13", "17") or the dynamo
    exporter ("dynamo": its default opset, 20). In eval mode the TorchScript exporter folds
    each BatchNorm into the Conv before it; ``keep_batchnorm`` exports with
    ``training=TrainingMode.PRESERVE``, which keeps them (what ``--qat-sat`` fuses)."""
    with warnings.catch_warnings(), open(os.devnull, "w") as null:
        warnings.simplefilter("ignore")
        keep = sys.stdout
        sys.stdout = null                    # the dynamo exporter prints its progress
        try:
            if exporter == "dynamo":
                program = torch.onnx.export(model, (x,), dynamo=True, verbose=False)
                program.save(path)
            else:
                mode = torch.onnx.TrainingMode.PRESERVE if keep_batchnorm else \
                    torch.onnx.TrainingMode.EVAL
                torch.onnx.export(model, (x,), path, opset_version=int(exporter), dynamo=False,
                                  input_names=["input"], output_names=["output"], training=mode)
        finally:
            sys.stdout = keep
    return path


def compare(path, x):
    """{"ours", "ort": output arrays, "max_abs", "max_ref", "match"} or {"refused": message}."""
    import onnxruntime
    from n2d2py.errors import N2D2Error
    from n2d2py.onnx.runner import OnnxModel
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    ort = session.run(None, {name: x})[0]
    try:
        ours = next(iter(OnnxModel(path).run({name: x}).values()))
    except N2D2Error as exc:
        return {"refused": str(exc)}
    return {"ours": ours, "ort": ort, "max_abs": float(numpy.max(numpy.abs(ours - ort))),
            "max_ref": float(numpy.max(numpy.abs(ort))),
            "match": ours.shape == ort.shape and numpy.allclose(ours, ort, RTOL, ATOL)}


# ---------------------------------------------------------------- what a user does next
def ini_text(path, model, quantized):
    """The INI a user writes to import ``path`` (a batch of 2): with ``quantized``, SAT 4-bit
    weights on every Conv and Fc and SAT 4-bit activations on every BatchNorm and ElemWise
    (whose ReLUs merge into them), docs/pytorch.md's ``_def`` blocks."""
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    text = (f"DefaultModel=Frame\n[sp]\nSizeX={dims[3]}\nSizeY={dims[2]}\nNbChannels={dims[1]}\n"
            f"BatchSize=2\n[onnx]\nInput=sp\nType=ONNX\nFile={path}\n")
    if quantized:     # docs/pytorch.md's overrides (ini_examples/PyTorch_SAT4.ini)
        text += ("[onnx:Conv_def]\nQWeight=SAT\nQWeight.Range=15\nQWeight.ApplyScaling=0\n"
                 "[onnx:Fc_def]\nQWeight=SAT\nQWeight.Range=15\nQWeight.ApplyScaling=1\n")
        for kind in ("BatchNorm", "ElemWise"):
            text += (f"[onnx:{kind}_def]\nActivationFunction=Linear\nQAct=SAT\n"
                     f"QAct.Range=15\nQAct.Alpha=6\n")
    output = model.graph.output[0]
    classes = output.type.tensor_type.shape.dim[1].dim_value
    # PyTorch's output is the logits: a Softmax with its loss after the import's last cell
    # (``Input=onnx,<output>`` names no cell where the output is a view: SqueezeNet's Flatten)
    return text + (f"[softmax]\nInput=onnx\nType=Softmax\nNbOutputs={classes}\n"
                   f"WithLoss=1\n[softmax.Target]\n")


def user_path(path, x, folder, seed=0, quantized_path=None):
    """After the import: {"train": loss of one ``learn_batch`` step (float, every Parameter
    finite and the weights moved) or why not, "export": max |n2d2py - onnxruntime| of
    ``--export ONNX``'s file after that step, "ptq": ``post_training``'s top-1 agreement,
    "sat": loss of one step with ``ini_text``'s SAT overrides on ``quantized_path`` (default
    ``path``: a file with its BatchNorms kept), "qat":
    "fused" (``--qat-sat``'s fusion of that network) or its one-line refusal}."""
    import onnx
    import onnxruntime
    from n2d2py.deepnet import DeepNet
    from n2d2py.errors import N2D2Error
    from n2d2py.ini import parse_ini_text
    from n2d2py.onnx.export import export_onnx
    from n2d2py.qat import fuse_qat
    labels = numpy.random.default_rng(seed).integers(0, 10, len(x))
    out = {}

    def step(quantized):
        source = quantized_path if quantized and quantized_path else path
        text = ini_text(source, onnx.load(source, load_external_data=False), quantized)
        net = DeepNet.from_ini(parse_ini_text(text, os.path.join(folder, "net.ini")),
                               load_data=False)
        before = [p.data.copy() for p in net.parameters()]
        loss, _ = net.learn_batch(x, labels)
        moved = sum(not numpy.array_equal(b, p.data) for b, p in zip(before, net.parameters()))
        if not numpy.isfinite(loss) or moved == 0:
            raise N2D2Error(f"loss {loss}, {moved} parameters moved")
        y = next(iter(net.forward(x).values())).data
        if not numpy.isfinite(y).all():
            raise N2D2Error(f"diverged: loss {loss:.3g}, then non-finite outputs (the default "
                            f"learning rate on outputs of this size)")
        return net, loss

    try:
        net, out["train"] = step(False)
        exported = os.path.join(folder, "export.onnx")
        export_onnx(net, exported)
        ours = next(iter(net.forward(x).values())).data
        session = onnxruntime.InferenceSession(exported, providers=["CPUExecutionProvider"])
        ort = session.run(None, {session.get_inputs()[0].name: x})[0]
        out["export"] = float(numpy.max(numpy.abs(ort.reshape(ours.shape) - ours)))
        out["export_match"] = bool(numpy.allclose(ort.reshape(ours.shape), ours, RTOL, ATOL))
    except N2D2Error as exc:
        out.setdefault("train", f"refused: {exc}")
        out.setdefault("export", f"refused: {exc}")
    try:
        out["ptq"] = post_training(net if "export_match" in out else None, path, folder, x, seed)
    except N2D2Error as exc:
        out["ptq"] = f"refused: {exc}"
    try:
        net, out["sat"] = step(True)
        fuse_qat(net)
        out["qat"] = "fused"
    except N2D2Error as exc:
        out.setdefault("sat", f"refused: {exc}")
        out["qat"] = f"refused: {exc}"
    return out


def row(torch, tv, family, exporter, small, folder, seed=0):
    """One matrix row: (family, exporter, status, max |diff|, max |ort|, seconds)."""
    start = time.perf_counter()
    model, x = build(torch, tv, family, small, seed)
    path = os.path.join(folder, f"{family}_{exporter}.onnx")
    try:
        export(torch, model, x, path, exporter)
    except Exception as exc:    # the exporter's own failure, not ours
        return family, exporter, f"export failed: {type(exc).__name__}", None, None, 0.0
    with torch.no_grad():
        reference = model(x).numpy()
    result = compare(path, x.numpy())
    seconds = time.perf_counter() - start
    if "refused" in result:
        return family, exporter, "refused: " + result["refused"], None, None, seconds
    status = "match" if result["match"] else "MISMATCH"
    if not numpy.allclose(result["ort"], reference, RTOL, ATOL):
        status += " (onnxruntime differs from PyTorch)"
    return family, exporter, status, result["max_abs"], result["max_ref"], seconds


def post_training(net, path, folder, x, seed=0, images=16):
    """``--calib`` at 8 bits (post-training quantization) of the float network ``net`` (the
    import of ``path`` when None) on ``images`` seeded random inputs: the fraction of them on
    which the integer network's top-1 class is the float network's."""
    import types
    import onnx
    from n2d2py.deepnet import DeepNet
    from n2d2py.ini import parse_ini_text
    from n2d2py.ptq import PTQOptions, calibrate
    if net is None:
        text = ini_text(path, onnx.load(path, load_external_data=False), False)
        net = DeepNet.from_ini(parse_ini_text(text, os.path.join(folder, "net.ini")),
                               load_data=False)
    xs = numpy.random.default_rng(seed + 1).standard_normal((images,) + x.shape[1:])
    batches = [(xs[i:i + len(x)].astype(numpy.float32), numpy.zeros(len(x), int), None)
               for i in range(0, images, len(x))]
    net.sp = types.SimpleNamespace(batches=lambda *args, **kwargs: iter(batches))
    fused = calibrate(net, PTQOptions(8), set_name="Test")
    agree = []
    for batch, _, _ in batches:
        ours = fused.forward(fused.input_codes(batch))
        ref = next(iter(net.forward(batch).values())).data
        agree += list(ours.reshape(len(batch), -1).argmax(1) == ref.reshape(len(batch), -1)
                      .argmax(1))
    return float(numpy.mean(agree))


def user_row(torch, tv, family, small, folder, seed=0, exporter="17"):
    """``user_path`` on ``family`` exported at opset ``exporter`` (the SAT step on the same
    export with its BatchNorms kept; the dynamo exporter keeps them anyway)."""
    model, x = build(torch, tv, family, small, seed)
    path = export(torch, model, x, os.path.join(folder, f"{family}_{exporter}.onnx"), exporter)
    kept = path
    if exporter != "dynamo":
        kept = export(torch, model, x, os.path.join(folder, f"{family}_{exporter}_bn.onnx"),
                      exporter, keep_batchnorm=True)
    return user_path(path, x.numpy(), folder, seed, quantized_path=kept)


def short(text, width=160):
    return text if len(text) <= width else text[:width - 3] + "..."


def print_user_table(torch, tv, families, small, folder, seed):
    print("\n| model | train one step (loss) | --export ONNX vs onnxruntime after it | "
          "--calib 8 bits: top-1 as float | SAT 4-bit step (loss) | --qat-sat fusion | s |")
    print("|---|---|---|---|---|---|---|")
    counts = dict.fromkeys(("train", "export", "ptq", "sat", "qat"), 0)
    for family in families:
        start = time.perf_counter()
        r = user_row(torch, tv, family, small, folder, seed)
        cells = []
        for key in ("train", "export", "ptq", "sat", "qat"):
            value = r[key]
            ok = (value == "fused" if key == "qat" else r.get("export_match", False)
                  if key == "export" else not isinstance(value, str))
            counts[key] += ok
            text = short(value) if isinstance(value, str) else f"{value:.3g}"
            cells.append(("✓ " if ok else "✗ ") + text)
        print(f"| {family} | {' | '.join(cells)} | {time.perf_counter() - start:.1f} |",
              flush=True)
    print(f"\nof {len(families)}: {counts['train']} train, {counts['export']} export and match, "
          f"{counts['ptq']} calibrate, {counts['sat']} train with SAT, {counts['qat']} fuse")


def cpu_model():
    lines = open("/proc/cpuinfo").read().splitlines() if os.path.exists("/proc/cpuinfo") else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="the tests' narrow models")
    parser.add_argument("--family", action="append", help="only this family (repeatable)")
    parser.add_argument("--exporter", action="append", choices=EXPORTERS)
    parser.add_argument("--keep", metavar="DIR", help="write the ONNX files there")
    parser.add_argument("--torchvision-path", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--user-path", action="store_true",
                        help="also: one training step, --export ONNX, a SAT 4-bit step and "
                             "--qat-sat on each family (opset 17)")
    parser.add_argument("--no-import-table", action="store_true",
                        help="with --user-path: only its table")
    args = parser.parse_args(argv)
    torch, tv = import_torchvision(args.torchvision_path)
    torch.set_num_threads(1)
    families = args.family or list(small_models(torch, tv))
    exporters = args.exporter or list(EXPORTERS)
    print(f"torch {torch.__version__}, torchvision {tv.__version__}, "
          f"{'narrow models' if args.small else 'full-size models'}, CPU: "
          f"{cpu_model()}, load average {os.getloadavg()[0]:.1f}")
    print("| model | exporter | n2d2py vs onnxruntime | max abs diff | max abs output | s |")
    print("|---|---|---|---|---|---|")
    matched = total = 0
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or tmp
        os.makedirs(folder, exist_ok=True)
        for family in families if not (args.user_path and args.no_import_table) else ():
            for exporter in exporters:
                f, e, status, diff, ref, seconds = row(torch, tv, family, exporter,
                                                       args.small, folder, args.seed)
                total += 1
                matched += status == "match"
                numbers = "| |" if diff is None else f"| {diff:.2e} | {ref:.3g} |"
                print(f"| {f} | {e} | {status} {numbers} {seconds:.1f} |", flush=True)
    if total:
        print(f"\n{matched} of {total} rows match (rtol {RTOL}, atol {ATOL})")
    if args.user_path:
        with tempfile.TemporaryDirectory() as tmp:
            print_user_table(torch, tv, families, args.small, args.keep or tmp, args.seed)
    return 0 if matched == total else 1


if __name__ == "__main__":
    sys.exit(main())
