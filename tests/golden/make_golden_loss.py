#!/usr/bin/python3
"""Golden data for nn.h's losses (>>losses), made by PyTorch.  Run with a
Python that has torch (here /usr/bin/python3, torch 1.13):

    /usr/bin/python3 tests/golden/make_golden_loss.py

It writes loss.txt next to itself (tests/test_loss.c reads it).  Inputs are
rounded to 4 decimals so their text is exact; outputs are %.9g.

Format: whitespace-separated tokens after the magic line "nn.h-golden 1"
(read by tests/golden.h).
A tensor is "t <ndim> <dims...> <values...>".  Records:

    case <name> <loss> <reduction>     reduction: 0 mean, 1 sum, 2 none, 3 batchmean
    iargs <k> <int>*k                  the loss's integer options (below)
    fargs <k> <float>*k                its float options (below)
    labels <k> <int>*k                 integer targets (class losses), else 0
    in <n> <tensor>*n                  the tensor arguments, in call order
    extra <m> <tensor>*m               class weights / weight / pos_weight
    out <tensor>                       the loss (a scalar, or the unreduced tensor)
    w <tensor>                         a fixed random tensor of out's shape
    grad <n> (g 1 <tensor> | g 0)*n    d sum(out * w) / d input (g 0: PyTorch gives none)
    end

    loss          iargs                           fargs                 in
    nll, ce       use_ignore ignore_index has_w   (ce: label_smoothing)  x
    ce_soft       has_w                           label_smoothing       x, target_probs
    mse, l1       -                               -                     x, y
    smooth_l1     -                               beta                  x, y
    huber         -                               delta                 x, y
    bce, bce_logits has_w has_pos_weight          -                     x, y
    kl            log_target                      -                     x, y
    gnll          full                            eps                   x, y, var
    multi_margin  p has_w                         margin                x
    cosine, ranking -                             margin                x1, x2, y
    triplet       swap                            margin p eps          a, p, n
"""
import os
import torch
import torch.nn.functional as F

MAGIC = "nn.h-golden 1"
HERE = os.path.dirname(os.path.abspath(__file__))
torch.set_num_threads(1)
gen = torch.Generator().manual_seed(12)
out = []
RED = {"mean": 0, "sum": 1, "none": 2, "batchmean": 3}


def r4(t):
    return (t * 1e4).round() / 1e4


def rnd(*shape, scale=1.0):
    return r4(torch.randn(tuple(shape), generator=gen) * scale)


def unif(*shape, lo=0.0, hi=1.0):
    return r4(torch.rand(tuple(shape), generator=gen) * (hi - lo) + lo)


def wt(t):
    t = t.detach()
    vals = " ".join("%.9g" % v for v in t.reshape(-1).tolist())
    return "t %d %s %s" % (t.dim(), " ".join(str(d) for d in t.shape), vals)


def case(name, loss, red, iargs, fargs, labels, inputs, extra, fn, nograd=()):
    xs = [t.clone().requires_grad_(i not in nograd) for i, t in enumerate(inputs)]
    y = fn(*xs)
    w = rnd(*y.shape)
    (y * w).sum().backward()
    out.append("case %s %s %d" % (name, loss, RED[red]))
    out.append("iargs %d %s" % (len(iargs), " ".join(str(i) for i in iargs)))
    out.append("fargs %d %s" % (len(fargs), " ".join("%.9g" % f for f in fargs)))
    out.append("labels %d %s" % (len(labels), " ".join(str(i) for i in labels)))
    out.append("in %d" % len(xs))
    out.extend(wt(t) for t in inputs)
    out.append("extra %d" % len(extra))
    out.extend(wt(t) for t in extra)
    out.append("out " + wt(y))
    out.append("w " + wt(w))
    out.append("grad %d" % len(xs))
    out.extend("g 1 " + wt(t.grad) if t.grad is not None else "g 0" for t in xs)
    out.append("end")


REDS = ["mean", "sum", "none"]

