"""Streaming loader benchmark: images/s of n2d2py's loader alone (decode + MobileNet-v2's
transformation chain + batches of 256) against torchvision's ImageFolder + DataLoader with the
equivalent transforms and the same worker count, in the same run; peak memory of a pass over
5000 images against a pass over 500.

    python tools/bench/loader.py                       # makes the folder on first use
    python tools/bench/loader.py --workers 1 2 --repeat 2 --torchvision-path /work/tv-0.28

The folder (default /tmp/n2d2py-loader-bench) is ImageNet-like: ``train/<synset>/*.JPEG`` (100
synsets x 50 images, 256-500 px per side, smooth random scenes with noise, JPEG quality 90),
``val/`` + ``val.txt``, ``synsets.txt`` and ``synsets-10.txt`` (the first 10 synsets: the
500-image pass). The chain is the ``[database]``/``[sp]`` part of N2D2's MobileNet_v2.ini
(Rescale 192 keep-aspect cover, PadCrop 192, ColorSpace BGR, RangeAffine, random 160 slice,
random flip) read from ``--ini``. The peer (``loader_torchvision.py``) runs in its own process
(``--peer-python``): Resize(192), CenterCrop(192), RandomCrop(160), RandomHorizontalFlip,
ToTensor, Normalize. n2d2py runs with the command's allocator setting (``keep_freed_memory``), the
peer with its own defaults.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)
DEFAULT_INI = os.path.join(ROOT, "tests", "data", "n2d2", "models", "MobileNet_v2.ini")
CLASSES, PER_CLASS, VAL = 100, 50, 200


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or "unknown CPU"


def scene(rng, height, width):
    """A smooth random picture with shapes and a little noise (JPEG-sized like a photo)."""
    import cv2
    small = rng.integers(0, 256, (6, 6, 3), dtype=numpy.uint8)
    image = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(4):
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.circle(image, centre, int(rng.integers(10, 80)), colour, -1)
    noise = rng.normal(0, 6, image.shape)
    return numpy.clip(image + noise, 0, 255).astype(numpy.uint8)


def make_folder(root, seed=0):
    """The ImageNet-like folder (skipped when ``root/synsets.txt`` exists)."""
    import cv2
    if os.path.isfile(os.path.join(root, "synsets.txt")):
        return
    rng = numpy.random.default_rng(seed)
    synsets = [f"n{10000000 + 7 * k:08d}" for k in range(CLASSES)]
    params = [cv2.IMWRITE_JPEG_QUALITY, 90]
    for k, synset in enumerate(synsets):
        folder = os.path.join(root, "train", synset)
        os.makedirs(folder, exist_ok=True)
        for j in range(PER_CLASS):
            h, w = (int(v) for v in rng.integers(256, 501, 2))
            cv2.imwrite(os.path.join(folder, f"{synset}_{j}.JPEG"), scene(rng, h, w), params)
    os.makedirs(os.path.join(root, "val"), exist_ok=True)
    lines = []
    for j in range(VAL):
        h, w = (int(v) for v in rng.integers(256, 501, 2))
        name = f"ILSVRC2012_val_{j + 1:08d}.JPEG"
        cv2.imwrite(os.path.join(root, "val", name), scene(rng, h, w), params)
        lines.append(f"{name} {j % 10}")      # valid for synsets-10.txt too
    with open(os.path.join(root, "val.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(root, "synsets-10.txt"), "w") as f:
        f.write("\n".join(synsets[:10]) + "\n")
    with open(os.path.join(root, "synsets.txt"), "w") as f:     # written last: marks completion
        f.write("\n".join(synsets) + "\n")


def provider(ini, folder, labels="synsets.txt"):
    """The StimuliProvider of ``ini``'s [database]/[sp] on ``folder`` (no network built)."""
    from n2d2py.data import StimuliProvider
    from n2d2py.data.database import database_from_section
    from n2d2py.ini import load_ini
    document = load_ini(ini)
    section = document.section("database")
    section.set("DataPath", folder)
    section.set("LabelPath", os.path.join(folder, labels))
    database = database_from_section(section, numpy.random.default_rng(1))
    return StimuliProvider.from_ini(document, database, numpy.random.default_rng(1))


def one_pass(sp, workers, seed):
    """(images, seconds) of one shuffled pass over Learn."""
    sp.workers = workers
    start, count = time.perf_counter(), 0
    for x, _, _ in sp.batches("Learn", True, numpy.random.default_rng(seed)):
        count += len(x)
    return count, time.perf_counter() - start


def ours(args, workers):
    """images/s of the timed passes (after one warm-up pass: workers started, files cached)."""
    sp = provider(args.ini, args.folder)
    one_pass(sp, workers, 0)
    rates = []
    for k in range(args.passes):
        count, seconds = one_pass(sp, workers, k + 1)
        rates.append(count / seconds)
    from n2d2py.data.loader import close_all
    close_all()
    return max(rates)


def peer(args, workers):
    command = [args.peer_python, os.path.join(HERE, "loader_torchvision.py"),
               os.path.join(args.folder, "train"), "--workers", str(workers),
               "--passes", str(args.passes)]
    if args.torchvision_path:
        command += ["--torchvision-path", args.torchvision_path]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"peer failed: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])["images_per_s"]


