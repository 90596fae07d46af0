#!/usr/bin/python3
"""Golden data for nn.h's attention (tests/test_attn.c), made by PyTorch 1.13.

    /usr/bin/python3 tests/golden/make_golden_attn.py

Writes attn.txt (format of tests/golden/make_golden.py: "nn.h-golden 1", then
records "case <name>", labelled tensors "<label> t <ndim> <dims> <values>",
"end") and transformer.safetensors / transformer_io.safetensors (a
TransformerEncoderLayer state_dict; its input and eval output).

PyTorch 1.13 has no F.scaled_dot_product_attention, so sdpa cases compute it
from torch ops: softmax(q k^T * scale + mask) v, with PyTorch 2.x's rules
(bool mask True = attend, is_causal = tril of ones [L, S]).  Each case's
gradients are d sum(out * w) / d input for a fixed random w.
"""
import math
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "examples", "pytorch"))
from export import save_state_dict  # noqa: E402

torch.set_num_threads(1)
gen = torch.Generator().manual_seed(20261201)
out = open(os.path.join(HERE, "attn.txt"), "w")
out.write("nn.h-golden 1\n")


def randn(*s):
    return torch.randn(s, generator=gen)


def tstr(t):
    t = t.detach().to(torch.float32).contiguous()
    return " ".join(["t", str(t.dim())] + [str(d) for d in t.shape] +
                    ["%.9g" % v for v in t.reshape(-1).tolist()])


def case(name, **tensors):
    out.write("case %s\n" % name)
    for k, v in tensors.items():
        out.write("%s %s\n" % (k, tstr(v)))
    out.write("end\n")


def sdpa(q, k, v, mask=None, is_bool=False, causal=False, scale=0.0):
    L, S, E = q.shape[-2], k.shape[-2], q.shape[-1]
    sc = scale if scale > 0 else 1.0 / math.sqrt(E)
    s = q @ k.transpose(-2, -1) * sc
    if causal:
        s = s.masked_fill(~torch.ones(L, S, dtype=torch.bool).tril(), float("-inf"))
    if mask is not None:
        s = s.masked_fill(mask == 0, float("-inf")) if is_bool else s + mask
    return torch.softmax(s, -1) @ v


def sdpa_case(name, qs, ks, vs, mask=None, is_bool=False, causal=False, scale=0.0):
    q, k, v = randn(*qs), randn(*ks), randn(*vs)
    for t in (q, k, v):
        t.requires_grad_(True)
    o = sdpa(q, k, v, mask, is_bool, causal, scale)
    w = randn(*o.shape)
    (o * w).sum().backward()
    extra = {}
    if mask is not None:
        extra["mask"] = mask.float()
    case(name, flags=torch.tensor([float(is_bool), float(causal), scale]), q=q, k=k, v=v,
         out=o, w=w, gq=q.grad, gk=k.grad, gv=v.grad, **extra)


sdpa_case("sdpa_plain", (2, 5, 4), (2, 6, 4), (2, 6, 3))
sdpa_case("sdpa_causal", (2, 2, 37, 8), (2, 2, 37, 8), (2, 2, 37, 5), causal=True)
sdpa_case("sdpa_causal_rect", (1, 6, 4), (1, 9, 4), (1, 9, 4), causal=True, scale=0.3)
sdpa_case("sdpa_float_mask", (2, 3, 5, 4), (2, 3, 7, 4), (2, 3, 7, 4), mask=randn(3, 5, 7))
bm = (torch.rand(2, 1, 5, 7, generator=gen) > 0.3).float()
bm[..., 0] = 1.0  # no fully masked row
sdpa_case("sdpa_bool_mask", (2, 3, 5, 4), (2, 3, 7, 4), (2, 3, 7, 4), mask=bm, is_bool=True)
sdpa_case("sdpa_broadcast", (2, 3, 5, 4), (1, 7, 4), (3, 7, 2))


def mha_case(name, E, H, L, S, N, batch_first, kpm=None, am=None, self_attn=False, bias=True):
    m = torch.nn.MultiheadAttention(E, H, bias=bias, batch_first=batch_first)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(randn(*p.shape) * 0.5)
    shp = (lambda T: (N, T, E)) if batch_first else (lambda T: (T, N, E))
    q = randn(*shp(L)).requires_grad_(True)
    if self_attn:
        k = v = q
    else:
        k = randn(*shp(S)).requires_grad_(True)
        v = randn(*shp(S)).requires_grad_(True)
    o, _ = m(q, k, v, key_padding_mask=kpm, attn_mask=am, need_weights=False)
    w = randn(*o.shape)
    (o * w).sum().backward()
    t = dict(flags=torch.tensor([float(E), float(H), float(batch_first), float(self_attn), float(bias)]),
             query=q, out=o, w=w, gq=q.grad)
    if not self_attn:
        t.update(key=k, value=v, gk=k.grad, gv=v.grad)
    if kpm is not None:
        t["kpm"] = kpm.float()
    if am is not None:
        t["am"] = am.float()
    for n, p in m.named_parameters():
        t["p." + n] = p
        t["g." + n] = p.grad
    case(name, **t)


mha_case("mha_self", 8, 2, 5, 5, 3, False, self_attn=True)
kpm = torch.zeros(2, 6, dtype=torch.bool)
kpm[0, 4:] = True
kpm[1, 5] = True
am = torch.zeros(4, 6, dtype=torch.bool)
am[0, 3] = True
am[2, 1] = True
mha_case("mha_masks_bf", 12, 3, 4, 6, 2, True, kpm=kpm, am=am)
mha_case("mha_float_mask", 8, 4, 3, 4, 2, False, am=randn(3, 4))
mha_case("mha_nobias", 6, 1, 3, 3, 2, True, bias=False)


def tel_case(name, norm_first, gelu, batch_first):
    m = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, activation="gelu" if gelu else "relu",
                                         norm_first=norm_first, batch_first=batch_first)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(randn(*p.shape) * 0.4)
    m.eval()
    x = randn(*((2, 5, 8) if batch_first else (5, 2, 8))).requires_grad_(True)
    # The backward path in eval: the fast path needs no grad, so this is the slow one.
    o = m(x)
    w = randn(*o.shape)
    (o * w).sum().backward()
    t = dict(flags=torch.tensor([float(norm_first), float(gelu), float(batch_first)]), x=x, out=o,
             w=w, gx=x.grad)
    for n, p in m.named_parameters():
        t["p." + n] = p
        t["g." + n] = p.grad
    case(name, **t)


tel_case("tel_post", False, False, False)
tel_case("tel_pre_gelu_bf", True, True, True)
out.close()

# A state dict to load by name: a 2-layer encoder, batch_first, ReLU, post-norm.
torch.manual_seed(77)
layer = torch.nn.TransformerEncoderLayer(16, 4, 32, dropout=0.1, batch_first=True)
enc = torch.nn.TransformerEncoder(layer, 2, norm=torch.nn.LayerNorm(16), enable_nested_tensor=False)
enc.eval()
x = torch.randn(2, 7, 16)
with torch.no_grad():
    y = enc(x)
save_state_dict(enc.state_dict(), os.path.join(HERE, "transformer.safetensors"),
                {"made_by": "make_golden_attn.py"})
save_state_dict({"input": x, "output": y}, os.path.join(HERE, "transformer_io.safetensors"))
