#!/usr/bin/python3
"""PyTorch side of bench/conv.c, and the driver that alternates the two.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=passive \
        /usr/bin/python3 bench/pytorch/conv.py --threads 1 --rounds 5 --nn build/bench_conv

Each round measures every layer in PyTorch (median of --reps) and then runs
the nn.h binary (same threads and reps); the table shows the medians over
rounds and the ratio PyTorch time / nn.h time (> 1: nn.h is faster).
Without --nn only the PyTorch figures are printed, in the C program's format.
"""
import threads  # noqa: F401  (first, before torch: caps OpenBLAS's threads)
import torch
import torch.nn.functional as F

from sidebyside import fwd_fb_main, time_fwd_fb

LAYERS = [  # label, N, C, H, W, OC, K, stride, pad, groups, input_grad
    ("model_conv1_1x28x28_32_5x5", 64, 1, 28, 28, 32, 5, 1, 0, 1, 0),
    ("model_conv2_32x12x12_64_5x5", 64, 32, 12, 12, 64, 5, 1, 0, 1, 1),
    ("resnet_64x32x32_64_3x3", 64, 64, 32, 32, 64, 3, 1, 1, 1, 1),
    ("depthwise_64x32x32_3x3", 64, 64, 32, 32, 64, 3, 1, 1, 64, 1),
    ("pointwise_64x32x32_128_1x1", 64, 64, 32, 32, 128, 1, 1, 0, 1, 1),
]


def torch_round(reps, only):
    res = {}
    torch.manual_seed(1)
    for label, N, C, H, W, OC, K, s, p, g, ig in LAYERS:
        if only and only not in label:
            continue
        x0 = torch.randn(N, C, H, W)
        w = (torch.rand(OC, C // g, K, K) * 0.2 - 0.1).requires_grad_(True)
        b = (torch.rand(OC) * 0.2 - 0.1).requires_grad_(True)
        res[label] = time_fwd_fb(lambda x: F.conv2d(x, w, b, stride=s, padding=p, groups=g), [x0], [w, b],
                                 reps, grads=[bool(ig)])
    return res


if __name__ == "__main__":
    fwd_fb_main("bench/conv.c", [c[0] for c in LAYERS], torch_round, reps=20, rounds_=5, what="layer",
                header=", batch 64")
