#!/usr/bin/python3
"""Golden numbers for nn.h's metrics (>>train.metrics), made by scikit-learn.
Run with a Python that has sklearn (here /usr/bin/python3):

    /usr/bin/python3 tests/golden/make_golden_fit.py

It writes fit.txt next to itself (tests/test_fit.c reads it), in the format
of tests/golden.h: the magic line "nn.h-golden 1", then tensors
"t <ndim> <dims...> <values...>" in this order:

    labels [N]            true classes (integers written as floats)
    pred [N]              predicted classes
    per-class [3,C]       precision, recall, f1 (zero_division=0)
    averages [6]          macro p, r, f1, micro p, r, f1
    reg_pred [M,2]        regression predictions
    reg_target [M,2]      regression targets
    reg [3]               MAE, RMSE (of all values), R^2 (uniform_average)
"""
import os
import numpy as np
from sklearn.metrics import (precision_recall_fscore_support, mean_absolute_error,
                             mean_squared_error, r2_score)

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.RandomState(7)
N, C = 40, 4
labels = rng.randint(0, C, size=N)
pred = np.where(rng.rand(N) < 0.6, labels, rng.randint(0, C, size=N))
pred[pred == 3] = np.where(rng.rand((pred == 3).sum()) < 0.5, 3, 2)  # class 3 rarely predicted
p, r, f, _ = precision_recall_fscore_support(labels, pred, labels=range(C), zero_division=0)
avg = []
for a in ("macro", "micro"):
    pa, ra, fa, _ = precision_recall_fscore_support(labels, pred, labels=range(C), average=a,
                                                    zero_division=0)
    avg += [pa, ra, fa]
M = 12
target = np.round(rng.randn(M, 2) * 2.0, 4)
rpred = np.round(target + rng.randn(M, 2) * 0.5, 4)
mae = mean_absolute_error(target.ravel(), rpred.ravel())
rmse = np.sqrt(mean_squared_error(target.ravel(), rpred.ravel()))
r2 = r2_score(target, rpred)


def tens(a):
    a = np.asarray(a, dtype=np.float64)
    return "t %d %s %s" % (a.ndim, " ".join(str(d) for d in a.shape),
                           " ".join("%.9g" % v for v in a.ravel()))


lines = ["nn.h-golden 1", tens(labels), tens(pred), tens(np.stack([p, r, f])), tens(avg),
         tens(rpred), tens(target), tens([mae, rmse, r2])]
with open(os.path.join(HERE, "fit.txt"), "w") as fh:
    fh.write("\n".join(lines) + "\n")
