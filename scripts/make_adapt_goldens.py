#!/usr/bin/env python3
"""Goldens for adapted prompts (engine/src/adapt/): the probe's optimum from scikit-learn and
SciPy, and Tip-Adapter's scores from its formula, on the same rows.

Writes engine/tests/fixtures/adapt/goldens.json (read by the engine's unit tests). The rows are
L2-normalised 64-dimensional vectors shaped like CLIP image embeddings (a large shared
direction, one direction per scene, a little noise per frame) in time order: scenes of 20 to 80
frames, some of them positive for a concept that moves their vectors slightly along its own
direction. The "text embedding" t is that concept direction mixed with the shared one.

Cases:

- `plain`: the probe from zero (w0 = 0). scikit-learn's
  `LogisticRegression(C=1/lambda, class_weight="balanced", solver="lbfgs")`, run to a tight
  tolerance so that what is compared is the optimum, not where a solver stopped. It minimises
  C * sum_i c_i logloss_i + |w|^2 / 2 with c_i = n / (2 n_class(i)), which has the same optimum as
  our sum_i c_i logloss_i + lambda/2 |w|^2. SciPy's L-BFGS-B on our objective is written beside it
  as a check of the two.
- `anchored`: the probe held near the text, w0 = s * t (s the logit scale): SciPy's L-BFGS-B on
  sum_i c_i logloss_i + lambda/2 |w - w0|^2 (the bias unpenalised), to a tight tolerance. Also the
  bias fitted alone with w = w0 (`b0`), by SciPy's scalar minimiser.
- `tip`: Tip-Adapter's score for query rows, keys = the training rows, values their labels:
  score(x) = s * x.t + b0 + a * sum_k v_k exp(-beta (1 - x.k)), with v_k = +1/n_pos for a
  positive key and -1/n_neg for a negative one (b0: the bias fitted alone on the keys' rows).

Run by hand (CI does not need Python):

    python3 -m venv /tmp/skvenv && /tmp/skvenv/bin/pip install scikit-learn scipy numpy
    /tmp/skvenv/bin/python scripts/make_adapt_goldens.py
"""

import json
import pathlib

import numpy as np
import scipy
import sklearn
from scipy.optimize import minimize, minimize_scalar
from sklearn.linear_model import LogisticRegression

OUT = pathlib.Path(__file__).resolve().parent.parent / "engine/tests/fixtures/adapt/goldens.json"
DIM = 64
FRAMES = 600


def unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def rows(rng):
    shared = unit(rng.normal(size=DIM))
    concept = unit(rng.normal(size=DIM))
    x, y = [], []
    while len(x) < FRAMES:
        length = int(rng.integers(20, 81))
        positive = rng.random() < 0.35
        scene = rng.normal(size=DIM) / np.sqrt(DIM)
        for _ in range(length):
            v = 0.8 * shared + 0.6 * scene + 0.15 * rng.normal(size=DIM) / np.sqrt(DIM)
            if positive:
                v = v + 0.2 * concept
            x.append(unit(v))
            y.append(positive)
    x, y = np.array(x[:FRAMES]), np.array(y[:FRAMES])
    text = unit(0.4 * concept + 0.5 * shared + 0.1 * rng.normal(size=DIM) / np.sqrt(DIM))
    # The stored rows are float32 (as the caches hold them); every reference works on exactly
    # those values.
    return x.astype(np.float32), y, text.astype(np.float32)


def class_weights(y):
    n, positives = len(y), int(y.sum())
    return np.where(y, n / (2 * positives), n / (2 * (n - positives)))


def objective(x, y, c, lam, w0):
    def f(theta):
        w, b = theta[:-1], theta[-1]
        z = x @ w + b
        # logloss = softplus(z) - y z, written to stay finite for large |z|.
        loss = np.logaddexp(0.0, z) - y * z
        sigma = 0.5 * (1.0 + np.tanh(0.5 * z))
        r = c * (sigma - y)
        d = w - w0
        value = float(np.sum(c * loss) + 0.5 * lam * d @ d)
        grad = np.concatenate([x.T @ r + lam * d, [r.sum()]])
        return value, grad

    return f


