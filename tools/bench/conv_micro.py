"""Micro-benchmark: n2d2py conv2d forward+backward against torch.nn.functional.conv2d (CPU).

Usage: python tools/bench/conv_micro.py [--threads 2] [--repeat 5] [--batch 128]

Shapes are LeNet-5 (1->6 5x5 on 32x32, 6->16 5x5 on 14x14, 16->120 5x5 on 5x5) and ResNet-20
(16/32/64 channels, 3x3, pad 1, on 32/16/8, plus the two stride-2 transitions). Each row
prints the best-of-N time of one training step of the layer (forward, then backward for x, W
and b) and the throughput ratio torch_time / n2d2py_time (1.0 = as fast as torch).
torch is only the yardstick here; n2d2py itself never imports it.
"""
import argparse
import time

import numpy

import n2d2py.functions as F
from n2d2py.autograd import Variable

SHAPES = [  # name, (N is set by --batch), C, H, O, kernel, stride, padding
    ("lenet c1 1->6 5x5 32", 1, 32, 6, 5, 1, 0),
    ("lenet c3 6->16 5x5 14", 6, 14, 16, 5, 1, 0),
    ("lenet c5 16->120 5x5 5", 16, 5, 120, 5, 1, 0),
    ("resnet 16->16 3x3 32", 16, 32, 16, 3, 1, 1),
    ("resnet 16->32 3x3/2 32", 16, 32, 32, 3, 2, 1),
    ("resnet 32->32 3x3 16", 32, 16, 32, 3, 1, 1),
    ("resnet 32->64 3x3/2 16", 32, 16, 64, 3, 2, 1),
    ("resnet 64->64 3x3 8", 64, 8, 64, 3, 1, 1),
]


def best_of(step, repeat):
    step()  # warm-up: allocations, BLAS thread start
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return min(times)


def ours(x, W, b, gy, stride, padding):
    def step():
        xv, Wv, bv = Variable(x, True), Variable(W, True), Variable(b, True)
        F.conv2d(xv, Wv, bv, stride, padding).backward(gy)
    return step


def theirs(torch, x, W, b, gy, stride, padding):
    xt, Wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, W, b))
    gyt = torch.tensor(gy)

    def step():
        xt.grad = Wt.grad = bt.grad = None
        torch.nn.functional.conv2d(xt, Wt, bt, stride, padding).backward(gyt)
    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()
    from n2d2py import parallel
    parallel.set_threads(args.threads)   # n2d2py's threads (BLAS: one per thread)
    try:
        import torch
        torch.set_num_threads(args.threads)
    except ImportError:
        torch = None
    rng = numpy.random.default_rng(0)
    total_ours = total_torch = 0.0
    print(f"{'layer':26s} {'n2d2py ms':>10s} {'torch ms':>10s} {'ratio':>6s}")
    for name, C, H, O, k, s, p in SHAPES:
        x = rng.standard_normal((args.batch, C, H, H), dtype=numpy.float32)
        W = rng.standard_normal((O, C, k, k), dtype=numpy.float32)
        b = rng.standard_normal(O, dtype=numpy.float32)
        oh = (H + 2 * p - k) // s + 1
        gy = rng.standard_normal((args.batch, O, oh, oh), dtype=numpy.float32)
        t_ours = best_of(ours(x, W, b, gy, s, p), args.repeat)
        total_ours += t_ours
        if torch is None:
            print(f"{name:26s} {t_ours * 1e3:10.2f} {'-':>10s} {'-':>6s}")
            continue
        t_torch = best_of(theirs(torch, x, W, b, gy, s, p), args.repeat)
        total_torch += t_torch
        print(f"{name:26s} {t_ours * 1e3:10.2f} {t_torch * 1e3:10.2f} {t_torch / t_ours:6.2f}")
    if torch is not None:
        print(f"{'all layers':26s} {total_ours * 1e3:10.2f} {total_torch * 1e3:10.2f} "
              f"{total_torch / total_ours:6.2f}")


if __name__ == "__main__":
    main()
