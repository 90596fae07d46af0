#!/usr/bin/python3
"""Golden data for nn.h's ops, losses and optimizers, made by PyTorch.

Run with a Python that has torch (here /usr/bin/python3, torch 1.13):

    /usr/bin/python3 tests/golden/make_golden.py

It writes ops.txt and optim.txt next to itself.  Everything is float32 with
fixed seeds, so the output is the same on every run (on the same torch).

File format (whitespace-separated tokens; tests/test_ops.c and
tests/test_optim.c read it).  Both files start with the magic line
"nn.h-golden 1".  A tensor is written as

    t <ndim> <d0> ... <d(ndim-1)> <v0> <v1> ...        (%.9g, row-major)

ops.txt holds one record per case:

    case <name> <op>
    iargs <k> <int>*k        op arguments: axes, keepdim, shapes, labels ...
    fargs <k> <float>*k      op arguments: scalars, pow exponent, smoothing
    in <n>  <tensor>*n       the inputs (all of them require a gradient)
    out <tensor>             op(inputs)
    w <tensor>               a fixed random tensor of out's shape
    grad <n> <tensor>*n      d sum(out * w) / d input, for every input
    end

The arguments per op are listed in OPS below (the C side mirrors them).

optim.txt holds a small problem and optimizer trajectories:

    x <tensor>               the batch [N,5]
    ymse <tensor>            MSE targets [N,2]
    ylab <N> <int>*N         cross-entropy labels
    init <P> then P times: p <name> <tensor>    the initial parameters
    run <name> <sgd|adam> <tanh|relu> <mse|ce> <steps> <k> <float>*k
        sgd:  lr momentum dampening weight_decay nesterov
        adam: lr beta1 beta2 eps weight_decay   (0 = nn.h's default)
    then <steps> lines: step <i> <all parameters after step i, concatenated
    in nn_parameters order>
    end

The model is Sequential(Linear(5,3), act, Linear(3,2)); parameter names
follow PyTorch (0.weight, 0.bias, 2.weight, 2.bias).
"""
import os
import torch
import torch.nn.functional as F

MAGIC = "nn.h-golden 1"
HERE = os.path.dirname(os.path.abspath(__file__))

torch.set_default_dtype(torch.float32)
torch.set_num_threads(1)
gen = torch.Generator().manual_seed(20240611)


def fmt(v):
    return "%.9g" % float(v)


def tstr(t):
    t = t.detach().to(torch.float32).contiguous()
    dims = list(t.shape)
    vals = t.reshape(-1).tolist()
    return " ".join(["t", str(len(dims))] + [str(d) for d in dims] + [fmt(v) for v in vals])


# Input generators (all deterministic through gen).
def randn(*s):
    return torch.randn(s, generator=gen)


def pos(*s):
    """Uniform in [0.5, 2]: for log, sqrt, negative powers."""
    return 0.5 + 1.5 * torch.rand(s, generator=gen)


def away(*s):
    """Random sign, magnitude in [0.2, 2]: away from relu's kink and from 0."""
    mag = 0.2 + 1.8 * torch.rand(s, generator=gen)
    sign = torch.where(torch.rand(s, generator=gen) < 0.5, -1.0, 1.0)
    return sign * mag


def distinct(*s):
    """Pairwise gaps of at least 0.08: no ties for max, stable finite differences."""
    n = 1
    for d in s:
        n *= d
    perm = torch.randperm(n, generator=gen).to(torch.float32)
    noise = 0.02 * torch.rand(n, generator=gen)
    return ((perm - n / 2) * 0.1 + noise).reshape(*s)


cases = []


def case(name, op, inputs, fn, iargs=(), fargs=()):
    ins = [x.clone().requires_grad_(True) for x in inputs]
    out = fn(*ins)
    w = randn(*out.shape)
    (out * w).sum().backward()
    grads = []
    for x in ins:
        grads.append(x.grad if x.grad is not None else torch.zeros_like(x))
    cases.append((name, op, list(iargs), list(fargs), inputs, out, w, grads))


# ---- element-wise binary ops with broadcasting ----
bin_shapes = [
    ("eq", (3, 4), (3, 4)),
    ("34_4", (3, 4), (4,)),
    ("4_34", (4,), (3, 4)),
    ("214_31", (2, 1, 4), (3, 1)),
    ("34_1", (3, 4), (1,)),
    ("34_scalar0d", (3, 4), ()),
    ("31_14", (3, 1), (1, 4)),
    ("234_134", (2, 3, 4), (1, 3, 4)),
]
bin_fns = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div}
for op, fn in bin_fns.items():
    for tag, sa, sb in bin_shapes:
        a = randn(*sa)
        b = away(*sb) if op == "div" else randn(*sb)
        case("%s_%s" % (op, tag), op, [a, b], fn)

