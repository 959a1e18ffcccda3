//! Is the model right? Scores held against ground-truth labels: frame-level metrics exactly as
//! scikit-learn computes them (`ranking`), moments matched to labelled segments and the spans
//! where the model is wrong (`events`), and two models compared with a block-bootstrap
//! interval (`bootstrap`). Shared by the page's Evaluate panel and the CLI's `evaluate`, so
//! both print the same numbers.
//!
//! Invariants: a prompt is evaluated on the frames that are embedded (a finite score) and not
//! ignored; its positives are the frames inside its labelled segments, its negatives the others;
//! a prompt without labels is not evaluated; a metric that is undefined is `None` with a note
//! saying why, never a number.

pub mod bootstrap;
pub mod events;
pub mod ranking;

use serde::{Deserialize, Serialize};

use crate::labels::Labels;
use crate::moments::{find_moments, MomentQuery, Threshold};
pub use events::{ErrorKind, ErrorSpan, EventMatch};
pub use ranking::F1Point;

/// Points of a precision–recall curve sent to the page (a step curve; enough for any canvas).
pub const PR_CURVE_POINTS: usize = 256;

/// The frames a prompt is evaluated on: ascending, with their truth and scores.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Evaluated {
    pub frames: Vec<u64>,
    pub truth: Vec<bool>,
    pub scores: Vec<f64>,
}

/// Picks the embedded frames (`frames` with a finite score) that are not ignored, and labels
/// each by whether it lies in one of `prompt`'s segments.
pub fn evaluated_frames(
    frames: &[u64],
    scores: &[f32],
    labels: &Labels,
    prompt: &str,
) -> Evaluated {
    let ignored = labels.ignored();
    let positive = labels.spans(prompt);
    let inside = |spans: &[(u64, u64)], n: u64| spans.iter().any(|&(s, e)| s <= n && n <= e);
    let mut out = Evaluated::default();
    for (&frame, &score) in frames.iter().zip(scores) {
        if !score.is_finite() || inside(&ignored, frame) {
            continue;
        }
        out.frames.push(frame);
        out.truth.push(inside(&positive, frame));
        out.scores.push(f64::from(score));
    }
    out
}

/// One prompt of one model against the labels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PromptEvaluation {
    pub prompt: String,
    pub positives: u64,
    pub negatives: u64,
    /// scikit-learn's `average_precision_score`.
    pub ap: Option<f64>,
    /// scikit-learn's `roc_auc_score`.
    pub roc_auc: Option<f64>,
    pub best_f1: Option<F1Point>,
    /// The moments found at the best-F1 threshold against the labelled segments.
    pub events: Option<EventMatch>,
    /// Why a metric is missing.
    pub notes: Vec<String>,
    /// `(recall, precision)` from the highest threshold down.
    pub pr_curve: Vec<(f64, f64)>,
    /// False positives and false negatives at the best-F1 threshold, in frame order.
    pub errors: Vec<ErrorSpan>,
}

/// Everything needed to evaluate one prompt of one model.
pub struct PromptInput<'a> {
    pub prompt: &'a str,
    /// The embedded frames, ascending, and their cosine scores (NaN: not decoded).
    pub frames: &'a [u64],
    pub scores: &'a [f32],
    /// The per-frame curve as the chart shows it unsmoothed (frames 0..n), for the moments.
    pub per_frame: &'a [f32],
    pub labels: &'a Labels,
    pub fps: f64,
    /// Scene cuts, for the moments' default snapping.
    pub cuts: &'a [u64],
}

/// Evaluates one prompt of one model: frame metrics, events, errors.
pub fn evaluate_prompt(input: &PromptInput) -> PromptEvaluation {
    let e = evaluated_frames(input.frames, input.scores, input.labels, input.prompt);
    let positives = e.truth.iter().filter(|&&t| t).count() as u64;
    let negatives = e.truth.len() as u64 - positives;
    let mut notes = Vec::new();
    if positives == 0 {
        notes.push("no labelled frame is embedded: AP, ROC AUC and F1 are undefined".into());
    } else if negatives == 0 {
        notes.push("every evaluated frame is labelled: ROC AUC is undefined".into());
    }
    let best_f1 = ranking::best_f1(&e.truth, &e.scores);
    let events = best_f1.map(|best| {
        let mut query = MomentQuery::prompt(input.prompt);
        query.all_of[0].threshold = Threshold::Cosine(best.threshold as f32);
        let found: Vec<(u64, u64)> =
            find_moments(&query, &[input.per_frame], &[], input.fps, input.cuts)
                .map(|m| {
                    m.moments
                        .iter()
                        .map(|m| (m.start_frame, m.end_frame))
                        .collect()
                })
                .unwrap_or_default();
        events::match_events(&found, &input.labels.spans(input.prompt))
    });
    if events.as_ref().is_some_and(|e| e.precision.is_none()) {
        notes.push("no moment reaches the best-F1 threshold: event precision is undefined".into());
    }
    PromptEvaluation {
        prompt: input.prompt.to_string(),
        positives,
        negatives,
        ap: ranking::average_precision(&e.truth, &e.scores),
        roc_auc: ranking::roc_auc(&e.truth, &e.scores),
        best_f1,
        events,
        notes,
        pr_curve: ranking::pr_curve(&e.truth, &e.scores, PR_CURVE_POINTS),
        errors: best_f1
            .map(|b| events::error_spans(&e.frames, &e.truth, &e.scores, b.threshold))
            .unwrap_or_default(),
    }
}

