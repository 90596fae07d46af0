#!/usr/bin/python3
"""PyTorch side of bench/norm.c, and the driver that alternates the two.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=passive \
        /usr/bin/python3 bench/pytorch/norm.py --threads 1 --rounds 5 --nn build/bench_norm

Each round measures every case in PyTorch (median of --reps) and then runs
the nn.h binary (same threads and reps); the table shows the medians over
rounds and the ratio PyTorch time / nn.h time (> 1: nn.h is faster).
Without --nn only the PyTorch figures are printed, in the C program's format.
"""
import argparse
import statistics
import os
import subprocess


def nn_env(passive=False):
    """nn.h's environment: OMP_WAIT_POLICY=passive is PyTorch's setting (its
    spinning threads otherwise fight OpenBLAS's); nn.h runs with libgomp's
    default, each side at its best, unless --nn-passive: on a machine other
    processes load, spinning team threads lose whole time slices at every
    region's end (LayerNorm at 2 threads took 50-100x its idle time here), and
    passive waiting is the fair comparison."""
    env = dict(os.environ)
    if not passive:
        env.pop("OMP_WAIT_POLICY", None)
    return env


import time

import torch
import torch.nn.functional as F

CASES = [  # label, group norm, k (layer norm's normalized dims), shape
    ("layernorm_2048x256", 0, 1, (2048, 256)),
    ("groupnorm32_2048x256", 1, 0, (2048, 256)),
    ("layernorm_64x64x32x32", 0, 3, (64, 64, 32, 32)),
    ("groupnorm32_64x64x32x32", 1, 0, (64, 64, 32, 32)),
]


def torch_round(reps):
    res = {}
    torch.manual_seed(1)
    for label, gn, k, shape in CASES:
        x0 = torch.randn(*shape)
        ps = (shape[1],) if gn else shape[len(shape) - k:]
        w = (torch.rand(*ps) + 0.5).requires_grad_(True)
        b = (torch.rand(*ps) * 0.2 - 0.1).requires_grad_(True)

        def run(x):
            return F.group_norm(x, 32, w, b, 1e-5) if gn else F.layer_norm(x, ps, w, b, 1e-5)
        tf, tb = [], []
        for r in range(-2, reps):
            with torch.no_grad():
                t0 = time.perf_counter()
                run(x0)
                t1 = time.perf_counter()
            x = x0.clone().requires_grad_(True)
            w.grad = None
            b.grad = None
            t2 = time.perf_counter()
            run(x).sum().backward()
            t3 = time.perf_counter()
            if r >= 0:
                tf.append(t1 - t0)
                tb.append(t3 - t2)
        res[label] = (1e3 * statistics.median(tf), 1e3 * statistics.median(tb))
    return res


def nn_round(binary, threads, reps, passive):
    out = subprocess.run([binary, str(threads), str(reps)], capture_output=True, text=True, env=nn_env(passive),
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
    ap.add_argument("--nn", help="path of the built bench/norm.c binary")
    ap.add_argument("--nn-passive", action="store_true", help="run nn.h with OMP_WAIT_POLICY=passive too")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if not a.nn:
        for label, (f, b) in torch_round(a.reps).items():
            print("%s %.3f %.3f" % (label, f, b))
        return
    tr, nr = [], []
    for _ in range(a.rounds):
        tr.append(torch_round(a.reps))
        nr.append(nn_round(a.nn, a.threads, a.reps, a.nn_passive))
    print("threads %d, median ms over %d rounds (each a median of %d reps); "
          "ratio = PyTorch / nn.h%s" % (a.threads, a.rounds, a.reps,
                                        "; nn.h waits passively" if a.nn_passive else ""))
    print("%-30s %9s %9s %6s | %9s %9s %6s" % ("case", "torch fwd", "nn fwd", "ratio",
                                               "torch f+b", "nn f+b", "ratio"))
    for label, *_ in CASES:
        tf = statistics.median(r[label][0] for r in tr)
        tb = statistics.median(r[label][1] for r in tr)
        nf = statistics.median(r[label][0] for r in nr)
        nb = statistics.median(r[label][1] for r in nr)
        print("%-30s %9.2f %9.2f %6.2f | %9.2f %9.2f %6.2f" % (label, tf, nf, tf / nf, tb, nb, tb / nb))


if __name__ == "__main__":
    main()