# ---- class-index losses: NLL and cross-entropy ----
for red in REDS:
    for shape, lab in [((3, 5), [4, 0, 2]), ((1, 4), [3]), ((2, 3, 2), [0, 2, 1, 1])]:
        nm = "x".join(str(s) for s in shape)
        x = rnd(*shape)
        C = shape[1]
        wc = unif(C, lo=0.2, hi=2.0)
        lab_t = torch.tensor(lab).view((shape[0],) + shape[2:])
        lp = r4(F.log_softmax(rnd(*shape), 1))
        case("nll_%s_%s" % (nm, red), "nll", red, [0, 0, 0], [], lab, [lp], [],
             lambda a: F.nll_loss(a, lab_t, reduction=red))
        case("nllw_%s_%s" % (nm, red), "nll", red, [0, 0, 1], [], lab, [lp], [wc],
             lambda a: F.nll_loss(a, lab_t, weight=wc, reduction=red))
        case("ce_%s_%s" % (nm, red), "ce", red, [0, 0, 0], [0.0], lab, [x], [],
             lambda a: F.cross_entropy(a, lab_t, reduction=red))
        case("cew_ls_%s_%s" % (nm, red), "ce", red, [0, 0, 1], [0.15], lab, [x], [wc],
             lambda a: F.cross_entropy(a, lab_t, weight=wc, label_smoothing=0.15, reduction=red))
        # soft targets
        tp = r4(F.softmax(rnd(*shape), 1))
        case("ces_%s_%s" % (nm, red), "ce_soft", red, [0], [0.0], [], [x, tp], [],
             lambda a, t: F.cross_entropy(a, t, reduction=red))
        case("cesw_ls_%s_%s" % (nm, red), "ce_soft", red, [1], [0.2], [], [x, tp], [wc],
             lambda a, t: F.cross_entropy(a, t, weight=wc, label_smoothing=0.2, reduction=red))
    # ignore_index: the default -100, and a set one (class 1), with and without weights
    x = rnd(5, 4)
    wc = unif(4, lo=0.2, hi=2.0)
    lab = [0, -100, 2, 3, -100]
    lt = torch.tensor(lab)
    case("ce_ign_%s" % red, "ce", red, [0, 0, 0], [0.1], lab, [x], [],
         lambda a: F.cross_entropy(a, lt, label_smoothing=0.1, reduction=red))
    case("cew_ign_%s" % red, "ce", red, [0, 0, 1], [0.1], lab, [x], [wc],
         lambda a: F.cross_entropy(a, lt, weight=wc, label_smoothing=0.1, reduction=red))
    lab1 = [1, 0, 1, 3, 2]
    lt1 = torch.tensor(lab1)
    case("nllw_ign1_%s" % red, "nll", red, [1, 1, 1], [], lab1, [x], [wc],
         lambda a: F.nll_loss(a, lt1, weight=wc, ignore_index=1, reduction=red))
    case("ce_ign1_%s" % red, "ce", red, [1, 1, 0], [0.0], lab1, [x], [],
         lambda a: F.cross_entropy(a, lt1, ignore_index=1, reduction=red))
    # extreme logits: stable log-softmax
    xe = torch.tensor([[1e4, -1e4, 0.0, 30.0], [-80.0, 80.0, 79.0, -1e3], [88.0, 88.0, -88.0, 0.0]])
    le = [1, 3, 2]
    lte = torch.tensor(le)
    case("ce_extreme_%s" % red, "ce", red, [0, 0, 0], [0.05], le, [xe], [],
         lambda a: F.cross_entropy(a, lte, label_smoothing=0.05, reduction=red))
    tpe = r4(F.softmax(rnd(3, 4), 1))
    case("ces_extreme_%s" % red, "ce_soft", red, [0], [0.0], [], [xe, tpe], [],
         lambda a, t: F.cross_entropy(a, t, reduction=red))

