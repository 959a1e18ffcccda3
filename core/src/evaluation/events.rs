//! Where the model is right and wrong over time: found moments matched to labelled segments
//! (temporal IoU), and the spans of false positives and false negatives at a threshold.
//!
//! Invariants: spans are inclusive frame ranges; a found moment matches at most one segment and
//! a segment at most one moment (greedy, best IoU first); error spans are made of consecutive
//! evaluated frames (frames not evaluated, such as unsampled or ignored ones, neither join nor
//! split a span on their own).

use serde::{Deserialize, Serialize};

/// The IoU a moment must reach with a labelled segment to count as finding it.
pub const MATCH_IOU: f64 = 0.5;

/// Temporal intersection over union of two inclusive frame spans.
pub fn iou(a: (u64, u64), b: (u64, u64)) -> f64 {
    let inter = (a.1.min(b.1) + 1).saturating_sub(a.0.max(b.0));
    let union = (a.1 - a.0 + 1) + (b.1 - b.0 + 1) - inter;
    inter as f64 / union as f64
}

/// Moments against labelled segments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventMatch {
    /// Matched moments / moments found; `None` when none was found.
    pub precision: Option<f64>,
    /// Matched segments / labelled segments; `None` without segments.
    pub recall: Option<f64>,
    pub moments: usize,
    pub segments: usize,
    /// For each labelled segment (in order), the best IoU any found moment reaches with it.
    pub best_iou: Vec<f64>,
}

/// Matches `found` moments to `truth` segments at IoU >= [`MATCH_IOU`].
pub fn match_events(found: &[(u64, u64)], truth: &[(u64, u64)]) -> EventMatch {
    let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
    let mut best_iou = vec![0.0; truth.len()];
    for (i, &f) in found.iter().enumerate() {
        for (j, &t) in truth.iter().enumerate() {
            let overlap = iou(f, t);
            best_iou[j] = f64::max(best_iou[j], overlap);
            if overlap >= MATCH_IOU {
                pairs.push((overlap, i, j));
            }
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let (mut moment_used, mut segment_used) = (vec![false; found.len()], vec![false; truth.len()]);
    let mut matched = 0usize;
    for (_, i, j) in pairs {
        if !moment_used[i] && !segment_used[j] {
            moment_used[i] = true;
            segment_used[j] = true;
            matched += 1;
        }
    }
    EventMatch {
        precision: (!found.is_empty()).then(|| matched as f64 / found.len() as f64),
        recall: (!truth.is_empty()).then(|| matched as f64 / truth.len() as f64),
        moments: found.len(),
        segments: truth.len(),
        best_iou,
    }
}

/// What kind of mistake a span is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// At or above the threshold outside the labels.
    FalsePositive,
    /// Below the threshold inside the labels.
    FalseNegative,
}

/// A run of consecutive evaluated frames the model gets wrong the same way.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorSpan {
    pub kind: ErrorKind,
    pub start: u64,
    /// Inclusive.
    pub end: u64,
    /// Evaluated frames in the span.
    pub frames: u64,
    /// The most wrong score: the highest of a false positive, the lowest of a false negative.
    pub worst_score: f64,
    /// The frame with that score.
    pub worst_frame: u64,
}

/// The false-positive and false-negative spans at `threshold` over evaluated `frames`
/// (ascending) with their `truth` and `scores`, in frame order.
pub fn error_spans(
    frames: &[u64],
    truth: &[bool],
    scores: &[f64],
    threshold: f64,
) -> Vec<ErrorSpan> {
    let mut spans: Vec<ErrorSpan> = Vec::new();
    let mut previous_was: Option<ErrorKind> = None;
    for ((&frame, &label), &score) in frames.iter().zip(truth).zip(scores) {
        let kind = match (label, score >= threshold) {
            (false, true) => Some(ErrorKind::FalsePositive),
            (true, false) => Some(ErrorKind::FalseNegative),
            _ => None,
        };
        match (kind, spans.last_mut()) {
            (Some(kind), Some(last)) if previous_was == Some(kind) => {
                last.end = frame;
                last.frames += 1;
                let worse = match kind {
                    ErrorKind::FalsePositive => score > last.worst_score,
                    ErrorKind::FalseNegative => score < last.worst_score,
                };
                if worse {
                    last.worst_score = score;
                    last.worst_frame = frame;
                }
            }
            (Some(kind), _) => spans.push(ErrorSpan {
                kind,
                start: frame,
                end: frame,
                frames: 1,
                worst_score: score,
                worst_frame: frame,
            }),
            (None, _) => {}
        }
        previous_was = kind;
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_inclusive_spans() {
        assert_eq!(iou((0, 9), (0, 9)), 1.0);
        assert_eq!(iou((0, 9), (10, 19)), 0.0);
        assert_eq!(iou((0, 9), (5, 14)), 5.0 / 15.0);
        assert_eq!(iou((3, 3), (3, 3)), 1.0);
    }

    #[test]
    fn each_segment_is_found_once_best_first() {
        // Two halves of one segment reach IoU 0.5 each: only one may count.
        let found = [(0, 4), (5, 9), (20, 29)];
        let truth = [(0, 9), (21, 30), (50, 60)];
        let m = match_events(&found, &truth);
        assert_eq!((m.moments, m.segments), (3, 3));
        assert_eq!(m.precision, Some(2.0 / 3.0));
        assert_eq!(m.recall, Some(2.0 / 3.0));
        assert_eq!(m.best_iou, vec![0.5, 9.0 / 11.0, 0.0]);
        let none = match_events(&[], &truth);
        assert_eq!((none.precision, none.recall), (None, Some(0.0)));
        assert_eq!(match_events(&found, &[]).recall, None);
    }

    #[test]
    fn errors_run_over_consecutive_evaluated_frames() {
        let frames = [0, 2, 4, 6, 8, 10, 12];
        let truth = [false, false, true, true, true, false, false];
        let scores = [0.9, 0.8, 0.1, 0.2, 0.6, 0.7, 0.1];
        let spans = error_spans(&frames, &truth, &scores, 0.5);
        assert_eq!(spans.len(), 3, "{spans:?}");
        assert_eq!(
            (spans[0].kind, spans[0].start, spans[0].end, spans[0].frames),
            (ErrorKind::FalsePositive, 0, 2, 2)
        );
        assert_eq!((spans[0].worst_score, spans[0].worst_frame), (0.9, 0));
        assert_eq!(
            (
                spans[1].kind,
                spans[1].start,
                spans[1].end,
                spans[1].worst_frame
            ),
            (ErrorKind::FalseNegative, 4, 6, 4)
        );
        assert_eq!(
            (spans[2].kind, spans[2].start, spans[2].end),
            (ErrorKind::FalsePositive, 10, 10)
        );
    }
}
