#!/usr/bin/python3
"""Golden data for nn.h's normalization layers (tests/test_norm.c), made by
PyTorch 1.13:

    /usr/bin/python3 tests/golden/make_golden_norm.py

writes norm.txt next to itself.  Inputs are rounded to 4 decimals so their
text is exact; PyTorch computes in float64 from those values; outputs are
%.8g.  RMSNorm (not in torch 1.13) and batch renormalization (not in torch)
are written out from torch ops as torch.nn.RMSNorm (2.4) and Ioffe (2017)
define them; ghost batch norm is F.batch_norm on each x.split(virtual_batch)
in turn.

Format (tests/golden.h): the magic line "nn.h-golden 1", then records

    case <name>
    <label> t <ndim> <dims...> <values...>     any number of labelled tensors
    end

Labels: x<k> (input of step k), gy<k> (the upstream gradient: the loss is
sum(y * gy)), y<k>, gx<k>, gw<k>, gb<k> (weight, bias gradients of that step
alone), rm<k>, rv<k> (running statistics after step k); w, b, rm, rv: the
initial parameters and running statistics.  Steps in evaluation mode are
labelled e<k>.  Options are part of the case name and fixed in the test.
"""
import os
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
torch.set_num_threads(1)
gen = torch.Generator().manual_seed(12)
out = ["nn.h-golden 1"]
D = torch.float64


def rnd(*shape, scale=1.0, shift=0.0):
    t = torch.randn(*shape, generator=gen, dtype=D) * scale + shift
    return (t * 1e4).round() / 1e4


def wt(label, t):
    t = t.detach().to(D).contiguous()
    vals = " ".join("%.8g" % v for v in t.reshape(-1).tolist())
    dims = " ".join(str(d) for d in t.shape)
    out.append("%s t %d %s %s" % (label, t.dim(), dims, vals))


def step(tag, fn, x, params, extra=None):
    """One forward/backward: fn(x, *params) -> y; writes x, gy, y, gx and the
    parameter gradients (params: list of (label, tensor))."""
    xs = x.clone().requires_grad_(True)
    ps = [p.clone().requires_grad_(True) for _, p in params]
    y = fn(xs, *ps)
    gy = rnd(*y.shape)
    (y * gy).sum().backward()
    wt("x" + tag, x)
    wt("gy" + tag, gy)
    wt("y" + tag, y)
    wt("gx" + tag, xs.grad)
    for (lab, _), p in zip(params, ps):
        wt("g" + lab + tag, p.grad)


def begin(name):
    out.append("case " + name)


def end():
    out.append("end")


# --- layer norm / RMS norm: stateless, one step each ---
def ln_case(name, xshape, k, affine, eps=1e-5):
    begin(name)
    ns = list(xshape[-k:])
    params = []
    if affine:
        w, b = rnd(*ns, shift=1.0), rnd(*ns)
        wt("w", w)
        wt("b", b)
        params = [("w", w), ("b", b)]
    x = rnd(*xshape, scale=2.0, shift=0.5)
    step("0", lambda x, *p: F.layer_norm(x, ns, *p, eps=eps), x, params)
    end()


def rms(x, ns, w, eps):
    dims = tuple(range(-len(ns), 0))
    y = x * torch.rsqrt(x.pow(2).mean(dims, keepdim=True) + eps)
    return y * w if w is not None else y


def rms_case(name, xshape, k, affine, eps):
    begin(name)
    ns = list(xshape[-k:])
    params = []
    if affine:
        w = rnd(*ns, shift=1.0)
        wt("w", w)
        params = [("w", w)]
    x = rnd(*xshape, scale=2.0, shift=0.3)
    step("0", lambda x, *p: rms(x, ns, p[0] if p else None, eps), x, params)
    end()