def scipy_optimum(x, y, lam, w0):
    x64 = x.astype(np.float64)
    c = class_weights(y)
    start = np.concatenate([w0, [0.0]])
    result = minimize(
        objective(x64, y.astype(np.float64), c, lam, w0),
        start,
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 100000, "maxfun": 100000, "ftol": 1e-15, "gtol": 1e-11},
    )
    return result.x[:-1], float(result.x[-1]), float(result.fun)


def bias_alone(x, y, w0):
    c = class_weights(y)
    z0 = x.astype(np.float64) @ w0

    def f(b):
        z = z0 + b
        return float(np.sum(c * (np.logaddexp(0.0, z) - y * z)))

    return float(minimize_scalar(f, bracket=(-50.0, 50.0), tol=1e-14).x)


def main():
    rng = np.random.default_rng(35)
    x, y, text = rows(rng)
    x64 = x.astype(np.float64)
    cases = []
    for lam in (0.5, 5.0, 50.0):
        model = LogisticRegression(
            C=1.0 / lam, class_weight="balanced", solver="lbfgs", tol=1e-12, max_iter=100000
        )
        model.fit(x64, y)
        w_check, b_check, _ = scipy_optimum(x, y, lam, np.zeros(DIM))
        cases.append(
            {
                "name": f"plain, lambda {lam}",
                "from": "zero",
                "lambda": lam,
                "scale": 0.0,
                "weight": model.coef_[0].tolist(),
                "bias": float(model.intercept_[0]),
                "scipy_weight": w_check.tolist(),
                "scipy_bias": b_check,
            }
        )
    for lam, scale in ((1.0, 14.3), (10.0, 100.0), (100.0, 100.0)):
        w0 = scale * text.astype(np.float64)
        w, b, value = scipy_optimum(x, y, lam, w0)
        cases.append(
            {
                "name": f"anchored at {scale} * text, lambda {lam}",
                "from": "text",
                "lambda": lam,
                "scale": scale,
                "weight": w.tolist(),
                "bias": b,
                "objective": value,
                "b0": bias_alone(x, y, w0),
            }
        )
    # Tip-Adapter: keys are the first 400 rows, queries the other 200.
    keys, values_y, queries = x64[:400], y[:400], x64[400:]
    positives = int(values_y.sum())
    values = np.where(values_y, 1.0 / positives, -1.0 / (400 - positives))
    scale = 100.0
    b0 = bias_alone(x[:400], values_y, scale * text.astype(np.float64))
    tips = []
    for beta, a in ((1.0, 1.0), (5.5, 3.0), (20.0, 10.0)):
        affinity = np.exp(-beta * (1.0 - queries @ keys.T))
        score = scale * queries @ text.astype(np.float64) + b0 + a * affinity @ values
        tips.append({"beta": beta, "a": a, "scores": score.tolist()})
    out = {
        "sklearn": sklearn.__version__,
        "scipy": scipy.__version__,
        "numpy": np.__version__,
        "source": "scripts/make_adapt_goldens.py",
        "dim": DIM,
        # Each float32 as its shortest text, which reads back as the same float32.
        "rows": [[float(str(v)) for v in row] for row in x],
        "labels": [bool(v) for v in y],
        "text": [float(str(v)) for v in text],
        "cases": cases,
        "tip": {"keys": 400, "scale": scale, "b0": b0, "cases": tips},
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out) + "\n")
    for case in cases:
        print(case["name"], "bias", case["bias"], "|w|", np.linalg.norm(case["weight"]))
        if "scipy_weight" in case:
            gap = np.linalg.norm(np.array(case["weight"]) - case["scipy_weight"]) / np.linalg.norm(case["weight"])
            print("  sklearn vs scipy, relative:", gap)
    print("positives", int(y.sum()), "of", len(y))


if __name__ == "__main__":
    main()
