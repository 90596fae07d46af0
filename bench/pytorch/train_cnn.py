#!/usr/bin/python3
"""PyTorch side of bench/train_cnn.c, and the driver that alternates them.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=passive \
        /usr/bin/python3 bench/pytorch/train_cnn.py --threads 1 --rounds 3 --nn build/bench_train_cnn

The same model as train_cnn.c (conv 1->32 5x5, ReLU, maxpool 2, conv 32->64
5x5, ReLU, maxpool 2, flatten, linear 1024->128, ReLU, linear 128->10), Adam
1e-3, batch 128, data held in memory as float tensors (no DataLoader
workers).  Each round trains one epoch in PyTorch, in this process, and then
runs the nn.h program for one epoch; printed: seconds per epoch, test
accuracy after it, peak RSS (PyTorch's includes the interpreter and torch).
Without --nn only PyTorch runs (--epochs epochs).  First, --warmup epochs
(default 1) train a model of their own in PyTorch, not counted: the first
epoch of the process ran up to 4x slower than the next.
"""
import threads  # first, before torch: caps OpenBLAS's threads
import argparse
import gzip
import os
import resource
import statistics
import subprocess


def nn_env():
    """nn.h's environment: OMP_WAIT_POLICY=passive is PyTorch's setting (its
    spinning threads otherwise fight OpenBLAS's); nn.h runs with libgomp's
    default, each side at its best."""
    env = threads.child_env()
    env.pop("OMP_WAIT_POLICY", None)
    return env
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def idx(path):
    with gzip.open(path) if path.endswith(".gz") else open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(dirname, prefix):
    def find(name):
        p = os.path.join(dirname, name)
        return p if os.path.exists(p) else p + ".gz"
    x = idx(find(prefix + "-images-idx3-ubyte"))
    y = idx(find(prefix + "-labels-idx1-ubyte"))
    return torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1), torch.from_numpy(y.astype(np.int64))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 32, 5)
        self.c2 = nn.Conv2d(32, 64, 5)
        self.f1 = nn.Linear(1024, 128)
        self.f2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        return self.f2(F.relu(self.f1(x.flatten(1))))


def peak_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=1,
                    help="uncounted PyTorch epochs first, on a model of their own (the first "
                         "epoch of a process ran up to 4x slower than the next)")
    ap.add_argument("--nn", help="path of the built bench/train_cnn.c binary")
    ap.add_argument("--data", default=os.environ.get("NN_DATA", "/usr/share/datasets/fashion-mnist"))
    a = ap.parse_args()
    threads.check(a.threads)
    torch.set_num_threads(a.threads)
    xtr, ytr = load(a.data, "train")
    xte, yte = load(a.data, "t10k")

    def epoch(net, opt):
        t0 = time.perf_counter()
        perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr), 128):
            idx_ = perm[i:i + 128]
            loss = F.cross_entropy(net(xtr[idx_]), ytr[idx_])
            opt.zero_grad()
            loss.backward()
            opt.step()
        secs = time.perf_counter() - t0
        with torch.no_grad():
            acc = sum((net(xte[i:i + 500]).argmax(1) == yte[i:i + 500]).sum().item()
                      for i in range(0, len(xte), 500)) / len(xte)
        return secs, 100.0 * acc

    for w in range(a.warmup):
        torch.manual_seed(2)
        wnet = Net()
        s, acc = epoch(wnet, torch.optim.Adam(wnet.parameters(), lr=1e-3))
        print("warm-up %d: torch %.2f s (not counted)" % (w + 1, s), flush=True)
        del wnet
    torch.manual_seed(1)
    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    if not a.nn:
        for e in range(a.epochs):
            s, acc = epoch(net, opt)
            print("epoch %d seconds %.3f test_acc %.2f peak_mb %.1f" % (e + 1, s, acc, peak_mb()))
        return
    ts, ns, tacc, nacc, nmem = [], [], [], [], []
    for r in range(a.rounds):
        s, acc = epoch(net, opt)
        ts.append(s)
        tacc.append(acc)
        out = subprocess.run([a.nn, str(a.threads), "1"], capture_output=True, text=True, check=True, env=nn_env()).stdout
        f = out.split()
        ns.append(float(f[f.index("seconds") + 1]))
        nacc.append(float(f[f.index("test_acc") + 1]))
        nmem.append(float(f[f.index("peak_mb") + 1]))
        print("round %d: torch %.2f s (%.2f%%), nn.h %.2f s (%.2f%%)" % (r + 1, s, acc, ns[-1], nacc[-1]),
              flush=True)
    tm, nm = statistics.median(ts), statistics.median(ns)
    print("threads %d: seconds/epoch torch %.2f nn.h %.2f ratio %.2f; test acc after 1 epoch "
          "torch %.2f%% nn.h %.2f%%; peak MB torch %.0f nn.h %.0f (ratio %.2f)"
          % (a.threads, tm, nm, tm / nm, tacc[0], nacc[0], peak_mb(), max(nmem), peak_mb() / max(nmem)))


if __name__ == "__main__":
    main()
