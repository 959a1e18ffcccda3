#!/usr/bin/env python3
"""Goldens for the moment-retrieval benchmarks' official metrics.

Runs the official evaluator (`standalone_eval/eval.py` of the Moment-DETR repository,
jayleicn/moment_detr, the one QVHighlights and Lighthouse's converted Charades-STA, ActivityNet
Captions and TACoS are scored with) on annotations and predictions generated here, and writes
them with its output into core/tests/fixtures/benchmark/: per case `NAME.truth.jsonl` (the
annotation layout: qid, query, vid, duration, relevant_windows, relevant_clip_ids,
saliency_scores), `NAME.predictions.jsonl` (the submission layout: qid, pred_relevant_windows
[[start, end, score]…], pred_saliency_scores) and `NAME.metrics.json` (the evaluator's answer).
core/tests/benchmark_goldens.rs holds core::benchmark to them, digit for digit.

Cases: `random` (400 queries: windows of every length range, 1–4 per query, up to 14
predicted windows of which the evaluator counts 10, saliency on clips of videos whose length is
not a multiple of 2 s, predicted saliency longer or shorter than the clips) and `ties` (250
queries on a coarse grid: equal scores, equal IoUs, duplicate and zero-length windows,
all-negative and all-positive clip labels).

The evaluator's code is not copied here: it is imported from a checkout given on the command
line. Run by hand (CI does not need Python):

    git clone https://github.com/jayleicn/moment_detr /tmp/moment_detr
    python3 -m venv /tmp/skvenv && /tmp/skvenv/bin/pip install numpy scikit-learn
    /tmp/skvenv/bin/python scripts/make_benchmark_goldens.py /tmp/moment_detr
"""

import json
import pathlib
import random
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent.parent / "core/tests/fixtures/benchmark"


def window(rng, duration, grid):
    """A window inside the video, its length from one of the evaluator's ranges."""
    length = rng.choice([rng.uniform(0.5, 10), rng.uniform(10.01, 30), rng.uniform(30.01, 150)])
    length = min(length, duration)
    start = rng.uniform(0, duration - length)
    if grid:
        start, length = round(start / grid) * grid, max(0, round(length / grid) * grid)
    return [round(start, 3), round(min(start + length, duration), 3)]


def make_case(rng, queries, grid):
    truth, predictions = [], []
    for q in range(queries):
        duration = rng.choice([150, 150, 149, 121.5, 60, 33])
        windows = [window(rng, duration, grid) for _ in range(rng.randint(1, 4))]
        if grid and rng.random() < 0.1:
            windows.append(list(windows[0]))  # a duplicate ground-truth window
        clips = int(duration / 2)
        relevant = sorted(rng.sample(range(clips), rng.randint(1, min(clips, 20))))
        if grid and rng.random() < 0.1:
            relevant = list(range(clips))  # every clip relevant
        saliency = [[rng.randint(0, 4) for _ in range(3)] for _ in relevant]
        if grid and rng.random() < 0.1:
            saliency = [[rng.randint(0, 1) for _ in range(3)] for _ in relevant]  # nothing Fair
        qid = 1000 + q
        truth.append({
            "qid": qid,
            "query": f"query {qid}",
            "vid": f"video{q % 37}_{duration}",
            "duration": duration,
            "relevant_windows": windows,
            "relevant_clip_ids": relevant,
            "saliency_scores": saliency,
        })
        predicted = []
        for _ in range(rng.randint(1, 14)):
            if rng.random() < 0.4:
                # Near a true window.
                s, e = rng.choice(windows)
                jitter = grid or 0.7
                s = max(0, s + rng.choice([-2, -1, 0, 0, 1]) * jitter)
                e = min(duration, max(s, e + rng.choice([-1, 0, 0, 1, 2]) * jitter))
                w = [round(s, 3), round(e, 3)]
            else:
                w = window(rng, duration, grid)
            if grid and rng.random() < 0.05:
                w = [w[0], w[0]]  # zero length
            score = round(rng.random(), 1 if grid else 4)
            predicted.append([w[0], w[1], score])
        predicted.sort(key=lambda x: -x[2])
        scores_len = clips + rng.choice([0, 0, 0, -3, 2])
        pred_saliency = [round(rng.random(), 1 if grid else 4) for _ in range(max(1, scores_len))]
        predictions.append({
            "qid": qid,
            "query": f"query {qid}",
            "vid": truth[-1]["vid"],
            "pred_relevant_windows": predicted,
            "pred_saliency_scores": pred_saliency,
        })
    return truth, predictions


def main():
    checkout = pathlib.Path(sys.argv[1]).resolve()
    sys.path.insert(0, str(checkout))
    from standalone_eval.eval import eval_submission  # noqa: E402  (the official evaluator)

    commit = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    HERE.mkdir(parents=True, exist_ok=True)
    rng = random.Random(38)
    for name, queries, grid in [("random", 400, 0), ("ties", 250, 2)]:
        truth, predictions = make_case(rng, queries, grid)
        metrics = eval_submission(predictions, truth, verbose=False)
        for suffix, rows in [("truth", truth), ("predictions", predictions)]:
            with open(HERE / f"{name}.{suffix}.jsonl", "w") as f:
                for row in rows:
                    f.write(json.dumps(row) + "\n")
        metrics = {"evaluator": f"jayleicn/moment_detr {commit} standalone_eval/eval.py",
                   "metrics": metrics}
        (HERE / f"{name}.metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
        print(name, json.dumps(metrics["metrics"]["brief"]))


if __name__ == "__main__":
    main()
