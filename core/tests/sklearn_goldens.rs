//! Our metrics equal scikit-learn's on the same scores: `scripts/make_eval_goldens.py` ran
//! `average_precision_score`, `roc_auc_score` and `precision_recall_curve` on the cosine scores
//! of the sample video (tiny CLIP fixture) against the labels beside them, including ties, one
//! positive frame, every frame positive and no positive frame; the cases are committed.

use investigator_core::evaluation::{evaluated_frames, ranking};
use investigator_core::labels::{Labels, Segment, IGNORE};
use serde_json::Value;

const CASES: &str = include_str!("fixtures/evaluation/cases.json");

fn spans(value: &Value) -> Vec<(u64, u64)> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s[0].as_u64().unwrap(), s[1].as_u64().unwrap()))
        .collect()
}

fn close(ours: Option<f64>, theirs: &Value, what: &str) {
    match (ours, theirs.as_f64()) {
        (Some(a), Some(b)) => assert!((a - b).abs() <= 1e-9, "{what}: ours {a}, scikit-learn {b}"),
        (None, None) => {}
        (a, _) => panic!("{what}: ours {a:?}, scikit-learn {theirs}"),
    }
}

#[test]
fn metrics_equal_scikit_learns_to_1e_9() {
    let cases: Value = serde_json::from_str(CASES).unwrap();
    let cases = cases["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let mut labels = Labels::default();
        for (start, end) in spans(&case["positive_spans"]) {
            labels.segments.push(Segment {
                prompt: name.into(),
                start,
                end,
            });
        }
        for (start, end) in spans(&case["ignored_spans"]) {
            labels.segments.push(Segment {
                prompt: IGNORE.into(),
                start,
                end,
            });
        }
        // The scores as the engine holds them (f32, as `scores --json` printed them).
        let values: Vec<Option<f32>> = case["scores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().map(|v| v as f32))
            .collect();
        let frames: Vec<u64> = (0..values.len() as u64).collect();
        let scores: Vec<f32> = values.iter().map(|v| v.unwrap_or(f32::NAN)).collect();
        let e = evaluated_frames(&frames, &scores, &labels, name);
        let expected = &case["expected"];
        let positives = e.truth.iter().filter(|&&t| t).count() as u64;
        assert_eq!(positives, expected["positives"].as_u64().unwrap(), "{name}");
        assert_eq!(
            e.truth.len() as u64 - positives,
            expected["negatives"].as_u64().unwrap(),
            "{name}"
        );
        close(
            ranking::average_precision(&e.truth, &e.scores),
            &expected["ap"],
            name,
        );
        close(
            ranking::roc_auc(&e.truth, &e.scores),
            &expected["roc_auc"],
            name,
        );
        let best = ranking::best_f1(&e.truth, &e.scores);
        match (best, &expected["best_f1"]) {
            (None, Value::Null) => {}
            (Some(best), theirs) => {
                // The same score: scikit-learn read the decimal JSON prints, we the f32.
                let threshold = theirs["threshold"].as_f64().unwrap() as f32;
                assert_eq!(best.threshold as f32, threshold, "{name}: threshold");
                close(Some(best.precision), &theirs["precision"], name);
                close(Some(best.recall), &theirs["recall"], name);
                close(Some(best.f1), &theirs["f1"], name);
            }
            (ours, theirs) => panic!("{name}: best F1 ours {ours:?}, scikit-learn {theirs}"),
        }
    }
}
