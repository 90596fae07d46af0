#!/usr/bin/python3
"""Golden data for nn.h's optimizers, gradient clipping and LR schedules.

Run with a Python that has torch (here /usr/bin/python3, torch 1.13):

    /usr/bin/python3 tests/golden/make_golden_optim.py

It writes optim_rules.txt next to itself; tests/test_optimizers.c reads it.

The problem.  The parameters of Sequential(Linear(3,4), ReLU, Linear(4,2))
(names 0.weight [4,3], 0.bias [4], 2.weight [2,4], 2.bias [2]; 26 floats,
concatenated in that order, element j) start from fixed random values.  No
loss is involved: at step t (1-based) every gradient element is set to

    g_j = p_j * c_j + s_j(t),   c_j = 0.5 + 0.25 (j mod 7),
                                s_j(t) = float32(0.5 sin(0.37 t + 0.61 j))

in float32 (p_j * c_j rounded, then the sum rounded) and the optimizer steps.
The C test computes the same numbers in the same order, so only the update
rule can differ.  Each case runs 30 steps.

File format (whitespace-separated tokens), first line the magic:

    nn.h-golden-optim 1
    init 26 <values>
    case <name> <steps> <k>      then k lines (after steps 1-5, 10, 15, ..., 30):
    s <t> <norm> <26 parameter values after step t>
                                 (norm: clip_grad_norm_'s return value, or 0)
    sched <name> <n> <has_metric> <has_momentum>
    metric <n values>            (if has_metric: the value passed at step i)
    lr <n values>                (the lr in use at step i = 0..n-1)
    mom <n values>               (if has_momentum)

Every case name is mirrored by an entry of the same name in the C test,
which builds the same optimizer or schedule with nn.h's API.
"""
import math
import os
import torch

MAGIC = "nn.h-golden-optim 1"
HERE = os.path.dirname(os.path.abspath(__file__))
STEPS = 30
SCHED_STEPS = 200

torch.set_default_dtype(torch.float32)
torch.set_num_threads(1)
torch.manual_seed(5)

NAMES = ["0.weight", "0.bias", "2.weight", "2.bias"]
SHAPES = [(4, 3), (4,), (2, 4), (2,)]
INIT = [torch.randn(s) * 0.8 for s in SHAPES]


def fmt(v):
    return "%.9g" % float(v)


def fmt17(v):
    return "%.12g" % float(v)


def make_params():
    return [torch.nn.Parameter(t.clone()) for t in INIT]


def set_grads(params, t):
    j = 0
    for p in params:
        flat = p.detach().reshape(-1)
        c = torch.tensor([0.5 + 0.25 * ((j + k) % 7) for k in range(flat.numel())], dtype=torch.float32)
        s = torch.tensor([0.5 * math.sin(0.37 * t + 0.61 * (j + k)) for k in range(flat.numel())],
                         dtype=torch.float32)
        p.grad = (flat * c + s).reshape(p.shape).clone()
        j += flat.numel()


