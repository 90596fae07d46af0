#!/usr/bin/python3
"""PyTorch side of bench/norm.c, and the driver that alternates the two.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=passive \
        /usr/bin/python3 bench/pytorch/norm.py --threads 1 --rounds 5 --nn build/bench_norm

Each round measures every case in PyTorch (median of --reps) and then runs
the nn.h binary (same threads and reps); the table shows the medians over
rounds and the ratio PyTorch time / nn.h time (> 1: nn.h is faster).
Without --nn only the PyTorch figures are printed, in the C program's format.
"""
import threads  # noqa: F401  (first, before torch: caps OpenBLAS's threads)
import torch
import torch.nn.functional as F

from sidebyside import fwd_fb_main, time_fwd_fb

CASES = [  # label, group norm, k (layer norm's normalized dims), shape
    ("layernorm_2048x256", 0, 1, (2048, 256)),
    ("groupnorm32_2048x256", 1, 0, (2048, 256)),
    ("layernorm_64x64x32x32", 0, 3, (64, 64, 32, 32)),
    ("groupnorm32_64x64x32x32", 1, 0, (64, 64, 32, 32)),
]


def torch_round(reps, only):
    res = {}
    torch.manual_seed(1)
    for label, gn, k, shape in CASES:
        if only and only not in label:
            continue
        x0 = torch.randn(*shape)
        ps = (shape[1],) if gn else shape[len(shape) - k:]
        w = (torch.rand(*ps) + 0.5).requires_grad_(True)
        b = (torch.rand(*ps) * 0.2 - 0.1).requires_grad_(True)

        def run(x):
            return F.group_norm(x, 32, w, b, 1e-5) if gn else F.layer_norm(x, ps, w, b, 1e-5)
        res[label] = time_fwd_fb(run, [x0], [w, b], reps)
    return res


if __name__ == "__main__":
    fwd_fb_main("bench/norm.c", [c[0] for c in CASES], torch_round, reps=20, rounds_=5)
