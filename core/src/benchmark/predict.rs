//! A model's answer to a benchmark query, from the query's per-frame curve: ranked windows with
//! scores for moment retrieval, and a saliency score per 2-second clip for highlight detection.
//!
//! Windows are the moments code's own ([`find_moments`]: hysteresis, gaps under half a second
//! bridged, moments under half a second dropped) at a sweep of thresholds relative to the
//! curve (its mean plus k standard deviations, k from 2 down to -0.5), each scored by its mean
//! score, then kept best first unless it overlaps one kept already by IoU 0.7 or more (temporal
//! non-maximum suppression), at most [`MAX_PREDICTED_WINDOWS`]. A curve that holds nowhere
//! still answers: the whole video at its mean score (the evaluator needs one window).
//!
//! Invariants:
//! - a window runs from the start of its first frame to the end of its last (the next frame's
//!   start, or the video's end), in the video's own timestamps;
//! - a clip's saliency is the mean of the known scores of the frames that start in it; a clip
//!   where none starts (a sparse index) takes the score of the frame on screen then;
//! - every number written is finite (JSON has no NaN).

use crate::moments::{
    find_moments, Condition, MomentQuery, Threshold, DEFAULT_GAP_S, DEFAULT_MIN_LEN_S,
};

use super::metrics::{Prediction, MAX_PREDICTED_WINDOWS};

/// The thresholds swept, in standard deviations above the curve's mean.
pub const SWEEP_K: [f32; 6] = [2.0, 1.5, 1.0, 0.5, 0.0, -0.5];

/// Windows overlapping a better one by this IoU or more are dropped.
pub const NMS_IOU: f64 = 0.7;

/// Seconds per highlight clip, as the benchmarks annotate them.
pub const CLIP_SECONDS: f64 = 2.0;

/// The prediction for query `qid` from its `curve` (one score per frame, NaN where unknown),
/// `starts` (each frame's start in seconds from the video's first) and `duration` (seconds).
pub fn predict(qid: &str, curve: &[f32], starts: &[f64], duration: f64) -> Prediction {
    Prediction {
        qid: qid.to_string(),
        windows: windows(curve, starts, duration),
        saliency: clip_saliency(curve, starts, duration),
    }
}

fn end_of(frame: usize, starts: &[f64], duration: f64) -> f64 {
    starts
        .get(frame + 1)
        .copied()
        .unwrap_or(duration)
        .min(duration)
}

fn finite_mean(values: impl Iterator<Item = f32>) -> Option<f64> {
    let (mut sum, mut n) = (0.0f64, 0usize);
    for v in values.filter(|v| v.is_finite()) {
        sum += f64::from(v);
        n += 1;
    }
    (n > 0).then(|| sum / n as f64)
}

