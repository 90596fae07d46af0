#!/usr/bin/python3
"""PyTorch side of bench/rnn.c, and the driver that alternates the two.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=passive \
        /usr/bin/python3 bench/pytorch/rnn.py --threads 1 --rounds 3 --nn build/bench_rnn

Each round measures every case in PyTorch (median of --reps) and then runs
the nn.h binary (same threads and reps); the table shows the medians over
rounds and the ratio PyTorch time / nn.h time (> 1: nn.h is faster).
Without --nn only the PyTorch figures are printed, in the C program's format.
"""
import argparse
import os
import statistics
import subprocess
import time

import torch

T, B, I, H, V = 100, 32, 128, 256, 10000
CASES = [  # label, kind (0 LSTM, 1 GRU, 2 embedding), layers, bidirectional
    ("lstm_b32_t100_i128_h256", 0, 1, False),
    ("gru_b32_t100_i128_h256", 1, 1, False),
    ("lstm2_bi_b32_t100_i128_h256", 0, 2, True),
    ("embedding_10000x256_on_32x100", 2, 0, False),
]


def nn_env():
    """nn.h runs with libgomp's default wait policy, PyTorch with passive."""
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    return env


def torch_round(reps, only):
    res = {}
    torch.manual_seed(1)
    idx = torch.randint(0, V, (B, T))
    for label, kind, layers, bidir in CASES:
        if only and only not in label:
            continue
        if kind == 0:
            m = torch.nn.LSTM(I, H, layers, bidirectional=bidir)
        elif kind == 1:
            m = torch.nn.GRU(I, H, layers, bidirectional=bidir)
        else:
            m = torch.nn.Embedding(V, H)
        x0 = torch.randn(T, B, I)
        tf, tb = [], []
        for r in range(-2, reps):
            with torch.no_grad():
                t0 = time.perf_counter()
                m(idx) if kind == 2 else m(x0)
                t1 = time.perf_counter()
            for p in m.parameters():
                p.grad = None
            x = x0.clone().requires_grad_(True)
            t2 = time.perf_counter()
            y = m(idx) if kind == 2 else m(x)[0]
            y.sum().backward()
            t3 = time.perf_counter()
            if r >= 0:
                tf.append(t1 - t0)
                tb.append(t3 - t2)
        res[label] = (1e3 * statistics.median(tf), 1e3 * statistics.median(tb))
    return res


def nn_round(binary, threads, reps, only):
    out = subprocess.run([binary, str(threads), str(reps), only or ""], capture_output=True,
                         text=True, env=nn_env(), check=True).stdout
    res = {}
    for line in out.splitlines():
        label, f, b = line.split()
        res[label] = (float(f), float(b))
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default="", help="cases whose label holds this")
    ap.add_argument("--nn", help="path of the built bench/rnn.c binary")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if not a.nn:
        for label, (f, b) in torch_round(a.reps, a.only).items():
            print("%s %.3f %.3f" % (label, f, b))
        return
    tr, nr = [], []
    for _ in range(a.rounds):
        tr.append(torch_round(a.reps, a.only))
        nr.append(nn_round(a.nn, a.threads, a.reps, a.only))
    print("threads %d, median ms over %d rounds (each a median of %d reps); "
          "ratio = PyTorch / nn.h" % (a.threads, a.rounds, a.reps))
    print("%-30s %9s %9s %6s | %9s %9s %6s" % ("case", "torch fwd", "nn fwd", "ratio",
                                               "torch f+b", "nn f+b", "ratio"))
    for label, *_ in CASES:
        if label not in tr[0]:
            continue
        tf = statistics.median(r[label][0] for r in tr)
        tb = statistics.median(r[label][1] for r in tr)
        nf = statistics.median(r[label][0] for r in nr)
        nb = statistics.median(r[label][1] for r in nr)
        print("%-30s %9.2f %9.2f %6.2f | %9.2f %9.2f %6.2f" % (label, tf, nf, tf / nf, tb, nb, tb / nb))


if __name__ == "__main__":
    main()
