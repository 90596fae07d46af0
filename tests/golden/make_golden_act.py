#!/usr/bin/python3
"""Golden data for nn.h's activations (tests/test_act.c), made by PyTorch.
Run with a Python that has torch (here /usr/bin/python3, torch 1.13):

    /usr/bin/python3 tests/golden/make_golden_act.py

It writes act.txt next to itself.  Inputs are float32 values printed with
%.9g (exact); outputs %.9g.

Format (tests/golden.h): whitespace-separated tokens after the magic line
"nn.h-golden 1".  A tensor is "t <ndim> <dims...> <values...>".  Records:

    case <name> <op> <k> <float>*k <nin>   op and its float options
    <tensor>*nin                           x [, weight]
    <tensor>                               out = op(inputs)
    <tensor>                               w, a fixed random tensor of out's shape
    <tensor>*nin                           d sum(out * w) / d input, per input
    end

Each op gets a grid through its kinks (0, +-3, 6, the thresholds) and
large |x| (+-20, +-30, +-100) for stability, then random values; shape
[4, 37] so the vector kernels' tails are used.
"""
import os
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
torch.set_num_threads(1)
gen = torch.Generator().manual_seed(12)
out = ["nn.h-golden 1"]

SPECIAL = [0.0, -0.0, 1.0, -1.0, 3.0, -3.0, 6.0, -6.0, 2.5, 2.6, 20.0, -20.0, 30.0, -30.0,
           100.0, -100.0, 1e-4, -1e-4, 0.5, -0.5, 0.1, -2.0, 5.0, 0.25]


def wt(t):
    t = t.detach().float()
    vals = " ".join("%.9g" % v for v in t.reshape(-1).tolist())
    return "t %d %s %s" % (t.dim(), " ".join(str(d) for d in t.shape), vals)


def inputs(shape=(4, 37), scale=3.0):
    x = torch.randn(*shape, generator=gen) * scale
    flat = x.view(-1)
    flat[:len(SPECIAL)] = torch.tensor(SPECIAL)
    return x


def case(name, op, fargs, fn, ins):
    ins = [i.clone().float().requires_grad_(True) for i in ins]
    y = fn(*ins)
    w = torch.randn(*y.shape, generator=gen)
    (y * w).sum().backward()
    out.append("case %s %s %d %s %d" % (name, op, len(fargs), " ".join("%.9g" % f for f in fargs), len(ins)))
    for i in ins:
        out.append(wt(i))
    out.append(wt(y))
    out.append(wt(w))
    for i in ins:
        out.append(wt(i.grad))
    out.append("end")


def ew(name, op, fargs, fn, x=None):
    case(name, op, fargs, fn, [inputs() if x is None else x])


ew("relu", "relu", [], F.relu)
ew("sigmoid", "sigmoid", [], torch.sigmoid)
ew("tanh", "tanh", [], torch.tanh)
ew("leaky", "leaky", [0.1], lambda x: F.leaky_relu(x, 0.1))
ew("leaky_neg", "leaky", [-0.3], lambda x: F.leaky_relu(x, -0.3))
ew("elu", "elu", [1.0], lambda x: F.elu(x, 1.0))
ew("elu_a07", "elu", [0.7], lambda x: F.elu(x, 0.7))
ew("gelu", "gelu", [], F.gelu)
ew("gelu_tanh", "gelu_tanh", [], lambda x: F.gelu(x, approximate="tanh"))
ew("silu", "silu", [], F.silu)
ew("selu", "selu", [], F.selu)
ew("celu", "celu", [1.0], lambda x: F.celu(x, 1.0))
ew("celu_a2", "celu", [2.0], lambda x: F.celu(x, 2.0))
ew("celu_a03", "celu", [0.3], lambda x: F.celu(x, 0.3))
ew("softplus", "softplus", [1.0, 20.0], lambda x: F.softplus(x, 1.0, 20.0))
ew("softplus_b2_t5", "softplus", [2.0, 5.0], lambda x: F.softplus(x, 2.0, 5.0))
ew("softplus_b05_t3", "softplus", [0.5, 3.0], lambda x: F.softplus(x, 0.5, 3.0))
ew("softsign", "softsign", [], F.softsign)
ew("mish", "mish", [], F.mish)
ew("hardtanh", "hardtanh", [-1.0, 1.0], lambda x: F.hardtanh(x, -1.0, 1.0))
ew("hardtanh_m2_5", "hardtanh", [-2.0, 5.0], lambda x: F.hardtanh(x, -2.0, 5.0))
ew("relu6", "relu6", [], F.relu6)
ew("hardsigmoid", "hardsigmoid", [], F.hardsigmoid)
ew("hardswish", "hardswish", [], F.hardswish)
ew("logsigmoid", "logsigmoid", [], F.logsigmoid)
ew("tanhshrink", "tanhshrink", [], F.tanhshrink)
ew("threshold", "threshold", [1.0, -2.0], lambda x: F.threshold(x, 1.0, -2.0))
ew("threshold_0", "threshold", [0.0, 0.5], lambda x: F.threshold(x, 0.0, 0.5))
# PReLU: one slope, and one per channel of [N,C,L] and [N,C,H,W] (batch 1).
case("prelu_one", "prelu", [], F.prelu, [inputs((3, 5, 7)), torch.tensor([0.25])])
case("prelu_ch", "prelu", [], F.prelu, [inputs((3, 5, 7)), torch.tensor([0.25, -0.5, 0.1, 1.5, 0.0])])
case("prelu_ch4d", "prelu", [], F.prelu, [inputs((1, 3, 4, 5)), torch.tensor([0.2, 0.3, -0.4])])
case("prelu_2d", "prelu", [], F.prelu, [inputs((6, 4)), torch.tensor([0.1, 0.2, 0.3, 0.4])])
# Softmax / LogSoftmax modules along a dim.
case("softmax_d1", "softmax", [1], lambda x: F.softmax(x, 1), [inputs((3, 5, 4), 1.0)])
case("softmax_dm1", "softmax", [-1], lambda x: F.softmax(x, -1), [inputs((3, 5, 4), 1.0)])
case("log_softmax_d0", "log_softmax", [0], lambda x: F.log_softmax(x, 0), [inputs((3, 5, 4), 1.0)])
case("log_softmax_dm1", "log_softmax", [-1], lambda x: F.log_softmax(x, -1), [inputs((2, 37), 2.0)])

with open(os.path.join(HERE, "act.txt"), "w") as f:
    f.write("\n".join(out) + "\n")
print("wrote %d cases" % sum(1 for l in out if l.startswith("case ")))
