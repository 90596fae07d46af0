#!/usr/bin/python3
"""Golden data for nn.h's convolution, pooling, batch norm and activation
layers, made by PyTorch.  Run with a Python that has torch (here
/usr/bin/python3, torch 1.13):

    /usr/bin/python3 tests/golden/make_golden_conv.py

It writes conv.txt next to itself (tests/test_conv.c reads it).  Inputs are
rounded to 4 decimals so their text is exact and short; outputs are %.7g.

Format: whitespace-separated tokens after the magic line "nn.h-golden-conv 1".
A tensor is "t <ndim> <dims...> <values...>".  Records:

    case <name> <op> <k> <int>*k     op, then its integer options:
        conv2d, conv1d, convt2d: stride padding dilation groups output_padding has_bias
        maxpool2d, avgpool2d, maxpool1d, avgpool1d: kernel stride padding
        gap: (none)   upsample: scale
        leaky, elu: (none; fargs gives slope / alpha)   gelu, silu: (none)
    fargs <k> <float>*k
    in <n> <tensor>*n                x [, weight [, bias]]
    out <tensor>                     op(inputs)
    w <tensor>                       a fixed random tensor of out's shape
    grad <n> <tensor>*n              d sum(out * w) / d input, per input
    end

    bn <name> <steps> <momentum> <eps>
    init <weight> <bias> <running_mean> <running_var>     (tensors)
    then <steps> times:
      train <x> <w> <y> <dx> <dweight> <dbias> <running_mean> <running_var>
    eval <x> <w> <y> <dx> <dweight> <dbias>
    end
"""
import os
import torch
import torch.nn.functional as F

MAGIC = "nn.h-golden-conv 1"
HERE = os.path.dirname(os.path.abspath(__file__))
torch.set_num_threads(1)
gen = torch.Generator().manual_seed(4)
out = []


def rnd(*shape, scale=1.0):
    return (torch.randn(*shape, generator=gen) * scale * 1e4).round() / 1e4


def tens(t):
    t = t.detach().contiguous().view(-1)
    dims = " ".join(str(d) for d in t.shape) if False else None
    return t


def wt(t, digits=7):
    t = t.detach()
    vals = " ".join(("%.4f" % v if digits == 4 else "%.7g" % v) for v in t.reshape(-1).tolist())
    return "t %d %s %s" % (t.dim(), " ".join(str(d) for d in t.shape), vals)


def case(name, op, iargs, fargs, inputs, fn):
    ins = [i.clone().requires_grad_(True) for i in inputs]
    y = fn(*ins)
    w = rnd(*y.shape)
    (y * w).sum().backward()
    out.append("case %s %s %d %s" % (name, op, len(iargs), " ".join(str(i) for i in iargs)))
    out.append("fargs %d %s" % (len(fargs), " ".join("%.9g" % f for f in fargs)))
    out.append("in %d" % len(ins))
    for i in inputs:
        out.append(wt(i, 4))
    out.append("out " + wt(y))
    out.append("w " + wt(w, 4))
    out.append("grad %d" % len(ins))
    for i in ins:
        out.append(wt(i.grad))
    out.append("end")


