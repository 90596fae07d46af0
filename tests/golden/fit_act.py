"""Fits behind two of nn.h's activation kernels (>>kernels), as discrete
minimax problems (linear programs over Chebyshev points, values from mpmath
at 40 digits), printed as nn.h writes the coefficients:
  1. nn__vexp_r: e^r - 1 = r + r^2 Q(r) on |r| <= ln2/2, Q of degree 4,
     minimizing the relative error of e^r - 1 (so expm1 stays accurate
     near 0 too).  Coefficients highest degree first, as floats.
  2. nn__vgelu_grad: GELU'(x) = Phi(x) + x phi(x) = 1/2 + x P(x^2) / Q(x^2)
     on [-6, 6], P and Q of degree 5, Q(0) = 1, minimizing the absolute
     error (rational: Loeb's iteration of linearized programs, keeping
     Q >= 0.1).  Coefficients lowest degree first.
  3. nn__vlog1p01: log(1 + u) = u + u^2 P(u) on 0 <= u <= 1, P of degree 7,
     minimizing the relative error of log(1 + u), with the coefficients
     rounded to floats: the two lowest (those the error is most sensitive
     to) searched over the floats near the exact fit's, each of the rest
     rounded in turn and the higher ones refit.  Coefficients highest
     degree first, as floats.
Run: /usr/bin/python3 tests/golden/fit_act.py (its output: tests/golden/fit_act.txt)"""
import mpmath as mp
import numpy as np
from scipy.optimize import linprog

mp.mp.dps = 40


def minimax(a, f, w, extra_ub=None, extra_b=None):
    """min t s.t. |w (a c - f)| <= t (and extra_ub c <= extra_b); scaled, as
    the solver's tolerances are absolute.  Returns c and t."""
    scale = 1.0 / np.max(np.abs(w * f))
    n, nv = a.shape[0], a.shape[1] + 1
    cost = np.zeros(nv)
    cost[-1] = 1.0
    lhs = scale * w[:, None] * a
    rhs = scale * w * f
    a_ub = [np.hstack([lhs, -np.ones((n, 1))]), np.hstack([-lhs, -np.ones((n, 1))])]
    b_ub = [rhs, -rhs]
    if extra_ub is not None:
        a_ub.append(np.hstack([extra_ub, np.zeros((extra_ub.shape[0], 1))]))
        b_ub.append(extra_b)
    res = linprog(cost, A_ub=np.vstack(a_ub), b_ub=np.concatenate(b_ub),
                  bounds=[(None, None)] * nv, method="highs")
    return (None, None) if res.x is None else (res.x[:-1], res.x[-1] / scale)


def fit_exp():
    h = float(mp.log(2)) / 2
    rs = np.cos(np.linspace(0, np.pi, 3000)) * h
    rs = rs[np.abs(rs) > 1e-9]
    em1 = np.array([float(mp.expm1(mp.mpf(r))) for r in rs])
    q = np.array([float((mp.expm1(mp.mpf(r)) - r) / (r * r)) for r in rs])
    a = np.vstack([rs**k for k in range(5)]).T
    c, err = minimax(a, q, rs * rs / np.abs(em1))  # Q's error as a relative error of e^r - 1
    print("exp: e^r - 1 = r + r^2 Q(r), max relative error %.3g" % err)
    for v in reversed(c):
        print("  %.9e" % np.float32(v))


def fit_gelu_grad(m=5, n=5, top=6.0, iters=15):
    xs = np.cos(np.linspace(0, np.pi, 3000)) * top / 2 + top / 2
    xs = xs[xs > 1e-6]
    f = np.array([float(0.5 * mp.erf(mp.mpf(x) / mp.sqrt(2))
                        + mp.mpf(x) * mp.exp(-mp.mpf(x)**2 / 2) / mp.sqrt(2 * mp.pi)) for x in xs])
    t = xs * xs / (top * top)  # scaled to [0, 1] for the solver
    ap = np.vstack([xs * t**k for k in range(m + 1)]).T
    aq = np.vstack([t**k for k in range(1, n + 1)]).T
    qprev, best = np.ones_like(xs), None
    for _ in range(iters):  # min |x P - f Q| / Qprev, linear in P and Q
        a = np.hstack([ap, -f[:, None] * aq])
        pos = np.hstack([np.zeros((len(xs), m + 1)), -aq])  # Q >= 0.1
        c, _ = minimax(a, f, 1.0 / qprev, pos, np.full(len(xs), 0.9))
        if c is None:
            break
        p, q = c[:m + 1], c[m + 1:]
        qv = 1.0 + aq @ q
        err = np.max(np.abs(ap @ p / qv - f))
        if best is None or err < best[2]:
            best = (p, q, err)
        qprev = qv
    p, q, err = best
    s = top * top
    print("GELU': 1/2 + x P(x^2) / Q(x^2) on [-%g, %g], max abs error %.3g" % (top, top, err))
    print("  P", " ".join("%.10e" % (p[k] / s**k) for k in range(m + 1)))
    print("  Q", " ".join("%.10e" % v for v in [1.0] + [q[k - 1] / s**k for k in range(1, n + 1)]))


def fit_log1p(d=7):
    us = (np.cos(np.linspace(0, np.pi, 2000)) + 1) / 2
    us = us[us > 1e-9]
    ly = np.array([float(mp.log1p(mp.mpf(u))) for u in us])
    q = np.array([float((mp.log1p(mp.mpf(u)) - mp.mpf(u)) / mp.mpf(u)**2) for u in us])
    w = us * us / ly  # P's error as a relative error of log(1 + u)

    def rest(fixed):  # minimax fit of the coefficients above the fixed ones
        a = np.vstack([us**j for j in range(len(fixed), d + 1)]).T
        return minimax(a, q - sum(c * us**j for j, c in enumerate(fixed)), w)[0]

    def rounded(fixed):  # round the rest in turn, refitting the higher ones
        while len(fixed) <= d:
            fixed = fixed + [float(np.float32(rest(fixed)[0]))]
        return np.array(fixed)

    best = None
    c0 = np.float32(rest([])[0])
    for i in range(-12, 13):
        v0 = float(c0 + np.float32(i) * np.spacing(c0))
        c1 = np.float32(rest([v0])[0])
        for j in range(-6, 7):
            cf = rounded([v0, float(c1 + np.float32(j) * np.spacing(c1))])
            err = np.max(np.abs(us + us * us * sum(c * us**k for k, c in enumerate(cf)) - ly) / ly)
            if best is None or err < best[0]:
                best = (err, cf)
    err, cf = best
    print("log1p: log(1 + u) = u + u^2 P(u) on [0, 1], P of degree %d, max relative error %.3g" % (d, err))
    for v in reversed(cf):
        print("  %.9e" % np.float32(v))


fit_exp()
fit_gelu_grad()
fit_log1p()
