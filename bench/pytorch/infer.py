#!/usr/bin/python3
"""PyTorch side of bench/infer.c, and the driver that alternates the two.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=passive \\
        /usr/bin/python3 bench/pytorch/infer.py --threads 1 --rounds 3 --nn build/bench_infer

The benchmark MLP (784-256-128-10) and CNN (conv 1->32 5x5, ReLU, maxpool 2,
conv 32->64 5x5, ReLU, maxpool 2, flatten, linear 1024->128, ReLU, linear
128->10) in eval mode under torch.inference_mode, at batch 1, 8 and 256:
per-image microseconds, best of --passes passes over 2,000 test images
(Fashion-MNIST, or uniform random inputs when it is missing).  Each round
times PyTorch in this process, then runs the nn.h binary; the table shows
the best over rounds of each side and torch / nn.h (> 1: nn.h is faster).
"""
import threads  # first, before torch: caps OpenBLAS's threads
import argparse
import gzip
import os
import subprocess
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

NIMG = 2000
BATCHES = (1, 8, 256)


def load_test(dirname):
    p = os.path.join(dirname, "t10k-images-idx3-ubyte")
    p = p if os.path.exists(p) else p + ".gz"
    if not os.path.exists(p):
        return None
    with gzip.open(p) if p.endswith(".gz") else open(p, "rb") as f:
        data = f.read()
    x = np.frombuffer(data, dtype=np.uint8, offset=16)[:NIMG * 784]
    return torch.from_numpy(x.astype(np.float32) / 255.0).reshape(NIMG, 1, 28, 28)


class Cnn(nn.Module):
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


def mlp():
    return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                         nn.Linear(128, 10))


def per_image_us(net, xs, passes):
    """{batch: best per-image microseconds over passes} of net over xs."""
    res = {}
    with torch.inference_mode():
        for b in BATCHES:
            nb = NIMG // b
            best = 1e30
            for p in range(-1, passes):
                t0 = time.perf_counter()
                for i in range(nb):
                    net(xs[i * b:(i + 1) * b])
                t = (time.perf_counter() - t0) / (nb * b)
                if p >= 0:
                    best = min(best, t)
            res[b] = 1e6 * best
    return res


def torch_round(x, passes, models):
    res = {}
    for name in models:
        net = (Cnn() if name == "cnn" else mlp()).eval()
        xs = x if name == "cnn" else x.reshape(NIMG, 784)
        for b, t in per_image_us(net, xs, passes).items():
            res[(name, b)] = t
    return res


def torch_qdynamic(x, passes):
    """The MLP under torch.quantization.quantize_dynamic (qint8 Linear)."""
    engines = torch.backends.quantized.supported_engines
    for e in ("qnnpack", "onednn", "fbgemm"):
        if e in engines:
            torch.backends.quantized.engine = e
            break
    net = torch.quantization.quantize_dynamic(mlp().eval(), {nn.Linear}, dtype=torch.qint8)
    # qnnpack's dynamic linear writes a warning to stderr on every call
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        res = per_image_us(net, x.reshape(NIMG, 784), passes)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return {("mlp", b): t for b, t in res.items()}


def nn_round(binary, nthreads, passes, which):
    env = threads.child_env()
    env.pop("OMP_WAIT_POLICY", None)
    out = subprocess.run([binary, str(nthreads), str(passes), which], capture_output=True,
                         text=True, env=env, check=True).stdout
    res, data = {}, "?"
    for line in out.splitlines():
        f = line.split()
        if f[0] == "data":
            data = f[1]
        else:
            res[(f[0], int(f[1]))] = float(f[2])
    return res, data


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--passes", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--model", default="both", choices=("mlp", "cnn", "both"))
    ap.add_argument("--nn", help="path of the built bench/infer.c binary")
    ap.add_argument("--data", default=os.environ.get("NN_DATA", "/usr/share/datasets/fashion-mnist"))
    a = ap.parse_args()
    threads.check(a.threads)
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    x = load_test(a.data)
    tdata = "fashion-mnist"
    if x is None:
        x = torch.rand(NIMG, 1, 28, 28)
        tdata = "random"
    models = ("mlp", "cnn") if a.model == "both" else (a.model,)
    tr, nr, ndata = [], [], "-"
    for _ in range(a.rounds):
        tr.append(torch_round(x, a.passes, models))
        if a.nn:
            r, ndata = nn_round(a.nn, a.threads, a.passes, a.model)
            nr.append(r)
    print("threads %d, us per image, best of %d passes over %d images x %d rounds "
          "(inputs: torch %s, nn.h %s)" % (a.threads, a.passes, NIMG, a.rounds, tdata, ndata))
    print("%-6s %6s %10s %10s %12s" % ("model", "batch", "torch", "nn.h", "torch / nn"))
    for name in models:
        for b in BATCHES:
            t = min(r[(name, b)] for r in tr)
            if nr:
                n = min(r[(name, b)] for r in nr)
                print("%-6s %6d %10.2f %10.2f %12.2f" % (name, b, t, n, t / n))
            else:
                print("%-6s %6d %10.2f" % (name, b, t))
    if nr and (models[0] + "-int8", 1) in nr[0]:
        # nn.h after nn_quantize (dynamic int8) against nn.h float and, for
        # the MLP, torch.quantization.quantize_dynamic (qnnpack/fbgemm engine).
        tq = torch_qdynamic(x, a.passes) if "mlp" in models else {}
        print("int8 (nn_quantize): us per image, float / int8 > 1: int8 is faster")
        print("%-9s %6s %10s %10s %12s %12s %14s" % ("model", "batch", "nn float", "nn int8", "float/int8",
                                                     "torch qint8", "torch q / nn q"))
        for name in models:
            for b in BATCHES:
                f = min(r[(name, b)] for r in nr)
                q = min(r[(name + "-int8", b)] for r in nr)
                if (name, b) in tq:
                    print("%-9s %6d %10.2f %10.2f %12.2f %12.2f %14.2f" % (name, b, f, q, f / q, tq[(name, b)],
                                                                           tq[(name, b)] / q))
                else:
                    print("%-9s %6d %10.2f %10.2f %12.2f" % (name, b, f, q, f / q))


if __name__ == "__main__":
    main()
