#!/usr/bin/python3
"""Golden data for nn.h's regularizers (tests/test_reg.c reads it).

Run with a Python that has torch (here /usr/bin/python3, torch 1.13):

    /usr/bin/python3 tests/golden/make_golden_reg.py

It writes reg.txt next to itself.  Format (whitespace-separated tokens),
after the magic line "nn.h-golden 1", one line per drop probability p:

    alpha <p> <a> <kept0> <dropped> <mean> <var>

for torch.nn.functional.alpha_dropout in training: a is the slope of a kept
unit (y(1) - y(0)), kept0 the output of a kept 0 and dropped the value every
dropped unit takes (both read off an input of zeros), and mean and var the
statistics of AlphaDropout(p) on 4,000,000 standard normal draws.
"""
import os
import torch
import torch.nn.functional as F

torch.manual_seed(0)
lines = ["nn.h-golden 1"]
for p in (0.1, 0.2, 0.5):
    z = F.alpha_dropout(torch.zeros(200000, dtype=torch.float64), p, True)
    o = F.alpha_dropout(torch.ones(200000, dtype=torch.float64), p, True)
    vz = sorted(set(z.tolist()))
    vo = sorted(set(o.tolist()))
    assert len(vz) == 2 and len(vo) == 2
    dropped, kept0 = vz[0], vz[1]           # alpha' a (1-p) < 0 < alpha a p
    assert abs(vo[0] - dropped) < 1e-12
    a = vo[1] - kept0
    x = torch.randn(4000000, dtype=torch.float64)
    y = torch.nn.AlphaDropout(p).train()(x)
    lines.append("alpha %.9g %.17g %.17g %.17g %.9g %.9g" %
                 (p, a, kept0, dropped, y.mean().item(), y.var().item()))
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "reg.txt"), "w") as f:
    f.write("\n".join(lines) + "\n")