def conv(name, dims, n, c, hw, oc, k, s=1, p=0, d=1, g=1, bias=True):
    x = rnd(n, c, *hw)
    w = rnd(oc, c // g, *([k] * dims), scale=0.5)
    b = rnd(oc)
    ins = [x, w] + ([b] if bias else [])
    f = F.conv2d if dims == 2 else F.conv1d
    case(name, "conv%dd" % dims, [s, p, d, g, 0, int(bias)], [], ins,
         lambda *a: f(a[0], a[1], a[2] if bias else None, stride=s, padding=p, dilation=d, groups=g))


def convt(name, n, c, hw, oc, k, s=1, p=0, op=0, d=1, g=1, bias=True):
    x = rnd(n, c, *hw)
    w = rnd(c, oc // g, k, k, scale=0.5)
    b = rnd(oc)
    ins = [x, w] + ([b] if bias else [])
    case(name, "convt2d", [s, p, d, g, op, int(bias)], [], ins,
         lambda *a: F.conv_transpose2d(a[0], a[1], a[2] if bias else None, stride=s, padding=p,
                                       output_padding=op, dilation=d, groups=g))


conv("c2_basic", 2, 2, 3, (7, 6), 4, 3)
conv("c2_stride2_pad1", 2, 2, 3, (8, 9), 5, 3, s=2, p=1)
conv("c2_dil2_pad2", 2, 1, 2, (9, 9), 3, 3, p=2, d=2)
conv("c2_groups2", 2, 2, 4, (6, 7), 6, 3, p=1, g=2)
conv("c2_depthwise", 2, 2, 4, (7, 7), 4, 3, p=1, g=4)
conv("c2_depthwise_mult2_s2", 2, 3, 3, (8, 7), 6, 3, s=2, p=1, g=3)
conv("c2_depthwise_dil2_nobias", 2, 1, 2, (9, 8), 2, 3, p=2, d=2, g=2, bias=False)
conv("c2_1x1", 2, 3, 5, (5, 4), 3, 1)
conv("c2_1x1_stride2", 2, 2, 4, (5, 5), 3, 1, s=2)
conv("c2_odd_k5_s3_nobias", 2, 1, 3, (11, 7), 2, 5, s=3, p=2, bias=False)
conv("c2_batch1", 2, 1, 2, (5, 5), 3, 3, p=1)
conv("c2_kernel_equals_input", 2, 2, 2, (3, 3), 2, 3)
conv("c2_big_chunk1", 2, 2, 1, (45, 46), 2, 3, p=1)
conv("c2_1x1_big_chunk1", 2, 2, 2, (46, 46), 2, 1)
conv("c2_many_samples", 2, 9, 2, (14, 14), 3, 3, s=2, p=1)
conv("c1_basic", 1, 2, 3, (11,), 4, 3)
conv("c1_s2_p2_d2_g2", 1, 1, 4, (13,), 6, 3, s=2, p=2, d=2, g=2)
conv("c1_depthwise_k5", 1, 2, 3, (10,), 3, 5, p=2, g=3)
# sums of >= 64 products at stride 1 run nn.h's direct engine (forward and
# input gradient): ragged rows, a partial filter panel, groups, dilation,
# padding beyond the kernel's reach (input gradient by the GEMM)
conv("c2_direct_pad1_ragged", 2, 2, 8, (6, 13), 5, 3, p=1)
conv("c2_direct_d2_g2", 2, 3, 16, (9, 8), 6, 3, p=2, d=2, g=2)
conv("c2_direct_k5_nopad", 2, 2, 4, (12, 17), 3, 5, bias=False)
conv("c2_direct_bigpad", 2, 2, 8, (5, 5), 3, 3, p=3)
conv("c1_direct_two_panels", 1, 2, 16, (20,), 40, 5, p=2)
convt("t2_s2_p1_op1", 2, 3, (5, 4), 4, 3, s=2, p=1, op=1)
convt("t2_k2_s2", 2, 2, (3, 3), 3, 2, s=2)
convt("t2_d2_g2_nobias", 1, 4, (4, 4), 6, 3, d=2, g=2, bias=False)
convt("t2_batch1_s3_p2", 1, 2, (3, 4), 2, 4, s=3, p=2, op=2)
convt("t2_s1", 2, 3, (4, 4), 2, 3, p=1)


def pool(name, op, dims, n, c, hw, k, s=0, p=0):
    x = rnd(n, c, *hw)
    fn = {"maxpool2d": F.max_pool2d, "avgpool2d": F.avg_pool2d,
          "maxpool1d": F.max_pool1d, "avgpool1d": F.avg_pool1d}[op]
    case(name, op, [k, s, p], [], [x], lambda a: fn(a, k, stride=s if s else None, padding=p))


pool("mp2_k2", "maxpool2d", 2, 2, 3, (6, 6), 2)
pool("mp2_k3_s2_p1_odd", "maxpool2d", 2, 2, 2, (7, 5), 3, 2, 1)
pool("mp2_k2_odd", "maxpool2d", 2, 1, 2, (5, 7), 2)
pool("ap2_k2", "avgpool2d", 2, 2, 3, (6, 6), 2)
pool("ap2_k3_s2_p1", "avgpool2d", 2, 2, 2, (7, 5), 3, 2, 1)
pool("mp1_k3_s2_p1", "maxpool1d", 1, 2, 3, (11,), 3, 2, 1)
pool("ap1_k4_s3_p2", "avgpool1d", 1, 2, 2, (13,), 4, 3, 2)
x = rnd(2, 3, 4, 5)
case("gap2", "gap", [], [], [x], lambda a: F.adaptive_avg_pool2d(a, 1))
x = rnd(2, 3, 7)
case("gap1", "gap", [], [], [x], lambda a: F.adaptive_avg_pool1d(a, 1))
x = rnd(2, 2, 3, 4)
case("up2", "upsample", [2], [], [x], lambda a: F.interpolate(a, scale_factor=2, mode="nearest"))
x = rnd(1, 2, 2, 3)
case("up3", "upsample", [3], [], [x], lambda a: F.interpolate(a, scale_factor=3, mode="nearest"))

x = rnd(3, 4, 5, scale=2.0)
case("leaky_default", "leaky", [], [0.01], [x], lambda a: F.leaky_relu(a, 0.01))
case("leaky_0.2", "leaky", [], [0.2], [x], lambda a: F.leaky_relu(a, 0.2))
case("elu_1", "elu", [], [1.0], [x], lambda a: F.elu(a, 1.0))
case("elu_0.5", "elu", [], [0.5], [x], lambda a: F.elu(a, 0.5))
case("gelu", "gelu", [], [], [x], lambda a: F.gelu(a))
case("silu", "silu", [], [], [x], lambda a: F.silu(a))


def bn(name, shape, steps=3, momentum=0.1, eps=1e-5):
    C = shape[1]
    mod = (torch.nn.BatchNorm2d if len(shape) == 4 else torch.nn.BatchNorm1d)(C, eps=eps, momentum=momentum)
    with torch.no_grad():
        mod.weight.copy_(rnd(C, scale=0.5) + 1.0)
        mod.bias.copy_(rnd(C, scale=0.5))
    out.append("bn %s %d %.9g %.9g" % (name, steps, momentum, eps))
    out.append("init " + " ".join(wt(t, 4) for t in (mod.weight, mod.bias, mod.running_mean, mod.running_var)))

    def run(tag):
        x = (rnd(*shape, scale=1.5) + 0.7).requires_grad_(True)
        mod.zero_grad()
        y = mod(x)
        w = rnd(*y.shape)
        (y * w).sum().backward()
        rec = [wt(x.detach(), 4), wt(w, 4), wt(y), wt(x.grad), wt(mod.weight.grad), wt(mod.bias.grad)]
        if tag == "train":
            rec += [wt(mod.running_mean), wt(mod.running_var)]
        out.append(tag + " " + " ".join(rec))

    mod.train()
    for _ in range(steps):
        run("train")
    mod.eval()
    run("eval")
    out.append("end")


bn("bn2d", (4, 3, 5, 6))
bn("bn2d_batch1", (1, 2, 3, 3))
bn("bn1d_2d", (8, 5))
bn("bn1d_3d", (4, 3, 7), momentum=0.3, eps=1e-3)

with open(os.path.join(HERE, "conv.txt"), "w") as f:
    f.write(MAGIC + "\n" + "\n".join(out) + "\n")
print("wrote", os.path.join(HERE, "conv.txt"))