# ---- element-wise regression losses ----
for red in REDS:
    for shape in [(3, 5), (1, 4), (2, 3, 2)]:
        nm = "x".join(str(s) for s in shape)
        x, y = rnd(*shape), rnd(*shape)
        case("mse_%s_%s" % (nm, red), "mse", red, [], [], [], [x, y], [],
             lambda a, b: F.mse_loss(a, b, reduction=red))
        case("l1_%s_%s" % (nm, red), "l1", red, [], [], [], [x, y], [],
             lambda a, b: F.l1_loss(a, b, reduction=red))
        for beta in [1.0, 0.4]:
            case("sl1_%g_%s_%s" % (beta, nm, red), "smooth_l1", red, [], [beta], [], [x, y], [],
                 lambda a, b: F.smooth_l1_loss(a, b, reduction=red, beta=beta))
        for delta in [1.0, 0.3, 2.5]:
            case("huber_%g_%s_%s" % (delta, nm, red), "huber", red, [], [delta], [], [x, y], [],
                 lambda a, b: F.huber_loss(a, b, reduction=red, delta=delta))

# ---- binary cross-entropy ----
for red in REDS:
    for shape in [(3, 5), (1, 4), (2, 3, 2)]:
        nm = "x".join(str(s) for s in shape)
        p = unif(*shape, lo=0.02, hi=0.98)
        t = unif(*shape)
        z = rnd(*shape, scale=2.0)
        wb = unif(shape[-1], lo=0.2, hi=2.0)          # broadcast over the last dim
        wfull = unif(*shape, lo=0.2, hi=2.0)
        pw = unif(shape[-1], lo=0.3, hi=3.0)
        case("bce_%s_%s" % (nm, red), "bce", red, [0, 0], [], [], [p, t], [],
             lambda a, b: F.binary_cross_entropy(a, b, reduction=red))
        case("bcew_%s_%s" % (nm, red), "bce", red, [1, 0], [], [], [p, t], [wfull],
             lambda a, b: F.binary_cross_entropy(a, b, weight=wfull, reduction=red))
        case("bcel_%s_%s" % (nm, red), "bce_logits", red, [0, 0], [], [], [z, t], [],
             lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction=red))
        case("bcelw_%s_%s" % (nm, red), "bce_logits", red, [1, 1], [], [], [z, t], [wb, pw],
             lambda a, b: F.binary_cross_entropy_with_logits(a, b, weight=wb, pos_weight=pw,
                                                             reduction=red))
    ze = torch.tensor([[100.0, -100.0, 30.0], [-30.0, 0.0, 1e4]])
    te = torch.tensor([[0.0, 1.0, 0.3], [1.0, 0.5, 0.0]])
    pwe = torch.tensor([2.0, 0.5, 1.5])
    case("bcel_extreme_%s" % red, "bce_logits", red, [0, 1], [], [], [ze, te], [pwe],
         lambda a, b: F.binary_cross_entropy_with_logits(a, b, pos_weight=pwe, reduction=red))
    pe = torch.tensor([[1e-30, 1.0 - 1e-7, 0.5]])
    tb = torch.tensor([[0.0, 1.0, 1.0]])
    case("bce_clamp_%s" % red, "bce", red, [0, 0], [], [], [pe, tb], [],
         lambda a, b: F.binary_cross_entropy(a, b, reduction=red))

# ---- KL divergence ----
for red in REDS + ["batchmean"]:
    for shape in [(3, 5), (1, 4), (2, 3, 2)]:
        nm = "x".join(str(s) for s in shape)
        x = r4(F.log_softmax(rnd(*shape), -1))
        t = r4(F.softmax(rnd(*shape), -1))
        tl = r4(F.log_softmax(rnd(*shape), -1))
        case("kl_%s_%s" % (nm, red), "kl", red, [0], [], [], [x, t], [],
             lambda a, b: F.kl_div(a, b, reduction=red))
        case("kllog_%s_%s" % (nm, red), "kl", red, [1], [], [], [x, tl], [],
             lambda a, b: F.kl_div(a, b, reduction=red, log_target=True))

# ---- Gaussian NLL ----
for red in REDS:
    for shape, vshape in [((3, 5), (3, 5)), ((3, 5), (3,)), ((3, 5), (3, 1)), ((1, 4), (1, 4)),
                          ((2, 3, 2), (2, 3, 1))]:
        nm = "x".join(str(s) for s in shape) + "_v" + "x".join(str(s) for s in vshape)
        x, y = rnd(*shape), rnd(*shape)
        v = unif(*vshape, lo=0.1, hi=2.0)
        case("gnll_%s_%s" % (nm, red), "gnll", red, [0], [1e-6], [], [x, y, v], [],
             lambda a, b, c: F.gaussian_nll_loss(a, b, c, reduction=red))
        case("gnllfull_%s_%s" % (nm, red), "gnll", red, [1], [0.3], [], [x, y, v], [],
             lambda a, b, c: F.gaussian_nll_loss(a, b, c, full=True, eps=0.3, reduction=red))