fn iou(a: [f64; 3], b: [f64; 3]) -> f64 {
    let inter = (a[1].min(b[1]) - a[0].max(b[0])).max(0.0);
    let union = (a[1] - a[0]) + (b[1] - b[0]) - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// Ranked windows `[start_s, end_s, score]`, best first.
pub fn windows(curve: &[f32], starts: &[f64], duration: f64) -> Vec<[f64; 3]> {
    let frames = curve.len().min(starts.len());
    let mut candidates: Vec<[f64; 3]> = Vec::new();
    if frames > 0 && duration > 0.0 {
        let fps = frames as f64 / duration;
        for k in SWEEP_K {
            let query = MomentQuery {
                all_of: vec![Condition {
                    prompt: String::new(),
                    threshold: Threshold::Auto { k },
                }],
                none_of: Vec::new(),
                hysteresis: None,
                gap_s: DEFAULT_GAP_S,
                min_len_s: DEFAULT_MIN_LEN_S,
                snap_s: None,
            };
            let Ok(found) = find_moments(&query, &[&curve[..frames]], &[], fps, &[]) else {
                continue;
            };
            for m in found.moments {
                let (first, last) = (m.start_frame as usize, m.end_frame as usize);
                let Some(score) = finite_mean(curve[first..=last].iter().copied()) else {
                    continue;
                };
                let window = [starts[first], end_of(last, starts, duration), score];
                if window[1] > window[0] && !candidates.contains(&window) {
                    candidates.push(window);
                }
            }
        }
    }
    // Best first; equal scores keep the order found (higher thresholds first).
    candidates.sort_by(|a, b| b[2].total_cmp(&a[2]));
    let mut kept: Vec<[f64; 3]> = Vec::new();
    for c in candidates {
        if kept.len() == MAX_PREDICTED_WINDOWS {
            break;
        }
        if kept.iter().all(|k| iou(*k, c) < NMS_IOU) {
            kept.push(c);
        }
    }
    if kept.is_empty() {
        let mean = finite_mean(curve.iter().copied()).unwrap_or(0.0);
        kept.push([0.0, duration.max(0.0), mean]);
    }
    kept
}

/// One score per 2-second clip of a video `duration` seconds long (`int(duration / 2)` clips,
/// as the evaluator counts them).
pub fn clip_saliency(curve: &[f32], starts: &[f64], duration: f64) -> Vec<f64> {
    let clips = (duration / CLIP_SECONDS).max(0.0) as usize;
    let frames = curve.len().min(starts.len());
    let overall = finite_mean(curve.iter().copied()).unwrap_or(0.0);
    let mut saliency = Vec::with_capacity(clips);
    let mut first = 0;
    for c in 0..clips {
        let (from, to) = (c as f64 * CLIP_SECONDS, (c + 1) as f64 * CLIP_SECONDS);
        while first < frames && starts[first] < from {
            first += 1;
        }
        let mut last = first;
        while last < frames && starts[last] < to {
            last += 1;
        }
        let score = finite_mean(curve[first..last].iter().copied()).or_else(|| {
            // The frame on screen at the clip's start: the last one starting before it.
            let shown = first.checked_sub(1)?;
            curve[..=shown]
                .iter()
                .rev()
                .find(|v| v.is_finite())
                .map(|&v| f64::from(v))
        });
        saliency.push(score.unwrap_or(overall));
    }
    saliency
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 30 fps for `seconds`, a score of 0.2 with 0.9 on `[from, to)` seconds.
    fn curve_with_bump(seconds: f64, from: f64, to: f64) -> (Vec<f32>, Vec<f64>) {
        let frames = (seconds * 30.0) as usize;
        let starts: Vec<f64> = (0..frames).map(|i| i as f64 / 30.0).collect();
        let curve = starts
            .iter()
            .map(|&t| if (from..to).contains(&t) { 0.9 } else { 0.2 })
            .collect();
        (curve, starts)
    }

    #[test]
    fn the_best_window_is_the_bump_to_the_frame_and_overlaps_are_suppressed() {
        let (curve, starts) = curve_with_bump(60.0, 20.0, 30.0);
        let p = predict("q", &curve, &starts, 60.0);
        let best = p.windows[0];
        assert!(
            (best[0] - 20.0).abs() < 1e-9 && (best[1] - 30.0).abs() < 1e-9,
            "{best:?}"
        );
        assert!((best[2] - 0.9).abs() < 1e-6);
        assert!(p.windows.len() <= MAX_PREDICTED_WINDOWS);
        for (i, a) in p.windows.iter().enumerate() {
            for b in &p.windows[i + 1..] {
                assert!(iou(*a, *b) < NMS_IOU, "{a:?} {b:?}");
            }
            assert!(a.iter().all(|v| v.is_finite()));
        }
        // 30 clips of 2 s: those inside the bump are the most salient.
        assert_eq!(p.saliency.len(), 30);
        assert!((p.saliency[10] - 0.9).abs() < 1e-6 && (p.saliency[9] - 0.2).abs() < 1e-6);
    }

    #[test]
    fn a_flat_or_unknown_curve_still_answers_with_finite_numbers() {
        let starts: Vec<f64> = (0..90).map(|i| i as f64 / 30.0).collect();
        for curve in [vec![0.5f32; 90], vec![f32::NAN; 90]] {
            let p = predict("q", &curve, &starts, 3.0);
            assert!(!p.windows.is_empty());
            assert!(p.windows.iter().flatten().all(|v| v.is_finite()));
            assert_eq!(p.saliency.len(), 1);
            assert!(p.saliency[0].is_finite());
        }
    }

    #[test]
    fn a_sparse_index_gives_each_clip_the_frame_on_screen() {
        // One scored frame every 5 s.
        let starts = [0.0, 5.0, 10.0];
        let curve = [0.1f32, 0.5, 0.3];
        let s = clip_saliency(&curve, &starts, 12.0);
        assert_eq!(
            s,
            [0.1f32 as f64, 0.1f32 as f64, 0.5, 0.5, 0.5, 0.3f32 as f64]
        );
    }
}
