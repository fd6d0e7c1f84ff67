"""Peer of ``loader.py``: torchvision's ImageFolder + DataLoader over the same folder with the
transforms equivalent to MobileNet_v2.ini's chain, the same batch size and worker count.
Prints one JSON line ``{"images_per_s": ...}`` (best of the timed passes, after a warm-up pass).

``--torchvision-path DIR`` puts DIR first on ``sys.path`` (a torchvision installed with
``pip install --no-deps --target DIR torchvision==0.28.0``, the release made for torch 2.13):
when its compiled operators cannot load beside the installed torch, the two operator schemas its
Python code registers fake kernels for (``nms``, ``qnms``) are declared first, so the import
works; the loader does not use those operators.
"""
import argparse
import json
import sys
import time

MEAN = [123.68 / 255, 116.78 / 255, 103.94 / 255]       # RGB order: MobileNet_v2.ini's BGR values
STD = [1 / (0.017 * 255)] * 3                            # x * 0.017 on the 0..255 scale


def import_torchvision(path):
    if path:
        sys.path.insert(0, path)
    import torch
    try:
        import torchvision
    except RuntimeError:
        for name in list(sys.modules):
            if name.startswith("torchvision"):
                del sys.modules[name]
        library = torch.library.Library("torchvision", "DEF")
        library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        import_torchvision.library = library       # keep the definitions alive
        import torchvision
    return torch, torchvision


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("train")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--passes", type=int, default=1)
    parser.add_argument("--torchvision-path", default=None)
    args = parser.parse_args()
    torch, torchvision = import_torchvision(args.torchvision_path)
    torch.set_num_threads(1)
    from torchvision import transforms as T
    chain = T.Compose([T.Resize(192), T.CenterCrop(192), T.RandomCrop(160),
                       T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])
    dataset = torchvision.datasets.ImageFolder(args.train, transform=chain)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch, shuffle=True,
                                         num_workers=args.workers,
                                         persistent_workers=args.workers > 0)
    rates = []
    for k in range(args.passes + 1):             # the first pass warms up (workers, file cache)
        start, count = time.perf_counter(), 0
        for x, _ in loader:
            count += len(x)
        if k:
            rates.append(count / (time.perf_counter() - start))
    print(json.dumps({"images_per_s": max(rates), "torch": torch.__version__,
                      "torchvision": torchvision.__version__}))


if __name__ == "__main__":
    main()
