"""What the side-by-side benchmark drivers share (conv.py, norm.py, attn.py,
rnn.py, act.py): the environment nn.h runs in, running the nn.h binary and
reading its lines, timing a PyTorch forward and forward+backward, and the
alternating rounds with their table of medians and ratios.

A C benchmark is called as `binary threads reps [label substring]` and
prints one line per case: `label value...` (milliseconds).
"""
import threads  # first, before torch: caps OpenBLAS's threads
import argparse
import os
import statistics
import subprocess
import time

import torch


def nn_env(passive=False):
    """nn.h's environment.  OMP_WAIT_POLICY=passive is PyTorch's setting (its
    spinning threads otherwise fight OpenBLAS's); nn.h runs with libgomp's
    default, each side at its best, unless passive is asked: on a machine
    other processes load, spinning team threads lose whole time slices at
    every region's end, and passive waiting is then the fair comparison."""
    env = threads.child_env()
    if not passive:
        env.pop("OMP_WAIT_POLICY", None)
    return env


def nn_run(binary, nthreads, reps, only="", passive=False):
    """Runs the nn.h binary once; returns {label: (float, ...)} of its lines."""
    args = [binary, str(nthreads), str(reps)] + ([only] if only else [])
    out = subprocess.run(args, capture_output=True, text=True, env=nn_env(passive), check=True).stdout
    res = {}
    for line in out.splitlines():
        f = line.split()
        res[f[0]] = tuple(float(v) for v in f[1:])
    return res


def time_fwd_fb(fn, inputs, params, reps, grads=None, warmup=2):
    """Median milliseconds of fn(*inputs) under no_grad, and of
    fn(*inputs').sum().backward() where inputs' are clones of the inputs
    flagged in grads (default: every floating input) that require gradients.
    The parameters' gradients are cleared before each backward."""
    if grads is None:
        grads = [t.is_floating_point() for t in inputs]
    tf, tb = [], []
    for r in range(-warmup, reps):
        with torch.no_grad():
            t0 = time.perf_counter()
            fn(*inputs)
            t1 = time.perf_counter()
        for p in params:
            p.grad = None
        xs = [t.clone().requires_grad_(True) if g else t for t, g in zip(inputs, grads)]
        t2 = time.perf_counter()
        fn(*xs).sum().backward()
        t3 = time.perf_counter()
        if r >= 0:
            tf.append(t1 - t0)
            tb.append(t3 - t2)
    return 1e3 * statistics.median(tf), 1e3 * statistics.median(tb)


def parse_args(binary_doc, reps, rounds):
    """The drivers' common options."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=reps)
    ap.add_argument("--rounds", type=int, default=rounds)
    ap.add_argument("--only", default="", help="cases whose label holds this")
    ap.add_argument("--nn", help="path of the built %s binary" % binary_doc)
    ap.add_argument("--nn-passive", action="store_true", help="run nn.h with OMP_WAIT_POLICY=passive too")
    a = ap.parse_args()
    threads.check(a.threads)
    torch.set_num_threads(a.threads)
    return a


def rounds(a, torch_round):
    """Alternates PyTorch (torch_round(reps, only) -> {label: values}) and
    the nn.h binary for a.rounds rounds; returns both lists of results."""
    tr, nr = [], []
    for _ in range(a.rounds):
        tr.append(torch_round(a.reps, a.only))
        nr.append(nn_run(a.nn, a.threads, a.reps, a.only, a.nn_passive))
    return tr, nr


def median_of(results, label, i):
    return statistics.median(r[label][i] for r in results)


def fwd_fb_main(binary_doc, labels, torch_round, reps=20, rounds_=5, what="case", header=""):
    """main() of a driver whose cases each give (forward ms, f+b ms): without
    --nn prints PyTorch's figures in the C program's format; with it, the
    table of medians over rounds and PyTorch time / nn.h time."""
    a = parse_args(binary_doc, reps, rounds_)
    if not a.nn:
        for label, (f, b) in torch_round(a.reps, a.only).items():
            print("%s %.3f %.3f" % (label, f, b))
        return
    tr, nr = rounds(a, torch_round)
    print("threads %d%s, median ms over %d rounds (each a median of %d reps); ratio = PyTorch / nn.h%s"
          % (a.threads, header, a.rounds, a.reps, "; nn.h waits passively" if a.nn_passive else ""))
    w = max([len(what)] + [len(l) for l in labels])
    print("%-*s %9s %9s %6s | %9s %9s %6s" % (w, what, "torch fwd", "nn fwd", "ratio",
                                             "torch f+b", "nn f+b", "ratio"))
    for label in labels:
        if label not in tr[0] or label not in nr[0]:
            continue
        tf, tb = median_of(tr, label, 0), median_of(tr, label, 1)
        nf, nb = median_of(nr, label, 0), median_of(nr, label, 1)
        print("%-*s %9.2f %9.2f %6.2f | %9.2f %9.2f %6.2f" % (w, label, tf, nf, tf / nf, tb, nb, tb / nb))
