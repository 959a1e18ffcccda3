#!/usr/bin/env python3
"""Goldens for the evaluation metrics, computed with scikit-learn.

Reads the cosine scores `clip-investigator scores --json` printed for the sample video with the
tiny CLIP fixture (core/tests/fixtures/evaluation/scores.json) and the labels in
core/tests/fixtures/evaluation/labels.csv, and writes cases.json beside them: for each case the
exact scores and spans evaluated, and what scikit-learn says (average_precision_score,
roc_auc_score, and the best F1 over precision_recall_curve's thresholds, the highest threshold
among equal F1s). core/tests/sklearn_goldens.rs holds our metrics against them to 1e-9.

The cases cover a prompt as labelled, the same scores rounded to 0.01 (many ties), a prompt with
one positive frame, a prompt labelled on every frame (all positive: ROC AUC undefined) and one
whose only segment is ignored (all negative: every metric undefined).

Run by hand (CI does not need Python):

    python3 -m venv /tmp/skvenv && /tmp/skvenv/bin/pip install scikit-learn numpy
    /tmp/skvenv/bin/python scripts/make_eval_goldens.py
"""

import csv
import json
import pathlib

import numpy as np
import sklearn
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

HERE = pathlib.Path(__file__).resolve().parent.parent / "core/tests/fixtures/evaluation"


def read_labels(path):
    spans = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            spans.setdefault(row["prompt"], []).append((int(row["start_frame"]), int(row["end_frame"])))
    return spans


def inside(spans, n):
    return any(s <= n <= e for s, e in spans)


def metrics(scores, positive, ignored):
    frames = [n for n, s in enumerate(scores) if s is not None and not inside(ignored, n)]
    y_true = np.array([1 if inside(positive, n) else 0 for n in frames])
    y_score = np.array([scores[n] for n in frames], dtype=np.float64)
    positives, negatives = int(y_true.sum()), int(len(y_true) - y_true.sum())
    out = {"positives": positives, "negatives": negatives, "ap": None, "roc_auc": None, "best_f1": None}
    if positives > 0:
        out["ap"] = float(average_precision_score(y_true, y_score))
        precision, recall, thresholds = precision_recall_curve(y_true, y_score)
        # precision/recall have one more point than thresholds (recall 0, precision 1 at the end).
        p, r = precision[:-1], recall[:-1]
        with np.errstate(divide="ignore", invalid="ignore"):
            f1 = np.where(p + r > 0, 2 * p * r / (p + r), 0.0)
        # thresholds ascend: the last of the maxima is the highest threshold among equal F1s.
        best = len(f1) - 1 - int(np.argmax(f1[::-1]))
        out["best_f1"] = {
            "threshold": float(thresholds[best]),
            "precision": float(p[best]),
            "recall": float(r[best]),
            "f1": float(f1[best]),
        }
    if positives > 0 and negatives > 0:
        out["roc_auc"] = float(roc_auc_score(y_true, y_score))
    return out


def main():
    answer = json.loads((HERE / "scores.json").read_text())
    scores = answer["scores"]
    labels = read_labels(HERE / "labels.csv")
    ignored = labels.get("ignore", [])
    rounded = [None if s is None else round(s, 2) for s in scores["wall"]]
    cases = [
        ("wall", scores["wall"], labels["wall"]),
        ("wall, rounded to 0.01 (ties)", rounded, labels["wall"]),
        ("tile wall (one positive frame)", scores["tile wall"], labels["tile wall"]),
        ("a kitchen (every frame positive)", scores["a kitchen"], labels["a kitchen"]),
        ("wall (its only segment ignored)", scores["wall"], [(405, 410)]),
    ]
    out = {
        "sklearn": sklearn.__version__,
        "source": "scripts/make_eval_goldens.py",
        "cases": [
            {
                "name": name,
                "scores": case_scores,
                "positive_spans": spans,
                "ignored_spans": ignored,
                "expected": metrics(case_scores, spans, ignored),
            }
            for name, case_scores, spans in cases
        ],
    }
    (HERE / "cases.json").write_text(json.dumps(out, indent=1) + "\n")
    for case in out["cases"]:
        print(case["name"], json.dumps(case["expected"]))


if __name__ == "__main__":
    main()