# ---- scalar ops ----
for op, s in [("add_scalar", 1.5), ("sub_scalar", -0.75), ("mul_scalar", -2.5),
              ("div_scalar", 0.4)]:
    f = {"add_scalar": lambda a, s=s: a + s, "sub_scalar": lambda a, s=s: a - s,
         "mul_scalar": lambda a, s=s: a * s, "div_scalar": lambda a, s=s: a / s}[op]
    case(op, op, [randn(3, 4)], f, fargs=[s])
    case(op + "_3d", op, [randn(2, 3, 2)], f, fargs=[s])

# ---- matmul ----
for tag, sa, sb in [("2d", (3, 4), (4, 5)), ("batched", (2, 3, 4), (2, 4, 5)),
                    ("b_x_2d", (2, 3, 4), (4, 5)), ("2d_x_b", (3, 4), (2, 4, 5)),
                    ("1xK", (1, 6), (6, 2)), ("b4d", (2, 2, 3, 2), (2, 2, 2, 3))]:
    case("matmul_" + tag, "matmul", [randn(*sa), randn(*sb)], torch.matmul)

# ---- transpose ----
for tag, s, d0, d1 in [("2d", (3, 4), 0, 1), ("2d_neg", (3, 4), -1, -2),
                       ("3d_01", (2, 3, 4), 0, 1), ("3d_02", (2, 3, 4), 0, 2),
                       ("3d_neg", (2, 3, 4), -1, -2), ("3d_mixed", (2, 3, 4), -3, 2),
                       ("3d_same", (2, 3, 4), 1, 1)]:
    case("transpose_" + tag, "transpose", [randn(*s)],
         lambda a, d0=d0, d1=d1: a.transpose(d0, d1), iargs=[d0, d1])

# ---- reshape, flatten_batch ----
for tag, s, ns in [("m1_first", (2, 3, 4), (-1, 4)), ("m1_last", (2, 3, 4), (4, -1)),
                   ("m1_mid", (2, 3, 4), (2, -1, 3)), ("flat", (3, 4), (12,)),
                   ("flat_m1", (3, 4), (-1,)), ("up", (12,), (2, 2, 3))]:
    case("reshape_" + tag, "reshape", [randn(*s)],
         lambda a, ns=ns: a.reshape(*ns), iargs=[len(ns)] + list(ns))
case("flatten_batch_3d", "flatten_batch", [randn(2, 3, 4)], lambda a: a.flatten(1))
case("flatten_batch_4d", "flatten_batch", [randn(2, 3, 2, 2)], lambda a: a.flatten(1))
case("flatten_batch_2d", "flatten_batch", [randn(3, 4)], lambda a: a.flatten(1))

# ---- full reductions ----
case("sum_2d", "sum", [randn(3, 4)], torch.sum)
case("sum_3d", "sum", [randn(2, 3, 4)], torch.sum)
case("mean_2d", "mean", [randn(3, 4)], torch.mean)
case("mean_3d", "mean", [randn(2, 3, 4)], torch.mean)

# ---- axis reductions ----
for op in ["sum_axis", "mean_axis", "max_axis"]:
    for axis in [0, 1, 2, -1, -2, -3]:
        for keep in [0, 1]:
            if op == "max_axis":
                f = lambda a, ax=axis, k=keep: torch.max(a, ax, keepdim=bool(k)).values
                x = distinct(2, 3, 4)
            elif op == "sum_axis":
                f = lambda a, ax=axis, k=keep: torch.sum(a, ax, keepdim=bool(k))
                x = randn(2, 3, 4)
            else:
                f = lambda a, ax=axis, k=keep: torch.mean(a, ax, keepdim=bool(k))
                x = randn(2, 3, 4)
            case("%s_%d_k%d" % (op, axis, keep), op, [x], f, iargs=[axis, keep])
    for axis in [0, 1, -1]:
        x = distinct(3, 5) if op == "max_axis" else randn(3, 5)
        f = {"sum_axis": lambda a, ax=axis: torch.sum(a, ax),
             "mean_axis": lambda a, ax=axis: torch.mean(a, ax),
             "max_axis": lambda a, ax=axis: torch.max(a, ax).values}[op]
        case("%s_2d_%d" % (op, axis), op, [x], f, iargs=[axis, 0])

# ---- element-wise unary ----
case("exp", "exp", [randn(3, 4)], torch.exp)
case("exp_3d", "exp", [randn(2, 3, 2)], torch.exp)
case("log", "log", [pos(3, 4)], torch.log)
case("sqrt", "sqrt", [pos(3, 4)], torch.sqrt)
for p, gen_in, tag in [(2.0, randn, "2"), (0.5, pos, "0.5"), (-1.5, pos, "m1.5"),
                       (3.0, randn, "3"), (1.0, randn, "1")]:
    case("pow_" + tag, "pow", [gen_in(3, 4)], lambda a, p=p: torch.pow(a, p), fargs=[p])
