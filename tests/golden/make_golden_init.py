#!/usr/bin/python3
"""Golden data for nn.h's initializers (>>init), made by PyTorch 1.13.

Run with a Python that has torch (here /usr/bin/python3):

    /usr/bin/python3 tests/golden/make_golden_init.py

It writes init.txt next to itself; tests/test_init.c reads it.  Draws cannot
match PyTorch's (another generator), so what is golden is every number the
initializers derive from the shape: fans, gains, the std or bound of each
rule, and the moments of the truncated normal.  Format, one record a line
after the magic line "nn.h-golden-init 1":

    fan <ndim> <dims> <fan_in> <fan_out>         _calculate_fan_in_and_fan_out
    gain <name> <param> <gain>                    calculate_gain(name, param)
    kaiming <ndim> <dims> <mode> <nonlin> <a> <std>   std of kaiming_normal_
    xavier <ndim> <dims> <gain> <std>             std of xavier_normal_
    tn <mean> <std> <a> <b> <mean> <std>          trunc_normal_'s moments
    end

Each "std" is measured too: the sample std of 200000 draws of torch's own
initializer agrees with it (checked here, not written).
"""
import math
import os
import torch
import torch.nn.init as I

torch.manual_seed(0)
out = ["nn.h-golden-init 1"]
shapes = [(5, 3), (256, 784), (10, 256), (7, 1), (16, 3, 3, 3), (8, 4, 5), (6, 2, 3, 5),
          (3, 8, 2, 2, 2), (4, 6, 1, 1)]


def dims(s):
    return "%d %s" % (len(s), " ".join(str(d) for d in s))


for s in shapes:
    fi, fo = I._calculate_fan_in_and_fan_out(torch.empty(s))
    out.append("fan %s %d %d" % (dims(s), fi, fo))

for name, param in [("linear", 0.0), ("conv1d", 0.0), ("conv2d", 0.0), ("conv3d", 0.0),
                    ("conv_transpose1d", 0.0), ("conv_transpose2d", 0.0),
                    ("conv_transpose3d", 0.0), ("sigmoid", 0.0), ("tanh", 0.0), ("relu", 0.0),
                    ("leaky_relu", 0.01), ("leaky_relu", 0.2), ("leaky_relu", 0.0),
                    ("leaky_relu", math.sqrt(5.0)), ("selu", 0.0)]:
    g = I.calculate_gain(name, param if name in ("leaky_relu", "selu") else None)
    out.append("gain %s %.9g %.9g" % (name, param, g))


def check(t, std):
    got = t.std().item()
    assert abs(got / std - 1) < 0.02, (got, std)


for s in [(64, 196), (16, 3, 3, 3), (8, 4, 5), (6, 2, 3, 5)]:
    for mode in ("fan_in", "fan_out"):
        for nl, a in [("leaky_relu", 0.0), ("relu", 0.0), ("leaky_relu", 0.2), ("tanh", 0.0),
                      ("linear", 0.0)]:
            fi, fo = I._calculate_fan_in_and_fan_out(torch.empty(s))
            std = I.calculate_gain(nl, a) / math.sqrt(fi if mode == "fan_in" else fo)
            t = torch.empty(s)
            # the rule's std, checked on a large draw of torch's own initializer
            draws = torch.cat([I.kaiming_normal_(torch.empty(s), a=a, mode=mode,
                                                 nonlinearity=nl).flatten()
                               for _ in range(200000 // t.numel() + 1)])
            check(draws, std)
            draws = torch.cat([I.kaiming_uniform_(torch.empty(s), a=a, mode=mode,
                                                  nonlinearity=nl).flatten()
                               for _ in range(200000 // t.numel() + 1)])
            check(draws, std)
            out.append("kaiming %s %s %s %.9g %.9g" % (dims(s), mode, nl, a, std))
    for gain in (1.0, 5.0 / 3.0):
        fi, fo = I._calculate_fan_in_and_fan_out(torch.empty(s))
        std = gain * math.sqrt(2.0 / (fi + fo))
        n = 200000 // torch.empty(s).numel() + 1
        check(torch.cat([I.xavier_normal_(torch.empty(s), gain).flatten() for _ in range(n)]), std)
        check(torch.cat([I.xavier_uniform_(torch.empty(s), gain).flatten() for _ in range(n)]), std)
        out.append("xavier %s %.9g %.9g" % (dims(s), gain, std))


def phi(z):
    return math.exp(-z * z / 2) / math.sqrt(2 * math.pi)


def Phi(z):
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


for mean, std, a, b in [(0.0, 1.0, -2.0, 2.0), (0.5, 2.0, -1.0, 3.0), (0.0, 1.0, 0.5, 4.0),
                        (1.0, 0.1, 0.9, 2.0)]:
    al, be = (a - mean) / std, (b - mean) / std
    Z = Phi(be) - Phi(al)
    m = mean + std * (phi(al) - phi(be)) / Z
    v = std * std * (1 + (al * phi(al) - be * phi(be)) / Z - ((phi(al) - phi(be)) / Z) ** 2)
    t = I.trunc_normal_(torch.empty(400000, dtype=torch.float64), mean, std, a, b)
    assert abs(t.mean().item() - m) < 0.01 * std and abs(t.std().item() / math.sqrt(v) - 1) < 0.01
    assert t.min().item() >= a and t.max().item() <= b
    out.append("tn %.9g %.9g %.9g %.9g %.9g %.9g" % (mean, std, a, b, m, math.sqrt(v)))

out.append("end")
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "init.txt"), "w") as f:
    f.write("\n".join(out) + "\n")
print("wrote init.txt: %d records" % (len(out) - 2))
