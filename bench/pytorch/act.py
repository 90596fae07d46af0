#!/usr/bin/python3
"""PyTorch side of bench/act.c, and the driver that alternates the two.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=passive \\
        /usr/bin/python3 bench/pytorch/act.py --threads 1 --rounds 3 --nn build/bench_act

Each round times every activation's forward + backward on 1M floats in
PyTorch (y = F.op(x); torch.autograd.grad(y, x, g); median of --reps) and
then runs the nn.h binary, which also times a memcpy of the same bytes (10
a float: x read and y written, x and g read and dx written).  The table
shows medians over rounds: nn.h's f+b against the copy (target <= 1.2), and
PyTorch's f+b beside nn.h's (ratio > 1: nn.h is faster).
"""
import threads  # noqa: F401  (first, before torch: caps OpenBLAS's threads)
import statistics
import time

import torch
import torch.nn.functional as F

from sidebyside import parse_args, rounds

N = 1 << 20
OPS = [
    ("relu", F.relu), ("sigmoid", torch.sigmoid), ("tanh", torch.tanh),
    ("leaky_relu", lambda x: F.leaky_relu(x, 0.01)), ("elu", lambda x: F.elu(x, 1.0)),
    ("selu", F.selu), ("celu", lambda x: F.celu(x, 1.0)), ("gelu", F.gelu),
    ("gelu_tanh", lambda x: F.gelu(x, approximate="tanh")), ("silu", F.silu),
    ("softplus", lambda x: F.softplus(x, 1.0, 20.0)), ("softsign", F.softsign), ("mish", F.mish),
    ("hardtanh", lambda x: F.hardtanh(x, -1.0, 1.0)), ("relu6", F.relu6),
    ("hardsigmoid", F.hardsigmoid), ("hardswish", F.hardswish), ("logsigmoid", F.logsigmoid),
    ("tanhshrink", F.tanhshrink), ("threshold", lambda x: F.threshold(x, 0.1, 20.0)),
    ("prelu", None),
]


def torch_round(reps, only=""):
    torch.manual_seed(1)
    x0 = torch.randn(N) * 3
    g = torch.randn(N)
    w = torch.full((1,), 0.25, requires_grad=True)
    res = {}
    for name, fn in OPS:
        if only and only not in name:
            continue
        f = fn if fn is not None else (lambda x: F.prelu(x, w))
        ts = []
        for r in range(-3, reps):
            x = x0.clone().requires_grad_(True)
            t0 = time.perf_counter()
            y = f(x)
            torch.autograd.grad(y, [x] if fn is not None else [x, w], g)
            t1 = time.perf_counter()
            if r >= 0:
                ts.append(t1 - t0)
        res[name] = 1e3 * statistics.median(ts)
    return res


def main():
    a = parse_args("bench/act.c", 20, 3)
    if not a.nn:
        for name, t in torch_round(a.reps, a.only).items():
            print("%s %.3f" % (name, t))
        return
    tr, nr = rounds(a, torch_round)  # nn.h lines: name copy f+b fwd ...
    print("threads %d, 1M floats, median ms over %d rounds (each a median of %d reps)" %
          (a.threads, a.rounds, a.reps))
    print("%-12s %8s %8s %8s %10s | %9s %12s" % ("activation", "copy", "nn f+b", "nn fwd", "f+b/copy",
                                                 "torch f+b", "torch / nn"))
    for name, _ in OPS:
        if name not in tr[0] or name not in nr[0]:
            continue
        c = statistics.median(r[name][0] for r in nr)
        b = statistics.median(r[name][1] for r in nr)
        f = statistics.median(r[name][2] for r in nr)
        t = statistics.median(r[name] for r in tr)
        print("%-12s %8.3f %8.3f %8.3f %10.2f | %9.3f %12.2f" % (name, c, b, f, b / c, t, t / b))


if __name__ == "__main__":
    main()