case("relu_op", "relu_op", [away(3, 4)], torch.relu)
case("relu_op_3d", "relu_op", [away(2, 3, 4)], torch.relu)
case("sigmoid_op", "sigmoid_op", [2 * randn(3, 4)], torch.sigmoid)
case("tanh_op", "tanh_op", [randn(3, 4)], torch.tanh)
# Large magnitudes: a naive exp-based sigmoid/tanh overflows here.
big = torch.tensor([[-60.0, -20.0, -5.0, 0.25], [5.0, 20.0, 60.0, -0.5]])
case("sigmoid_op_big", "sigmoid_op", [big], torch.sigmoid)
case("tanh_op_big", "tanh_op", [big], torch.tanh)

# ---- softmax, log_softmax ----
for op, fn in [("softmax", torch.softmax), ("log_softmax", torch.log_softmax)]:
    for axis in [0, 1, 2, -1]:
        case("%s_3d_%d" % (op, axis), op, [randn(2, 3, 4)],
             lambda a, ax=axis, fn=fn: fn(a, ax), iargs=[axis])
    case(op + "_2d_1", op, [randn(4, 5)], lambda a, fn=fn: fn(a, 1), iargs=[1])
    # Shifted rows: stability (a naive exp overflows at 1000).
    x = randn(3, 4)
    x[0] += 1000.0
    x[1] -= 1000.0
    case(op + "_shifted", op, [x], lambda a, fn=fn: fn(a, -1), iargs=[-1])

# ---- concat ----
case("concat_2_axis0", "concat", [randn(2, 3), randn(1, 3)],
     lambda a, b: torch.cat([a, b], 0), iargs=[0])
case("concat_2_axis1", "concat", [randn(2, 3), randn(2, 2)],
     lambda a, b: torch.cat([a, b], 1), iargs=[1])
case("concat_3_axis0", "concat", [randn(1, 2, 3), randn(2, 2, 3), randn(1, 2, 3)],
     lambda a, b, c: torch.cat([a, b, c], 0), iargs=[0])
case("concat_3_axis1", "concat", [randn(2, 1, 3), randn(2, 3, 3), randn(2, 2, 3)],
     lambda a, b, c: torch.cat([a, b, c], 1), iargs=[1])
case("concat_3_axism1", "concat", [randn(2, 3, 1), randn(2, 3, 2), randn(2, 3, 4)],
     lambda a, b, c: torch.cat([a, b, c], -1), iargs=[-1])
case("concat_2_axism1", "concat", [randn(3, 2), randn(3, 3)],
     lambda a, b: torch.cat([a, b], -1), iargs=[-1])

# ---- slice ----
for tag, s, axis, st, en in [("2d_0", (4, 3), 0, 1, 3), ("2d_1", (3, 5), 1, 2, 5),
                             ("3d_0", (3, 3, 4), 0, 0, 2), ("3d_1", (2, 4, 3), 1, 1, 3),
                             ("3d_m1", (2, 3, 5), -1, 1, 4), ("3d_full", (2, 3, 4), 2, 0, 4),
                             ("3d_one", (2, 3, 4), 1, 2, 3)]:
    case("slice_" + tag, "slice", [randn(*s)],
         lambda a, axis=axis, st=st, en=en: a.narrow(axis, st, en - st),
         iargs=[axis, st, en])

# ---- linear_op ----
case("linear_op_bias", "linear_op", [randn(4, 5), randn(3, 5), randn(3)], F.linear)
case("linear_op_nobias", "linear_op", [randn(4, 5), randn(3, 5)], F.linear)
case("linear_op_1row", "linear_op", [randn(1, 3), randn(2, 3), randn(2)], F.linear)

# ---- losses ----
labels = [2, 0, 3, 3, 1]
for eps in [0.0, 0.1]:
    for red, rname in [(0, "mean"), (1, "sum")]:
        case("cross_entropy_%s_ls%g" % (rname, eps), "cross_entropy", [randn(5, 4)],
             lambda a, eps=eps, rname=rname: F.cross_entropy(
                 a, torch.tensor(labels), reduction=rname, label_smoothing=eps),
             iargs=[red, len(labels)] + labels, fargs=[eps])
big_logits = 3 * randn(5, 4)
big_logits[1] += 500.0
case("cross_entropy_shifted", "cross_entropy", [big_logits],
     lambda a: F.cross_entropy(a, torch.tensor(labels)),
     iargs=[0, len(labels)] + labels, fargs=[0.0])
case("mse", "mse", [randn(4, 3), randn(4, 3)], F.mse_loss)
case("mse_3d", "mse", [randn(2, 3, 2), randn(2, 3, 2)], F.mse_loss)


