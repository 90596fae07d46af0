#!/usr/bin/python3
"""PyTorch side of bench/conv.c, and the driver that alternates the two.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=passive \
        /usr/bin/python3 bench/pytorch/conv.py --threads 1 --rounds 5 --nn build/bench_conv

Each round measures every layer in PyTorch (median of --reps) and then runs
the nn.h binary (same threads and reps); the table shows the medians over
rounds and the ratio PyTorch time / nn.h time (> 1: nn.h is faster).
Without --nn only the PyTorch figures are printed, in the C program's format.
"""
import argparse
import statistics
import os
import subprocess


def nn_env():
    """nn.h's environment: OMP_WAIT_POLICY=passive is PyTorch's setting (its
    spinning threads otherwise fight OpenBLAS's); nn.h runs with libgomp's
    default, each side at its best."""
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    return env
import time

import torch
import torch.nn.functional as F

LAYERS = [  # label, N, C, H, W, OC, K, stride, pad, groups, input_grad
    ("model_conv1_1x28x28_32_5x5", 64, 1, 28, 28, 32, 5, 1, 0, 1, 0),
    ("model_conv2_32x12x12_64_5x5", 64, 32, 12, 12, 64, 5, 1, 0, 1, 1),
    ("resnet_64x32x32_64_3x3", 64, 64, 32, 32, 64, 3, 1, 1, 1, 1),
    ("depthwise_64x32x32_3x3", 64, 64, 32, 32, 64, 3, 1, 1, 64, 1),
    ("pointwise_64x32x32_128_1x1", 64, 64, 32, 32, 128, 1, 1, 0, 1, 1),
]


def torch_round(reps):
    res = {}
    torch.manual_seed(1)
    for label, N, C, H, W, OC, K, s, p, g, ig in LAYERS:
        x0 = torch.randn(N, C, H, W)
        w = (torch.rand(OC, C // g, K, K) * 0.2 - 0.1).requires_grad_(True)
        b = (torch.rand(OC) * 0.2 - 0.1).requires_grad_(True)
        tf, tb = [], []
        for r in range(-2, reps):
            with torch.no_grad():
                t0 = time.perf_counter()
                F.conv2d(x0, w, b, stride=s, padding=p, groups=g)
                t1 = time.perf_counter()
            x = x0.clone().requires_grad_(bool(ig))
            w.grad = None
            b.grad = None
            t2 = time.perf_counter()
            F.conv2d(x, w, b, stride=s, padding=p, groups=g).sum().backward()
            t3 = time.perf_counter()
            if r >= 0:
                tf.append(t1 - t0)
                tb.append(t3 - t2)
        res[label] = (1e3 * statistics.median(tf), 1e3 * statistics.median(tb))
    return res


def nn_round(binary, threads, reps):
    out = subprocess.run([binary, str(threads), str(reps)], capture_output=True, text=True, env=nn_env(),
                         check=True).stdout
    res = {}
    for line in out.splitlines():
        label, f, b = line.split()
        res[label] = (float(f), float(b))
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--nn", help="path of the built bench/conv.c binary")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if not a.nn:
        for label, (f, b) in torch_round(a.reps).items():
            print("%s %.3f %.3f" % (label, f, b))
        return
    tr, nr = [], []
    for _ in range(a.rounds):
        tr.append(torch_round(a.reps))
        nr.append(nn_round(a.nn, a.threads, a.reps))
    print("threads %d, batch 64, median ms over %d rounds (each a median of %d reps); "
          "ratio = PyTorch / nn.h" % (a.threads, a.rounds, a.reps))
    print("%-30s %9s %9s %6s | %9s %9s %6s" % ("layer", "torch fwd", "nn fwd", "ratio",
                                               "torch f+b", "nn f+b", "ratio"))
    for label, *_ in LAYERS:
        tf = statistics.median(r[label][0] for r in tr)
        tb = statistics.median(r[label][1] for r in tr)
        nf = statistics.median(r[label][0] for r in nr)
        nb = statistics.median(r[label][1] for r in nr)
        print("%-30s %9.2f %9.2f %6.2f | %9.2f %9.2f %6.2f" % (label, tf, nf, tf / nf, tb, nb, tb / nb))


if __name__ == "__main__":
    main()
