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
import threads  # noqa: F401  (first, before torch: caps OpenBLAS's threads)
import math

import torch

from sidebyside import fwd_fb_main, time_fwd_fb

CASES = ["mha_causal_8x256x256_h4", "sdpa_causal_8x4x256x64"]


def torch_round(reps, only):
    torch.manual_seed(1)
    m = torch.nn.MultiheadAttention(256, 4, batch_first=True)
    x0 = torch.randn(8, 256, 256)
    qkv0 = [torch.randn(8, 4, 256, 64) for _ in range(3)]
    causal = ~torch.ones(256, 256, dtype=torch.bool).tril()

    def sdpa(q, k, v):
        s = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(64))
        return torch.softmax(s.masked_fill(causal, float("-inf")), -1) @ v

    def mha(x):
        return m(x, x, x, attn_mask=causal, need_weights=False)[0]

    res = {}
    for label in CASES:
        if only and only not in label:
            continue
        if label.startswith("mha"):
            res[label] = time_fwd_fb(mha, [x0], list(m.parameters()), reps)
        else:
            res[label] = time_fwd_fb(sdpa, qkv0, [], reps)
    return res


if __name__ == "__main__":
    fwd_fb_main("bench/attn.c", CASES, torch_round, reps=10, rounds_=3)
