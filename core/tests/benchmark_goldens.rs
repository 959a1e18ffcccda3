//! The benchmarks' metrics against the official evaluator's own output (Moment-DETR's
//! `standalone_eval/eval.py`), digit for digit, on the cases `scripts/make_benchmark_goldens.py`
//! generated: every length range's mAP at each IoU threshold and their average, R1 at each,
//! highlight mAP and HIT@1 at each saliency level, and the brief block.

use std::path::PathBuf;

use investigator_core::benchmark::metrics::IOU_THRESHOLDS;
use investigator_core::benchmark::{evaluate, GroundTruth, Prediction};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/benchmark")
        .join(name)
}

fn rows(name: &str) -> Vec<Value> {
    std::fs::read_to_string(fixture(name))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn qid(row: &Value) -> String {
    row["qid"].to_string()
}

fn numbers(value: &Value) -> Vec<f64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

fn truth(case: &str) -> Vec<GroundTruth> {
    rows(&format!("{case}.truth.jsonl"))
        .iter()
        .map(|row| GroundTruth {
            qid: qid(row),
            duration: row["duration"].as_f64().unwrap(),
            windows: row["relevant_windows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| {
                    let w = numbers(w);
                    [w[0], w[1]]
                })
                .collect(),
            relevant_clip_ids: numbers(&row["relevant_clip_ids"])
                .iter()
                .map(|&c| c as usize)
                .collect(),
            saliency_scores: row["saliency_scores"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    let s = numbers(s);
                    [s[0] as u8, s[1] as u8, s[2] as u8]
                })
                .collect(),
        })
        .collect()
}

fn predictions(case: &str) -> Vec<Prediction> {
    rows(&format!("{case}.predictions.jsonl"))
        .iter()
        .map(|row| Prediction {
            qid: qid(row),
            windows: row["pred_relevant_windows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| {
                    let w = numbers(w);
                    [w[0], w[1], w[2]]
                })
                .collect(),
            saliency: numbers(&row["pred_saliency_scores"]),
        })
        .collect()
}

/// The evaluator's key for a threshold: Python's `str(float(f"{e:.2f}"))`, as Rust writes it.
fn key(threshold: f64) -> String {
    format!("{threshold}")
}

fn check(case: &str) {
    let official: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture(&format!("{case}.metrics.json"))).unwrap(),
    )
    .unwrap();
    let official = &official["metrics"];
    let ours = evaluate(&predictions(case), &truth(case)).unwrap();
    let mut compared = 0;
    for range in &ours.moments {
        let theirs = &official[range.range];
        for (t, &threshold) in IOU_THRESHOLDS.iter().enumerate() {
            let k = key(threshold);
            assert_eq!(
                range.map[t],
                theirs["MR-mAP"][&k].as_f64().unwrap(),
                "{case} {} mAP@{k}",
                range.range
            );
            assert_eq!(
                range.r1[t],
                theirs["MR-R1"][&k].as_f64().unwrap(),
                "{case} {} R1@{k}",
                range.range
            );
            compared += 2;
        }
        assert_eq!(
            range.map_average,
            theirs["MR-mAP"]["average"].as_f64().unwrap(),
            "{case} {} mAP",
            range.range
        );
        compared += 1;
    }
    for level in &ours.highlights {
        let theirs = &official[format!("HL-min-{}", level.level)];
        assert_eq!(
            level.map,
            theirs["HL-mAP"].as_f64().unwrap(),
            "{case} {} HL-mAP",
            level.level
        );
        assert_eq!(
            level.hit1,
            theirs["HL-Hit1"].as_f64().unwrap(),
            "{case} {} HL-Hit1",
            level.level
        );
        compared += 2;
    }
    let brief = official["brief"].as_object().unwrap();
    let ours_brief = ours.brief();
    let mut keys: Vec<&str> = ours_brief.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        brief.keys().map(String::as_str).collect::<Vec<_>>(),
        "{case}: the brief block's keys"
    );
    for (k, v) in &ours_brief {
        assert_eq!(*v, brief[k].as_f64().unwrap(), "{case} brief {k}");
    }
    assert_eq!(compared, 4 * 21 + 6);
}

#[test]
fn random_windows_and_saliency_score_as_the_official_evaluator_says() {
    check("random");
}

#[test]
fn ties_duplicates_and_empty_windows_score_as_the_official_evaluator_says() {
    check("ties");
}
