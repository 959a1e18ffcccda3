#!/usr/bin/env python3
"""The `adapt` bench's peer (server/benches/adapt.rs): scikit-learn's LogisticRegressionCV on
the rows the bench wrote (rows.npy, truth.npy, folds.npy in the folder given), with the same
blocked folds, the same 4 penalties (C = 1 / (gamma * training rows), gamma in 1e-1 .. 1e-4),
lbfgs and balanced class weights, refitting on every row at the best C. It is not nested: it
fits 5 x 4 + 1 models where the bench's adapter fits 15 x 4 + 1. Prints one table row.

    python3 -m venv /tmp/skvenv && /tmp/skvenv/bin/pip install scikit-learn numpy
    ADAPT_BENCH_PYTHON=/tmp/skvenv/bin/python cargo bench -p server --bench adapt
"""

import sys
import time

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import average_precision_score
from sklearn.model_selection import PredefinedSplit

folder = sys.argv[1]
x = np.load(f"{folder}/rows.npy")
y = np.load(f"{folder}/truth.npy").astype(int)
folds = np.load(f"{folder}/folds.npy").astype(int)
n_train = len(y) * (folds.max()) / (folds.max() + 1)
cs = [1.0 / (g * n_train) for g in (1e-1, 1e-2, 1e-3, 1e-4)]
times = []
for _ in range(3):
    start = time.perf_counter()
    model = LogisticRegressionCV(
        Cs=cs, cv=PredefinedSplit(folds), class_weight="balanced", solver="lbfgs",
        scoring="neg_log_loss", max_iter=1000, n_jobs=2, refit=True,
    ).fit(x, y)
    times.append(time.perf_counter() - start)
times.sort()
# The mean out-of-fold AP at the chosen C, from the path's own fold scores is not kept by
# LogisticRegressionCV: its in-sample AP is printed instead, for reference only.
ap = average_precision_score(y, model.decision_function(x))
print(
    f"| scikit-learn {sklearn.__version__} `LogisticRegressionCV` (5 blocked folds x 4 C, not nested, lbfgs, 2 jobs) "
    f"| {times[1]:.2f} ({times[0]:.2f}–{times[2]:.2f}) | 5 x 4 + 1 | — | {ap:.3f} (in sample) |"
)