O = torch.optim
# name -> (factory(params) -> optimizer, clip) ; clip = ("norm", max) or ("value", c) or None
CASES = [
    ("sgd", lambda p: O.SGD(p, lr=0.05), None),
    ("sgd_wd", lambda p: O.SGD(p, lr=0.05, weight_decay=0.1), None),
    ("sgd_momentum", lambda p: O.SGD(p, lr=0.05, momentum=0.9), None),
    ("sgd_dampening_wd", lambda p: O.SGD(p, lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.05), None),
    ("sgd_nesterov_wd", lambda p: O.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01), None),
    ("adagrad", lambda p: O.Adagrad(p, lr=0.1), None),
    ("adagrad_wd_decay", lambda p: O.Adagrad(p, lr=0.1, lr_decay=0.01, weight_decay=0.1,
                                             initial_accumulator_value=0.5, eps=1e-6), None),
    ("rmsprop", lambda p: O.RMSprop(p, lr=0.01), None),
    ("rmsprop_wd", lambda p: O.RMSprop(p, lr=0.01, weight_decay=0.1, alpha=0.9), None),
    ("rmsprop_centered_momentum", lambda p: O.RMSprop(p, lr=0.01, centered=True, momentum=0.8), None),
    ("rmsprop_momentum_wd", lambda p: O.RMSprop(p, lr=0.005, momentum=0.9, weight_decay=0.05), None),
    ("adadelta", lambda p: O.Adadelta(p), None),
    ("adadelta_wd", lambda p: O.Adadelta(p, lr=0.5, rho=0.8, weight_decay=0.1, eps=1e-5), None),
    ("adam", lambda p: O.Adam(p, lr=0.01), None),
    ("adam_wd", lambda p: O.Adam(p, lr=0.01, weight_decay=0.1, betas=(0.8, 0.99)), None),
    ("adam_amsgrad", lambda p: O.Adam(p, lr=0.01, amsgrad=True), None),
    ("adam_amsgrad_wd", lambda p: O.Adam(p, lr=0.02, amsgrad=True, weight_decay=0.05, eps=1e-6), None),
    ("adamw", lambda p: O.AdamW(p, lr=0.01), None),
    ("adamw_nowd", lambda p: O.AdamW(p, lr=0.01, weight_decay=0.0), None),
    ("adamw_wd_amsgrad", lambda p: O.AdamW(p, lr=0.01, weight_decay=0.3, amsgrad=True), None),
    ("adamax", lambda p: O.Adamax(p), None),
    ("adamax_wd", lambda p: O.Adamax(p, lr=0.01, weight_decay=0.1, betas=(0.85, 0.95)), None),
    ("nadam", lambda p: O.NAdam(p), None),
    ("nadam_wd", lambda p: O.NAdam(p, lr=0.01, weight_decay=0.1, momentum_decay=0.01), None),
    ("radam", lambda p: O.RAdam(p, lr=0.01), None),
    ("radam_wd", lambda p: O.RAdam(p, lr=0.01, weight_decay=0.1, betas=(0.9, 0.9)), None),
    ("sgd_clip_norm", lambda p: O.SGD(p, lr=0.05, momentum=0.9), ("norm", 0.5)),
    ("adam_clip_value", lambda p: O.Adam(p, lr=0.01), ("value", 0.3)),
    # groups: the first layer at a tenth of the rate; no decay on 1-D tensors
    ("sgd_groups", lambda p: O.SGD([
        {"params": [p[0]], "lr": 0.005, "weight_decay": 0.1},
        {"params": [p[1]], "lr": 0.005, "weight_decay": 0.0},
        {"params": [p[2]], "weight_decay": 0.1},
        {"params": [p[3]], "weight_decay": 0.0}], lr=0.05, momentum=0.9), None),
    ("adamw_groups", lambda p: O.AdamW([
        {"params": [p[0], p[1]], "lr": 0.002},
        {"params": [p[2]]},
        {"params": [p[3]], "weight_decay": 0.0}], lr=0.01, weight_decay=0.2), None),
    # frozen: the second layer is not given to the optimizer
    ("adam_frozen", lambda p: O.Adam([p[0], p[1]], lr=0.01), None),
]


def run_case(out, name, factory, clip):
    params = make_params()
    opt = factory(params)
    record = [t for t in range(1, STEPS + 1) if t <= 5 or t % 5 == 0]
    out.append("case %s %d %d" % (name, STEPS, len(record)))
    for t in range(1, STEPS + 1):
        set_grads(params, t)
        norm = 0.0
        if clip and clip[0] == "norm":
            norm = float(torch.nn.utils.clip_grad_norm_(params, clip[1]))
        elif clip:
            torch.nn.utils.clip_grad_value_(params, clip[1])
        opt.step()
        vals = torch.cat([p.detach().reshape(-1) for p in params])
        if t in record:
            out.append("s %d %s %s" % (t, fmt(norm), " ".join(fmt(v) for v in vals)))


S = torch.optim.lr_scheduler


def sgd():
    return O.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)


def adam():
    return O.Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.1)


def plateau_metrics(n):
    # improves, stalls (with small wiggles), improves again, stalls: float32 values
    m = []
    for i in range(n):
        if i < 40:
            v = 2.0 - 0.03 * i
        elif i < 90:
            v = 0.83 + 0.0005 * ((i * 7) % 5)
        elif i < 120:
            v = 0.83 - 0.01 * (i - 90)
        else:
            v = 0.5 + 0.002 * ((i * 3) % 4)
        m.append(float(torch.tensor(v, dtype=torch.float32)))
    return m


def accuracy_metrics(n):
    return [float(torch.tensor(min(0.9, 0.5 + 0.004 * i) - 0.001 * ((i * 5) % 3),
                               dtype=torch.float32)) for i in range(n)]