def proportional_set_size(pid):
    """Pss of a process in MB (its private pages plus its share of shared ones), 0 if gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def sampled_pass(ini, folder, labels, workers, period=0.005):
    """(images, peak of the sum, sum of the peaks) in MB for one pass: the Pss of the main
    process and of each worker sampled every ``period`` s. The sum of each process's own peak
    bounds the true simultaneous peak from above whatever the sampling misses (a short pass
    gives few chances to catch the main and a worker at their highest together)."""
    import threading
    sp = provider(ini, folder, labels)
    peaks, total, running = {}, [0.0], [True]

    def sample():
        while running[0]:
            pool = getattr(sp, "_pool", None)
            pids = [os.getpid()] + ([p.pid for p in pool.processes] if pool is not None else [])
            sizes = [proportional_set_size(pid) for pid in pids]
            for k, size in enumerate(sizes):
                peaks[k] = max(peaks.get(k, 0.0), size)
            total[0] = max(total[0], sum(sizes))
            time.sleep(period)
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    count, _ = one_pass(sp, workers, 1)
    running[0] = False
    thread.join()
    from n2d2py.data.loader import close_all
    close_all()
    return count, total[0], sum(peaks.values())


def peak_memory(args, labels, workers):
    """(images, peak of the sum, sum of the peaks) of one pass, in a fresh process."""
    code = (f"import sys; sys.path.insert(0, {ROOT!r}); sys.path.insert(0, {HERE!r}); "
            f"from n2d2py.backend import keep_freed_memory; keep_freed_memory(); "
            f"import loader; print(*loader.sampled_pass({args.ini!r}, {args.folder!r}, "
            f"{labels!r}, {workers}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"memory measurement failed: {out.stderr.strip()[-500:]}")
    n, total, bound = out.stdout.split()
    return int(n), float(total), float(bound)


def transformation_costs(args, count=200):
    """Mean microseconds per image of decoding and of each transformation of the Learn chain."""
    from n2d2py.data.transformation import hwc
    sp = provider(args.ini, args.folder)
    rng = numpy.random.default_rng(0)
    ids = sp.database.partition("Learn")[:count]
    for i in ids:                     # file contents in the page cache: time the decoding only
        with open(sp.database.file_name(i), "rb") as f:
            f.read()
    costs = {"decode (cv2.imdecode)": 0.0}
    chain = [t for t in sp.static + sp.on_the_fly if t.applies("Learn")]
    for i in ids:
        start = time.perf_counter()
        image = hwc(sp.database.image(i))
        costs["decode (cv2.imdecode)"] += time.perf_counter() - start
        for t in chain:
            start = time.perf_counter()
            image = hwc(t.apply(image, rng))
            name = t.describe()
            costs[name] = costs.get(name, 0.0) + time.perf_counter() - start
        start = time.perf_counter()
        sp.to_tensor(image[None])
        costs["to tensor (CHW float32)"] = costs.get("to tensor (CHW float32)", 0.0) + \
            time.perf_counter() - start
    return {name: 1e6 * seconds / len(ids) for name, seconds in costs.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", default="/tmp/n2d2py-loader-bench")
    parser.add_argument("--ini", default=DEFAULT_INI)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--passes", type=int, default=1, help="timed passes (best one kept)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of (ours, peer) per count")
    parser.add_argument("--peer-python", default=sys.executable,
                        help="Python with torch + torchvision for the peer")
    parser.add_argument("--torchvision-path", default=None,
                        help="folder holding a torchvision built for this torch (pip install "
                             "--no-deps --target DIR torchvision==X): put first on the peer's path")
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--no-memory", action="store_true")
    args = parser.parse_args()
    from n2d2py.backend import keep_freed_memory
    keep_freed_memory()          # the command's allocator setting (workers inherit it)
    make_folder(args.folder)
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; load average at start "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print("Per image, Learn chain, in-process (microseconds):")
    for name, micros in transformation_costs(args).items():
        print(f"  {name:58s} {micros:9.1f}")
    print(f"{'workers':>8} {'round':>6} {'n2d2py img/s':>13} {'torchvision img/s':>18} {'ratio':>6}")
    for workers in args.workers:
        for r in range(args.repeat):
            mine = ours(args, workers)
            theirs = None if args.no_peer else peer(args, workers)
            ratio = f"{mine / theirs:6.2f}" if theirs else "     -"
            print(f"{workers:>8} {r + 1:>6} {mine:13.1f} {theirs or float('nan'):18.1f} {ratio}",
                  flush=True)
    if not args.no_memory:
        print("peak memory of one pass (MB, Pss of the main process + workers; 'bound' = sum "
              "of each process's own peak)")
        for workers in args.workers:
            small, large = (peak_memory(args, "synsets-10.txt", workers),
                            peak_memory(args, "synsets.txt", workers))
            print(f"  {workers} worker(s): {small[0]} images {small[1]:.1f} (bound "
                  f"{small[2]:.1f}); {large[0]} images {large[1]:.1f} (bound {large[2]:.1f}); "
                  f"difference {large[1] - small[1]:+.1f} (bound {large[2] - small[2]:+.1f}); "
                  f"target: within 50")
    print(f"load average at end {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"benchmark process CPU {usage.ru_utime + usage.ru_stime:.1f} s")


if __name__ == "__main__":
    main()