ln_case("ln_a", (3, 7), 1, True)
ln_case("ln_k2", (2, 3, 5), 2, True)
ln_case("ln_noaffine_b1", (1, 9), 1, False)
ln_case("ln_wide", (4, 37), 1, True, eps=1e-3)
rms_case("rms_a", (3, 19), 1, True, 1e-6)
rms_case("rms_noaffine_k2", (2, 4, 5), 2, False, float(torch.finfo(torch.float32).eps))


# --- group norm ---
def gn_case(name, xshape, groups, affine=True):
    begin(name)
    C = xshape[1]
    params = []
    if affine:
        w, b = rnd(C, shift=1.0), rnd(C)
        wt("w", w)
        wt("b", b)
        params = [("w", w), ("b", b)]
    x = rnd(*xshape, scale=1.5, shift=-0.2)
    step("0", lambda x, *p: F.group_norm(x, groups, *p, eps=1e-5), x, params)
    end()


gn_case("gn_3d_g3", (2, 6, 5), 3)
gn_case("gn_4d_g2", (3, 4, 3, 3), 2)
gn_case("gn_2d_g4", (5, 12), 4)
gn_case("gn_g1_b1", (1, 4, 3), 1)
gn_case("gn_noaffine_gC", (2, 3, 4), 3, affine=False)


# --- running-statistics layers: several training steps, then evaluation ---
def stateful(name, C, xshape, fwd, affine=True, track=True, steps=2, evals=1, rm0=None, rv0=None):
    """fwd(x, rm, rv, w, b, training) updates rm, rv in place."""
    begin(name)
    w = rnd(C, shift=1.0) if affine else None
    b = rnd(C) if affine else None
    rm = (rm0.clone() if rm0 is not None else torch.zeros(C, dtype=D)) if track else None
    rv = (rv0.clone() if rv0 is not None else torch.ones(C, dtype=D)) if track else None
    if affine:
        wt("w", w)
        wt("b", b)
    if track:
        wt("rm", rm)
        wt("rv", rv)
    params = [("w", w), ("b", b)] if affine else []
    for k in range(steps + evals):
        training = k < steps
        tag = ("%d" % k) if training else ("e%d" % (k - steps))
        x = rnd(*xshape, scale=1.3, shift=0.4 * (k + 1))
        step(tag, lambda x, *p: fwd(x, rm, rv, p[0] if p else None, p[1] if p else None, training),
             x, params)
        if track and training:
            wt("rm" + tag, rm)
            wt("rv" + tag, rv)
    end()


def bn(momentum=0.1, eps=1e-5):
    def f(x, rm, rv, w, b, training):
        return F.batch_norm(x, rm, rv, w, b, training or rm is None, momentum, eps)
    return f


def bn_cumulative(eps=1e-5):
    count = [0]

    def f(x, rm, rv, w, b, training):
        if training:
            count[0] += 1
        return F.batch_norm(x, rm, rv, w, b, training, 1.0 / count[0] if training else 0.0, eps)
    return f


def ghost(vb, momentum=0.1, eps=1e-5):
    def f(x, rm, rv, w, b, training):
        if not training:
            return F.batch_norm(x, rm, rv, w, b, False, momentum, eps)
        return torch.cat([F.batch_norm(c, rm, rv, w, b, True, momentum, eps) for c in x.split(vb)])
    return f


def renorm(r_max, d_max, momentum=0.1, eps=1e-5):
    def f(x, rm, rv, w, b, training):
        if not training:
            return F.batch_norm(x, rm, rv, w, b, False, momentum, eps)
        dims = [0] + list(range(2, x.dim()))
        shp = [1, -1] + [1] * (x.dim() - 2)
        mean = x.mean(dims)
        var = x.var(dims, unbiased=False)
        M = x.numel() / x.shape[1]
        sigma = (var + eps).sqrt()
        srun = (rv + eps).sqrt()
        r = (sigma.detach() / srun).clamp(1.0 / r_max, r_max)
        d = ((mean.detach() - rm) / srun).clamp(-d_max, d_max)
        xh = (x - mean.view(shp)) / sigma.view(shp) * r.view(shp) + d.view(shp)
        with torch.no_grad():
            rm.mul_(1 - momentum).add_(momentum * mean)
            rv.mul_(1 - momentum).add_(momentum * var * M / (M - 1))
        return xh * w.view(shp) + b.view(shp)
    return f