# name -> (optimizer factory, scheduler factory or None, formula or None, metrics or None)
SCHEDS = [
    ("constant", sgd, lambda o: S.ConstantLR(o, factor=0.5, total_iters=30), None, None),
    ("step", sgd, lambda o: S.StepLR(o, step_size=30, gamma=0.5), None, None),
    ("multistep", sgd, lambda o: S.MultiStepLR(o, milestones=[50, 120, 160], gamma=0.3), None, None),
    ("exponential", sgd, lambda o: S.ExponentialLR(o, gamma=0.98), None, None),
    ("polynomial", sgd, lambda o: S.PolynomialLR(o, total_iters=150, power=2.0), None, None),
    ("cosine", sgd, lambda o: S.CosineAnnealingLR(o, T_max=80, eta_min=0.001), None, None),
    ("warm_restarts", sgd, lambda o: S.CosineAnnealingWarmRestarts(o, T_0=10, T_mult=2, eta_min=0.001), None, None),
    ("warm_restarts_flat", sgd, lambda o: S.CosineAnnealingWarmRestarts(o, T_0=25), None, None),
    ("cyclic_triangular", sgd, lambda o: S.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=20,
                                                     step_size_down=30), None, None),
    ("cyclic_triangular2", sgd, lambda o: S.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=25,
                                                      mode="triangular2", base_momentum=0.85,
                                                      max_momentum=0.95), None, None),
    ("cyclic_exp_range", sgd, lambda o: S.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=15,
                                                    mode="exp_range", gamma=0.99), None, None),
    ("onecycle", sgd, lambda o: S.OneCycleLR(o, max_lr=0.5, total_steps=200), None, None),
    ("onecycle_linear_3phase", sgd, lambda o: S.OneCycleLR(o, max_lr=0.5, total_steps=200, pct_start=0.25,
                                                            anneal_strategy="linear", three_phase=True,
                                                            div_factor=10.0, final_div_factor=100.0),
     None, None),
    ("onecycle_adam", adam, lambda o: S.OneCycleLR(o, max_lr=0.01, epochs=4, steps_per_epoch=50,
                                                   base_momentum=0.8, max_momentum=0.9), None, None),
    ("warmup", sgd, lambda o: S.LinearLR(o, start_factor=0.1, total_iters=20), None, None),
    ("plateau", sgd, lambda o: S.ReduceLROnPlateau(o, factor=0.5, patience=5, threshold=1e-3,
                                                    cooldown=3, min_lr=0.002), None, plateau_metrics),
    ("plateau_max_abs", sgd, lambda o: S.ReduceLROnPlateau(o, mode="max", factor=0.3, patience=3,
                                                            threshold=0.01, threshold_mode="abs"),
     None, accuracy_metrics),
    # not in torch 1.13: the formula
    ("inverse_time", sgd, None, lambda t: 0.1 / (1 + 0.05 * t), None),
    ("inverse_time_staircase", sgd, None, lambda t: 0.1 / (1 + 0.5 * (t // 10)), None),
    ("warmup_cosine", sgd, None,
     lambda t: 0.1 * (0.25 + 0.75 * t / 10) if t < 10 else
     0.1 * (1 + math.cos(math.pi * (t - 10) / 190)) / 2, None),
    ("polynomial_end", sgd, None,
     lambda t: (0.1 - 0.01) * (1 - min(t, 120) / 120) ** 0.5 + 0.01, None),
]


def run_sched(out, name, make_opt, make_sched, formula, metrics):
    opt = make_opt()
    sched = make_sched(opt) if make_sched else None
    ms = metrics(SCHED_STEPS) if metrics else None
    has_mom = isinstance(sched, (S.CyclicLR, S.OneCycleLR))
    lrs, moms = [], []
    for i in range(SCHED_STEPS):
        g = opt.param_groups[0]
        lrs.append(formula(i) if formula else g["lr"])
        moms.append(g["betas"][0] if "betas" in g else g.get("momentum", 0.0))
        opt.step()
        if formula:
            continue
        if ms:
            sched.step(ms[i])
        else:
            sched.step()
    out.append("sched %s %d %d %d" % (name, SCHED_STEPS, 1 if ms else 0, 1 if has_mom else 0))
    if ms:
        out.append("metric " + " ".join(fmt(v) for v in ms))
    out.append("lr " + " ".join(fmt17(v) for v in lrs))
    if has_mom:
        out.append("mom " + " ".join(fmt17(v) for v in moms))


def main():
    import warnings
    warnings.simplefilter("ignore")
    out = [MAGIC]
    out.append("init 26 " + " ".join(fmt(v) for v in torch.cat([t.reshape(-1) for t in INIT])))
    for name, factory, clip in CASES:
        run_case(out, name, factory, clip)
    for name, mo, ms, f, met in SCHEDS:
        run_sched(out, name, mo, ms, f, met)
    path = os.path.join(HERE, "optim_rules.txt")
    with open(path, "w") as fh:
        fh.write("\n".join(out) + "\n")
    print("wrote %s: %d optimizer cases, %d schedules" % (path, len(CASES), len(SCHEDS)))


if __name__ == "__main__":
    main()
