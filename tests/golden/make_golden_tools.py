#!/usr/bin/python3
"""Golden data for nn_hadamard_linear (tests/test_tools.c), made by PyTorch.

    /usr/bin/python3 tests/golden/make_golden_tools.py

writes tools.txt next to itself: after the magic line "nn.h-golden 1", the
tensors (format of make_golden.py: "t <ndim> <dims> <values>")

    x [3,6]  scale [1]  bias [5]  r [3,5]  y [3,5]  dx [3,6]  dscale [1]  dbias [5]

for y = scale * (x / |x|) H[:5,:6]^T + bias with H = scipy.linalg.hadamard(8)
(Hoffer et al.'s HadamardProj without its sign flip; nn.h adds 1e-12 under
the square root, which changes nothing here) and the gradients of sum(y * r).
"""
import os
import torch

torch.manual_seed(0)


def hadamard(n):
    h = torch.ones(1, 1)
    while h.shape[0] < n:
        h = torch.cat([torch.cat([h, h], 1), torch.cat([h, -h], 1)], 0)
    return h


def t(v):
    v = v.detach().reshape(v.shape)
    dims = list(v.shape)
    return "t %d %s %s" % (len(dims), " ".join(map(str, dims)),
                           " ".join("%.9g" % float(a) for a in v.flatten()))


x = torch.randn(3, 6, requires_grad=True)
scale = torch.tensor([0.7], requires_grad=True)
bias = (torch.rand(5) - 0.5).requires_grad_(True)
r = torch.randn(3, 5)
H = hadamard(8)[:5, :6]
xn = x / torch.sqrt((x * x).sum(1, keepdim=True) + 1e-12)
y = scale * torch.nn.functional.linear(xn, H) + bias
(y * r).sum().backward()
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tools.txt")
with open(out, "w") as f:
    f.write("nn.h-golden 1\n")
    for v in (x, scale, bias, r, y, x.grad, scale.grad, bias.grad):
        f.write(t(v) + "\n")
print("wrote", out)