def inorm(momentum=0.1, eps=1e-5):
    def f(x, rm, rv, w, b, training):
        return F.instance_norm(x, rm, rv, w, b, training or rm is None, momentum, eps)
    return f


stateful("bn1d_plain", 3, (5, 3), bn())
stateful("bn2d_plain", 2, (3, 2, 3, 5), bn())
stateful("bn_noaffine_notrack", 3, (4, 3, 5), bn(), affine=False, track=False)
stateful("bn_cumulative", 3, (4, 3, 2), bn_cumulative(), steps=3)
stateful("ghost_vb3", 3, (7, 3, 4), ghost(3), steps=2)
stateful("renorm_clip", 3, (6, 3, 4), renorm(1.5, 0.5), steps=2,
         rm0=rnd(3, scale=0.5), rv0=rnd(3, scale=0.2, shift=1.0).abs())
stateful("in1d_affine_track", 3, (2, 3, 7), inorm(), steps=2)
stateful("in2d_plain", 2, (1, 2, 3, 3), inorm(), affine=False, track=False, steps=1)


# --- weight norm and spectral norm ---
def reparam_setup(name, mod):
    begin(name)
    with torch.no_grad():
        mod.weight.copy_(rnd(*mod.weight.shape, scale=0.5))
        mod.bias.copy_(rnd(*mod.bias.shape, scale=0.5))
    mod = mod.double()
    wt("weight", mod.weight)
    wt("bias", mod.bias)
    return mod


def reparam_step(m, xshape, grads):
    x = rnd(*xshape).requires_grad_(True)
    y = m(x)
    gy = rnd(*y.shape)
    (y * gy).sum().backward()
    wt("x0", x)
    wt("gy0", gy)
    wt("y0", y)
    wt("gx0", x.grad)
    for g in grads:
        wt("g%s0" % g, getattr(m, g).grad)


def wn_case(name, mod, dim, xshape):
    m = torch.nn.utils.weight_norm(reparam_setup(name, mod), "weight", dim=dim)
    wt("weight_g", m.weight_g)
    wt("weight_v", m.weight_v)
    reparam_step(m, xshape, ["weight_g", "weight_v"])
    end()


wn_case("wn_linear_d0", torch.nn.Linear(5, 4), 0, (3, 5))
wn_case("wn_linear_d1", torch.nn.Linear(5, 4), 1, (3, 5))
wn_case("wn_linear_all", torch.nn.Linear(5, 4), None, (2, 5))
wn_case("wn_conv_d0", torch.nn.Conv2d(2, 3, 3, padding=1), 0, (2, 2, 4, 4))


def sn_case(name, mod, xshape, iters):
    m = torch.nn.utils.spectral_norm(reparam_setup(name, mod), "weight", n_power_iterations=iters)
    with torch.no_grad():
        m.weight_u.copy_(F.normalize(rnd(*m.weight_u.shape), dim=0))
        m.weight_v.copy_(F.normalize(rnd(*m.weight_v.shape), dim=0))
    wt("u", m.weight_u)
    wt("v", m.weight_v)
    reparam_step(m, xshape, ["weight_orig"])
    wt("u0", m.weight_u)
    wt("v0", m.weight_v)
    m.eval()
    x = rnd(*xshape)
    wt("xe0", x)
    wt("ye0", m(x))
    end()


sn_case("sn_linear", torch.nn.Linear(5, 4), (3, 5), 2)
sn_case("sn_conv", torch.nn.Conv2d(2, 3, 3), (1, 2, 5, 5), 1)

with open(os.path.join(HERE, "norm.txt"), "w") as f:
    f.write("\n".join(out) + "\n")
print("wrote", os.path.join(HERE, "norm.txt"), len([l for l in out if l.startswith("case")]), "cases")
