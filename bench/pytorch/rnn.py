#!/usr/bin/python3
"""PyTorch side of bench/rnn.c, and the driver that alternates the two.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_WAIT_POLICY=passive \
        /usr/bin/python3 bench/pytorch/rnn.py --threads 1 --rounds 3 --nn build/bench_rnn

Each round measures every case in PyTorch (median of --reps) and then runs
the nn.h binary (same threads and reps); the table shows the medians over
rounds and the ratio PyTorch time / nn.h time (> 1: nn.h is faster).
Without --nn only the PyTorch figures are printed, in the C program's format.
"""
import threads  # noqa: F401  (first, before torch: caps OpenBLAS's threads)
import torch

from sidebyside import fwd_fb_main, time_fwd_fb

T, B, I, H, V = 100, 32, 128, 256, 10000
CASES = [  # label, kind (0 LSTM, 1 GRU, 2 embedding), layers, bidirectional
    ("lstm_b32_t100_i128_h256", 0, 1, False),
    ("gru_b32_t100_i128_h256", 1, 1, False),
    ("lstm2_bi_b32_t100_i128_h256", 0, 2, True),
    ("embedding_10000x256_on_32x100", 2, 0, False),
]


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
        if kind == 2:
            res[label] = time_fwd_fb(m, [idx], list(m.parameters()), reps)
        else:
            res[label] = time_fwd_fb(lambda x: m(x)[0], [x0], list(m.parameters()), reps)
    return res


if __name__ == "__main__":
    fwd_fb_main("bench/rnn.c", [c[0] for c in CASES], torch_round, reps=5, rounds_=3)