def write_ops(path):
    lines = [MAGIC]
    for name, op, iargs, fargs, inputs, out, w, grads in cases:
        lines.append("case %s %s" % (name, op))
        lines.append("iargs %d%s" % (len(iargs), "".join(" %d" % i for i in iargs)))
        lines.append("fargs %d%s" % (len(fargs), "".join(" " + fmt(f) for f in fargs)))
        lines.append("in %d" % len(inputs))
        lines.extend(tstr(x) for x in inputs)
        lines.append("out " + tstr(out))
        lines.append("w " + tstr(w))
        lines.append("grad %d" % len(grads))
        lines.extend(tstr(g) for g in grads)
        lines.append("end")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


# ---- optimizers ----
N = 6
opt_x = randn(N, 5)
opt_ymse = randn(N, 2)
opt_ylab = [0, 1, 1, 0, 1, 0]
opt_init = [("0.weight", 0.6 * randn(3, 5)), ("0.bias", 0.3 * randn(3)),
            ("2.weight", 0.6 * randn(2, 3)), ("2.bias", 0.3 * randn(2))]

# (name, kind, act, loss, steps, args) -- args as in the format above
runs = [
    ("sgd_plain", "sgd", "tanh", "mse", 20, [0.1, 0, 0, 0, 0]),
    ("sgd_momentum", "sgd", "tanh", "mse", 20, [0.1, 0.9, 0, 0, 0]),
    ("sgd_nesterov", "sgd", "tanh", "ce", 20, [0.1, 0.9, 0, 0, 1]),
    ("sgd_damp_wd", "sgd", "tanh", "mse", 20, [0.1, 0.9, 0.1, 0.01, 0]),
    ("sgd_relu_ce", "sgd", "relu", "ce", 20, [0.1, 0.5, 0, 0.001, 0]),
    ("adam_defaults", "adam", "tanh", "mse", 20, [0.01, 0, 0, 0, 0]),
    ("adam_wd_betas", "adam", "tanh", "ce", 20, [0.01, 0.8, 0.99, 1e-6, 0.1]),
]


def trajectory(kind, act, loss, steps, args, dtype):
    params = [p.clone().to(dtype).requires_grad_(True) for _, p in opt_init]
    x = opt_x.to(dtype)
    if kind == "sgd":
        lr, mom, damp, wd, nest = args
        opt = torch.optim.SGD(params, lr=lr, momentum=mom, dampening=damp,
                              weight_decay=wd, nesterov=bool(nest))
    else:
        lr, b1, b2, eps, wd = args
        opt = torch.optim.Adam(params, lr=lr, betas=(b1 or 0.9, b2 or 0.999),
                               eps=eps or 1e-8, weight_decay=wd)
    actf = torch.tanh if act == "tanh" else torch.relu
    out = []
    for _ in range(steps):
        h = actf(F.linear(x, params[0], params[1]))
        y = F.linear(h, params[2], params[3])
        if loss == "mse":
            L = F.mse_loss(y, opt_ymse.to(dtype))
        else:
            L = F.cross_entropy(y, torch.tensor(opt_ylab))
        opt.zero_grad()
        L.backward()
        opt.step()
        out.append(torch.cat([p.detach().reshape(-1) for p in params]))
    return out


def write_optim(path):
    lines = [MAGIC, "x " + tstr(opt_x), "ymse " + tstr(opt_ymse),
             "ylab %d %s" % (N, " ".join(str(v) for v in opt_ylab)),
             "init %d" % len(opt_init)]
    lines.extend("p %s %s" % (n, tstr(p)) for n, p in opt_init)
    for name, kind, act, loss, steps, args in runs:
        lines.append("run %s %s %s %s %d %d %s" % (name, kind, act, loss, steps, len(args),
                                                   " ".join(fmt(a) for a in args)))
        traj = trajectory(kind, act, loss, steps, args, torch.float32)
        ref = trajectory(kind, act, loss, steps, args, torch.float64)
        # How far float32 rounding alone moves the trajectory, as a fraction of
        # test_optim.c's tolerance 1e-6 + 1e-5 |p| (must stay well below 1).
        dev = [(a.double() - b).abs() for a, b in zip(traj, ref)]
        worst = max(float((d / (1e-6 + 1e-5 * b.abs())).max()) for d, b in zip(dev, ref))
        print("%-14s float32 vs float64: max abs %.2e, %.2f of the tolerance"
              % (name, max(float(d.max()) for d in dev), worst))
        for i, v in enumerate(traj):
            lines.append("step %d %s" % (i + 1, " ".join(fmt(a) for a in v.tolist())))
        lines.append("end")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    write_ops(os.path.join(HERE, "ops.txt"))
    print("ops.txt: %d cases" % len(cases))
    write_optim(os.path.join(HERE, "optim.txt"))
    print("optim.txt: %d runs" % len(runs))