/// One model's evaluation of every labelled prompt.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelEvaluation {
    pub model: String,
    pub prompts: Vec<PromptEvaluation>,
}

/// Two models' AP on a prompt, over the frames both evaluate, and the 95 % interval of the
/// difference (first minus second).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApComparison {
    pub prompt: String,
    pub frames: u64,
    pub first: Option<f64>,
    pub second: Option<f64>,
    pub difference: Option<f64>,
    pub interval: Option<(f64, f64)>,
}

/// Compares two models on `prompt` over the frames both evaluate.
pub fn compare(prompt: &str, first: &Evaluated, second: &Evaluated) -> ApComparison {
    let mut truth = Vec::new();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let mut j = 0;
    for (i, &frame) in first.frames.iter().enumerate() {
        while j < second.frames.len() && second.frames[j] < frame {
            j += 1;
        }
        if second.frames.get(j) == Some(&frame) {
            truth.push(first.truth[i]);
            a.push(first.scores[i]);
            b.push(second.scores[j]);
        }
    }
    let (x, y) = (
        ranking::average_precision(&truth, &a),
        ranking::average_precision(&truth, &b),
    );
    ApComparison {
        prompt: prompt.to_string(),
        frames: truth.len() as u64,
        first: x,
        second: y,
        difference: x.zip(y).map(|(x, y)| x - y),
        interval: bootstrap::ap_difference_interval(&truth, &a, &b, bootstrap::SEED),
    }
}

/// A video's evaluation: each model's, and the comparison of the first two.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub models: Vec<ModelEvaluation>,
    pub comparison: Vec<ApComparison>,
    /// Frames left out of every metric by `ignore` segments.
    pub ignored_frames: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::Segment;

    fn labels() -> Labels {
        Labels {
            segments: vec![
                Segment {
                    prompt: "dog".into(),
                    start: 10,
                    end: 19,
                },
                Segment {
                    prompt: crate::labels::IGNORE.into(),
                    start: 30,
                    end: 34,
                },
            ],
        }
    }

    #[test]
    fn ignored_and_missing_frames_are_left_out() {
        let frames: Vec<u64> = (0..40).collect();
        let mut scores = vec![0.1f32; 40];
        scores[5] = f32::NAN;
        let e = evaluated_frames(&frames, &scores, &labels(), "dog");
        assert_eq!(e.frames.len(), 40 - 5 - 1);
        assert_eq!(e.truth.iter().filter(|&&t| t).count(), 10);
        assert!(!e.frames.contains(&32) && !e.frames.contains(&5));
    }

    #[test]
    fn a_perfect_curve_scores_one_everywhere() {
        let frames: Vec<u64> = (0..40).collect();
        let scores: Vec<f32> = frames
            .iter()
            .map(|&n| if (10..20).contains(&n) { 0.3 } else { 0.1 })
            .collect();
        let labels = labels();
        let result = evaluate_prompt(&PromptInput {
            prompt: "dog",
            frames: &frames,
            scores: &scores,
            per_frame: &scores,
            labels: &labels,
            fps: 10.0,
            cuts: &[],
        });
        assert_eq!((result.positives, result.negatives), (10, 25));
        assert_eq!((result.ap, result.roc_auc), (Some(1.0), Some(1.0)));
        let best = result.best_f1.unwrap();
        assert_eq!((best.threshold, best.f1), (f64::from(0.3f32), 1.0));
        let events = result.events.unwrap();
        assert_eq!((events.precision, events.recall), (Some(1.0), Some(1.0)));
        assert_eq!(events.best_iou, vec![1.0]);
        assert!(result.errors.is_empty() && result.notes.is_empty());
    }

    #[test]
    fn undefined_metrics_say_why() {
        let frames: Vec<u64> = (0..10).collect();
        let scores = vec![0.2f32; 10];
        let labels = labels();
        let result = evaluate_prompt(&PromptInput {
            prompt: "dog",
            frames: &frames,
            scores: &scores,
            per_frame: &scores,
            labels: &labels,
            fps: 10.0,
            cuts: &[],
        });
        assert_eq!(result.positives, 0);
        assert_eq!(
            (result.ap, result.roc_auc, result.best_f1),
            (None, None, None)
        );
        assert!(result.notes[0].contains("undefined"), "{:?}", result.notes);
    }

    #[test]
    fn two_models_are_compared_on_the_frames_both_evaluate() {
        let labels = labels();
        let frames: Vec<u64> = (0..40).collect();
        let good: Vec<f32> = frames
            .iter()
            .map(|&n| if (10..20).contains(&n) { 0.3 } else { 0.1 })
            .collect();
        let flat = vec![0.2f32; 40];
        let a = evaluated_frames(&frames, &good, &labels, "dog");
        let sampled: Vec<u64> = (0..40).step_by(2).collect();
        let b = evaluated_frames(&sampled, &flat[..20], &labels, "dog");
        let c = compare("dog", &a, &b);
        assert_eq!(c.frames, b.frames.len() as u64);
        assert_eq!(c.first, Some(1.0));
        assert!(c.difference.unwrap() > 0.0);
    }
}
