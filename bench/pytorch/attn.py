#!/usr/bin/python3
"""PyTorch side of bench/attn.c, and the driver that alternates the two.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=passive \
        /usr/bin/python3 bench/pytorch/attn.py --threads 1 --rounds 3 --nn build/bench_attn

Cases: torch.nn.MultiheadAttention(256, 4, batch_first=True) self-attention
on [8, 256, 256] with a causal bool attn_mask (PyTorch 1.13 has no
is_causal), need_weights=False; and the attention of its heads
softmax(q k^T / 8 + causal) v on [8, 4, 256, 64] from torch ops (1.13 has no
F.scaled_dot_product_attention).  Loss sum(y); the input and parameters take
gradients.  Each round measures PyTorch (median of --reps) and then runs the
nn.h binary; the table shows medians over rounds and PyTorch time / nn.h
time (> 1: nn.h is faster).  Without --nn only PyTorch's figures print.
"""
import argparse
import math
import os
import statistics
import subprocess
import time

import torch

CASES = ["mha_causal_8x256x256_h4", "sdpa_causal_8x4x256x64"]


def torch_round(reps):
    torch.manual_seed(1)
    m = torch.nn.MultiheadAttention(256, 4, batch_first=True)
    x0 = torch.randn(8, 256, 256)
    qkv0 = [torch.randn(8, 4, 256, 64) for _ in range(3)]
    causal = ~torch.ones(256, 256, dtype=torch.bool).tril()

    def sdpa(q, k, v):
        s = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(64))
        return torch.softmax(s.masked_fill(causal, float("-inf")), -1) @ v

    res = {}
    for label in CASES:
        tf, tb = [], []
        for r in range(-2, reps):
            with torch.no_grad():
                t0 = time.perf_counter()
                if label.startswith("mha"):
                    m(x0, x0, x0, attn_mask=causal, need_weights=False)
                else:
                    sdpa(*qkv0)
                t1 = time.perf_counter()
            if label.startswith("mha"):
                x = x0.clone().requires_grad_(True)
                t2 = time.perf_counter()
                m(x, x, x, attn_mask=causal, need_weights=False)[0].sum().backward()
            else:
                q, k, v = [t.clone().requires_grad_(True) for t in qkv0]
                t2 = time.perf_counter()
                sdpa(q, k, v).sum().backward()
            t3 = time.perf_counter()
            if r >= 0:
                tf.append(t1 - t0)
                tb.append(t3 - t2)
        res[label] = (1e3 * statistics.median(tf), 1e3 * statistics.median(tb))
    return res


def nn_round(binary, threads, reps):
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    out = subprocess.run([binary, str(threads), str(reps)], capture_output=True, text=True, env=env,
                         check=True).stdout
    res = {}
    for line in out.splitlines():
        label, f, b = line.split()
        res[label] = (float(f), float(b))
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--nn", help="path of the built bench/attn.c binary")
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
    print("threads %d, median ms over %d rounds (each a median of %d reps); ratio = PyTorch / nn.h"
          % (a.threads, a.rounds, a.reps))
    print("%-26s %9s %9s %6s | %9s %9s %6s" % ("case", "torch fwd", "nn fwd", "ratio",
                                               "torch f+b", "nn f+b", "ratio"))
    for label in CASES:
        tf = statistics.median(r[label][0] for r in tr)
        tb = statistics.median(r[label][1] for r in tr)
        nf = statistics.median(r[label][0] for r in nr)
        nb = statistics.median(r[label][1] for r in nr)
        print("%-26s %9.2f %9.2f %6.2f | %9.2f %9.2f %6.2f" % (label, tf, nf, tf / nf, tb, nb, tb / nb))


if __name__ == "__main__":
    main()