# ---- margin losses ----
for red in REDS:
    for N, C, lab in [(3, 5, [4, 0, 2]), (1, 4, [3]), (4, 3, [0, 1, 2, 1])]:
        nm = "%dx%d" % (N, C)
        x = rnd(N, C)
        lt = torch.tensor(lab)
        wc = unif(C, lo=0.2, hi=2.0)
        for p in [1, 2]:
            for margin in [1.0, 0.4]:
                case("mm_p%d_m%g_%s_%s" % (p, margin, nm, red), "multi_margin", red, [p, 0],
                     [margin], lab, [x], [],
                     lambda a: F.multi_margin_loss(a, lt, p=p, margin=margin, reduction=red))
            case("mmw_p%d_%s_%s" % (p, nm, red), "multi_margin", red, [p, 1], [0.7], lab, [x],
                 [wc], lambda a: F.multi_margin_loss(a, lt, p=p, margin=0.7, weight=wc,
                                                     reduction=red))
    x = rnd(5)
    lt0 = torch.tensor(2)
    for p in [1, 2]:
        case("mm_p%d_unbatched_%s" % (p, red), "multi_margin", red, [p, 0], [0.6], [2], [x], [],
             lambda a: F.multi_margin_loss(a, lt0, p=p, margin=0.6, reduction=red))
    x1, x2 = rnd(4), rnd(4)
    for yv in [1.0, -1.0]:
        case("cos_unbatched_y%g_%s" % (yv, red), "cosine", red, [], [-0.5], [],
             [x1, x2, torch.tensor(yv)], [],
             lambda a, b, c: F.cosine_embedding_loss(a, b, c, margin=-0.5, reduction=red),
             nograd=(2,))
    for N, D in [(4, 5), (1, 3)]:
        nm = "%dx%d" % (N, D)
        x1, x2 = rnd(N, D), rnd(N, D)
        y = torch.tensor([1.0, -1.0, -1.0, 1.0][:N])
        for margin in [0.0, -0.3, 0.2]:
            case("cos_m%g_%s_%s" % (margin, nm, red), "cosine", red, [], [margin], [],
                 [x1, x2, y], [],
                 lambda a, b, c: F.cosine_embedding_loss(a, b, c, margin=margin, reduction=red),
                 nograd=(2,))
        a, b = rnd(3, 5), rnd(3, 5)
        ys = torch.sign(rnd(3, 5))
        for margin in [0.0, 0.5]:
            case("rank_m%g_%s_%s" % (margin, nm, red), "ranking", red, [], [margin], [],
                 [a, b, ys], [],
                 lambda u, v, c: F.margin_ranking_loss(u, v, c, margin=margin, reduction=red))
    for shape in [(4, 5), (1, 3), (6,)]:
        nm = "x".join(str(s) for s in shape)
        A, P, Q = rnd(*shape), rnd(*shape), rnd(*shape)
        for margin, p, eps, swap in [(1.0, 2.0, 1e-6, 0), (0.5, 1.0, 1e-6, 0),
                                     (2.0, 3.0, 1e-3, 1), (1.0, 2.0, 1e-6, 1)]:
            case("trip_m%g_p%g_s%d_%s_%s" % (margin, p, swap, nm, red), "triplet", red, [swap],
                 [margin, p, eps], [], [A, P, Q], [],
                 lambda u, v, c: F.triplet_margin_loss(u, v, c, margin=margin, p=p, eps=eps,
                                                       swap=bool(swap), reduction=red))

with open(os.path.join(HERE, "loss.txt"), "w") as f:
    f.write(MAGIC + "\n" + "\n".join(out) + "\n")
print("wrote %d cases" % sum(1 for l in out if l.startswith("case ")))
