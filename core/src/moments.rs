//! Moments: the spans of frames where a query holds, computed from per-frame scores. Shared by
//! the page (live, as the user edits the query) and the CLI (`moments`), so both find the same
//! moments in the same cache.
//!
//! Invariants:
//! - Curves are per-frame (already filled and, if the user chose, smoothed); a NaN is a frame
//!   whose score is unknown (not decoded) and never holds, so no moment spans a frame nobody
//!   scored unless the gap tolerance bridges it.
//! - Moments are sorted, disjoint and inclusive: `start_frame <= peak_frame <= end_frame`.
//! - Thresholds are reported as used (an `auto` threshold as the number it became), so the
//!   chart can draw the line the user's moments came from.

use serde::{Deserialize, Serialize};

/// Where a prompt's curve must be (above, for a positive prompt; below, for a negative one).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Threshold {
    /// A cosine similarity.
    Cosine(f32),
    /// Relative to this video: the curve's mean plus `k` standard deviations (k = 1 holds on
    /// about the top sixth of a normally distributed curve).
    Auto { k: f32 },
}

impl Default for Threshold {
    fn default() -> Self {
        Threshold::Auto { k: 1.0 }
    }
}

/// `auto`, `auto:K` or a cosine like `0.25`: how the CLI's `--threshold` and the page's field
/// write a threshold.
impl std::str::FromStr for Threshold {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!("a threshold is a cosine like 0.25, `auto` or `auto:K` (K standard deviations), not {text:?}")
        };
        let number = |t: &str| {
            t.parse::<f32>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(bad)
        };
        match text.trim() {
            "auto" => Ok(Threshold::Auto { k: 1.0 }),
            t => match t.strip_prefix("auto:") {
                Some(k) => number(k).map(|k| Threshold::Auto { k }),
                None => number(t).map(Threshold::Cosine),
            },
        }
    }
}

impl std::fmt::Display for Threshold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Threshold::Auto { k } if *k == 1.0 => write!(f, "auto"),
            Threshold::Auto { k } => write!(f, "auto:{k}"),
            Threshold::Cosine(t) => write!(f, "{t}"),
        }
    }
}

/// One prompt of a query and its threshold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    pub prompt: String,
    pub threshold: Threshold,
}

/// What to look for: every `all_of` prompt above its threshold and every `none_of` prompt below
/// its own, with hysteresis, gap merging, a minimum length and snapping to scene cuts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MomentQuery {
    pub all_of: Vec<Condition>,
    pub none_of: Vec<Condition>,
    /// A moment is entered when every condition holds at T and left when one fails by more
    /// than this margin (cosine); `None` takes a quarter of each curve's standard deviation,
    /// which keeps noise from splitting a moment whatever the model's score scale.
    pub hysteresis: Option<f32>,
    /// Moments separated by less than this many seconds become one.
    pub gap_s: f64,
    /// Moments shorter than this (after merging and snapping) are dropped.
    pub min_len_s: f64,
    /// Edges move to the nearest scene cut within this many seconds; `None` leaves them.
    pub snap_s: Option<f64>,
}

impl MomentQuery {
    /// A query for one prompt with the defaults.
    pub fn prompt(prompt: &str) -> Self {
        MomentQuery {
            all_of: vec![Condition {
                prompt: prompt.to_string(),
                threshold: Threshold::default(),
            }],
            none_of: Vec::new(),
            hysteresis: None,
            gap_s: DEFAULT_GAP_S,
            min_len_s: DEFAULT_MIN_LEN_S,
            snap_s: Some(DEFAULT_SNAP_S),
        }
    }
}

pub const DEFAULT_GAP_S: f64 = 0.5;
pub const DEFAULT_MIN_LEN_S: f64 = 0.5;
pub const DEFAULT_SNAP_S: f64 = 1.0;
/// Hysteresis as a fraction of a curve's standard deviation, when the query names none.
const DEFAULT_HYSTERESIS_STD: f32 = 0.25;

/// A span of frames where the query holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Moment {
    pub start_frame: u64,
    /// Inclusive.
    pub end_frame: u64,
    /// The start of the first frame, in seconds.
    pub start_s: f64,
    /// The end of the last frame (`(end_frame + 1) / fps`): a clip from `start_s` to `end_s`
    /// shows every frame of the moment.
    pub end_s: f64,
    pub duration_s: f64,
    /// Where the query score (the mean of the positive prompts' scores) is highest.
    pub peak_frame: u64,
    pub peak_score: f32,
    pub mean_score: f32,
}

/// The moments found and the thresholds they came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Moments {
    pub moments: Vec<Moment>,
    /// The threshold used for each `all_of` condition, then each `none_of` one.
    pub thresholds: Vec<f32>,
    /// The hysteresis used for each condition, in the same order.
    pub hysteresis: Vec<f32>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MomentError {
    #[error("a moment query needs at least one prompt that must hold")]
    NoPositivePrompt,
    #[error("{given} curves for {expected} prompts")]
    CurveCount { given: usize, expected: usize },
    #[error("the curves have different lengths ({0} and {1} frames)")]
    CurveLengths(usize, usize),
    #[error("{0} must be a finite number of seconds, not negative")]
    BadSeconds(&'static str),
    #[error("the frame rate must be positive")]
    BadFps,
    #[error("threshold {0} is not a finite number")]
    BadThreshold(f32),
}

/// Finds the moments of `query` in per-frame curves: `positive[i]` is the curve of
/// `query.all_of[i]`, `negative[j]` that of `query.none_of[j]`; `cuts` are the first frames of
/// new shots, sorted.
pub fn find_moments(
    query: &MomentQuery,
    positive: &[&[f32]],
    negative: &[&[f32]],
    fps: f64,
    cuts: &[u64],
) -> Result<Moments, MomentError> {
    check(query, positive, negative, fps)?;
    let frames = positive[0].len();
    let (mut thresholds, mut margins) = (Vec::new(), Vec::new());
    for (condition, curve) in query
        .all_of
        .iter()
        .zip(positive)
        .chain(query.none_of.iter().zip(negative))
    {
        let (threshold, margin) = resolve(condition.threshold, query.hysteresis, curve)?;
        thresholds.push(threshold);
        margins.push(margin);
    }
    let (upper, lower) = thresholds.split_at(positive.len());
    let (upper_margin, lower_margin) = margins.split_at(positive.len());

    // Hysteresis: enter where every condition holds at its threshold, stay while none fails by
    // more than its margin.
    let enters = |n: usize| {
        positive.iter().zip(upper).all(|(c, &t)| c[n] >= t)
            && negative.iter().zip(lower).all(|(c, &t)| c[n] < t)
    };
    let stays = |n: usize| {
        positive
            .iter()
            .zip(upper)
            .zip(upper_margin)
            .all(|((c, &t), &h)| c[n] >= t - h)
            && negative
                .iter()
                .zip(lower)
                .zip(lower_margin)
                .all(|((c, &t), &h)| c[n] < t + h)
    };
    let mut spans: Vec<(u64, u64)> = Vec::new();
    let mut open: Option<usize> = None;
    for n in 0..frames {
        match open {
            None if enters(n) => open = Some(n),
            Some(start) if !stays(n) => {
                spans.push((start as u64, n as u64 - 1));
                open = None;
                if enters(n) {
                    open = Some(n);
                }
            }
            _ => {}
        }
    }
    if let Some(start) = open {
        spans.push((start as u64, frames as u64 - 1));
    }

    let gap_frames = (query.gap_s * fps).round() as u64;
    let spans = merge_gaps(spans, gap_frames);
    let spans = match query.snap_s {
        Some(seconds) => snap_to_cuts(spans, cuts, (seconds * fps).round() as u64, frames as u64),
        None => spans,
    };
    let min_frames = (query.min_len_s * fps).round() as u64;
    let moments = spans
        .into_iter()
        .filter(|&(start, end)| end - start + 1 >= min_frames.max(1))
        .filter_map(|(start, end)| describe(start, end, positive, fps))
        .collect();
    Ok(Moments {
        moments,
        thresholds,
        hysteresis: margins,
    })
}

fn check(
    query: &MomentQuery,
    positive: &[&[f32]],
    negative: &[&[f32]],
    fps: f64,
) -> Result<(), MomentError> {
    if query.all_of.is_empty() {
        return Err(MomentError::NoPositivePrompt);
    }
    if positive.len() != query.all_of.len() {
        return Err(MomentError::CurveCount {
            given: positive.len(),
            expected: query.all_of.len(),
        });
    }
    if negative.len() != query.none_of.len() {
        return Err(MomentError::CurveCount {
            given: negative.len(),
            expected: query.none_of.len(),
        });
    }
    let frames = positive[0].len();
    if let Some(other) = positive
        .iter()
        .chain(negative)
        .map(|c| c.len())
        .find(|&l| l != frames)
    {
        return Err(MomentError::CurveLengths(frames, other));
    }
    if !(fps.is_finite() && fps > 0.0) {
        return Err(MomentError::BadFps);
    }
    let seconds = [
        ("gap", Some(query.gap_s)),
        ("minimum length", Some(query.min_len_s)),
        ("snap tolerance", query.snap_s),
    ];
    for (name, value) in seconds {
        if let Some(v) = value {
            if !(v.is_finite() && v >= 0.0) {
                return Err(MomentError::BadSeconds(name));
            }
        }
    }
    if let Some(h) = query.hysteresis {
        if !(h.is_finite() && h >= 0.0) {
            return Err(MomentError::BadThreshold(h));
        }
    }
    Ok(())
}

/// The threshold and hysteresis margin a condition resolves to on its curve.
fn resolve(
    threshold: Threshold,
    hysteresis: Option<f32>,
    curve: &[f32],
) -> Result<(f32, f32), MomentError> {
    let (mean, std) = mean_std(curve);
    let value = match threshold {
        Threshold::Cosine(t) if t.is_finite() => t,
        Threshold::Auto { k } if k.is_finite() => mean + k * std,
        Threshold::Cosine(bad) | Threshold::Auto { k: bad } => {
            return Err(MomentError::BadThreshold(bad))
        }
    };
    Ok((value, hysteresis.unwrap_or(DEFAULT_HYSTERESIS_STD * std)))
}

/// Mean and population standard deviation of the known (non-NaN) values; zeros when none.
pub fn mean_std(curve: &[f32]) -> (f32, f32) {
    let known = curve.iter().filter(|v| !v.is_nan()).map(|&v| f64::from(v));
    let (count, sum, squares) =
        known.fold((0u64, 0.0, 0.0), |(n, s, q), v| (n + 1, s + v, q + v * v));
    if count == 0 {
        return (0.0, 0.0);
    }
    let mean = sum / count as f64;
    let variance = (squares / count as f64 - mean * mean).max(0.0);
    (mean as f32, variance.sqrt() as f32)
}

/// Joins spans whose gap (frames between them) is shorter than `gap_frames`.
fn merge_gaps(spans: Vec<(u64, u64)>, gap_frames: u64) -> Vec<(u64, u64)> {
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(spans.len());
    for (start, end) in spans {
        match merged.last_mut() {
            Some(last) if start.saturating_sub(last.1 + 1) < gap_frames => last.1 = end,
            _ => merged.push((start, end)),
        }
    }
    merged
}

/// Moves each start to the nearest cut within `tolerance` frames, and each end to the frame
/// before the nearest such cut (the last frame of its shot); spans that come to touch or overlap
/// are joined.
fn snap_to_cuts(
    spans: Vec<(u64, u64)>,
    cuts: &[u64],
    tolerance: u64,
    frames: u64,
) -> Vec<(u64, u64)> {
    let nearest = |frame: u64| {
        let i = cuts.partition_point(|&c| c < frame);
        [i.checked_sub(1).map(|j| cuts[j]), cuts.get(i).copied()]
            .into_iter()
            .flatten()
            .filter(|&c| c.abs_diff(frame) <= tolerance)
            .min_by_key(|&c| c.abs_diff(frame))
    };
    let mut snapped: Vec<(u64, u64)> = Vec::with_capacity(spans.len());
    for (start, end) in spans {
        let new_start = nearest(start).unwrap_or(start);
        // A cut at c makes c the first frame of the next shot: the moment ends at c - 1.
        let new_end = nearest(end + 1)
            .and_then(|c| c.checked_sub(1))
            .unwrap_or(end)
            .min(frames - 1);
        let (start, end) = if new_start <= new_end {
            (new_start, new_end)
        } else {
            (start, end)
        };
        match snapped.last_mut() {
            Some(last) if start <= last.1 + 1 => last.1 = last.1.max(end),
            _ => snapped.push((start, end)),
        }
    }
    snapped
}

/// Times and scores of the span `start..=end`; the query score of a frame is the mean of the
/// positive prompts' scores. `None` when no frame of the span has a known score.
fn describe(start: u64, end: u64, positive: &[&[f32]], fps: f64) -> Option<Moment> {
    let score = |n: usize| positive.iter().map(|c| c[n]).sum::<f32>() / positive.len() as f32;
    let mut peak: Option<(u64, f32)> = None;
    let (mut sum, mut known) = (0.0f64, 0u64);
    for n in start..=end {
        let s = score(n as usize);
        if s.is_nan() {
            continue;
        }
        sum += f64::from(s);
        known += 1;
        if peak.is_none_or(|(_, best)| s > best) {
            peak = Some((n, s));
        }
    }
    let (peak_frame, peak_score) = peak?;
    let (start_s, end_s) = (start as f64 / fps, (end + 1) as f64 / fps);
    Some(Moment {
        start_frame: start,
        end_frame: end,
        start_s,
        end_s,
        duration_s: end_s - start_s,
        peak_frame,
        peak_score,
        mean_score: (sum / known as f64) as f32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(threshold: f32) -> MomentQuery {
        MomentQuery {
            all_of: vec![Condition {
                prompt: "a".into(),
                threshold: Threshold::Cosine(threshold),
            }],
            none_of: vec![],
            hysteresis: Some(0.0),
            gap_s: 0.0,
            min_len_s: 0.0,
            snap_s: None,
        }
    }

    fn spans(found: &Moments) -> Vec<(u64, u64)> {
        found
            .moments
            .iter()
            .map(|m| (m.start_frame, m.end_frame))
            .collect()
    }

    #[test]
    fn a_curve_above_its_threshold_makes_inclusive_moments() {
        let curve = [0.1, 0.5, 0.6, 0.2, 0.1, 0.7, 0.7];
        let found = find_moments(&query(0.5), &[&curve], &[], 10.0, &[]).unwrap();
        assert_eq!(spans(&found), [(1, 2), (5, 6)]);
        let first = &found.moments[0];
        assert_eq!((first.start_s, first.end_s), (0.1, 0.3));
        assert!((first.duration_s - 0.2).abs() < 1e-12);
        assert_eq!((first.peak_frame, first.peak_score), (2, 0.6));
        assert!((first.mean_score - 0.55).abs() < 1e-6);
        assert_eq!(found.thresholds, [0.5]);
    }

    #[test]
    fn hysteresis_keeps_a_moment_through_a_dip_above_t_minus_h() {
        let curve = [0.0, 0.6, 0.45, 0.6, 0.35, 0.6, 0.0];
        let mut q = query(0.5);
        q.hysteresis = Some(0.1);
        // 0.45 stays (>= 0.4); 0.35 leaves; 0.6 re-enters.
        assert_eq!(
            spans(&find_moments(&q, &[&curve], &[], 10.0, &[]).unwrap()),
            [(1, 3), (5, 5)]
        );
        // Entering needs the threshold itself: 0.45 alone never starts a moment.
        let below = [0.0, 0.45, 0.45, 0.0];
        assert!(find_moments(&q, &[&below], &[], 10.0, &[])
            .unwrap()
            .moments
            .is_empty());
    }

    #[test]
    fn short_gaps_merge_and_short_moments_go() {
        let curve = [1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0];
        let mut q = query(0.5);
        q.gap_s = 0.2; // gaps of fewer than 2 frames merge
        assert_eq!(
            spans(&find_moments(&q, &[&curve], &[], 10.0, &[]).unwrap()),
            [(0, 3), (7, 7)]
        );
        q.min_len_s = 0.2; // fewer than 2 frames: dropped
        assert_eq!(
            spans(&find_moments(&q, &[&curve], &[], 10.0, &[]).unwrap()),
            [(0, 3)]
        );
    }

    #[test]
    fn every_positive_prompt_must_hold_and_no_negative_one() {
        let dog = [0.9, 0.9, 0.9, 0.9, 0.9, 0.1];
        let park = [0.9, 0.1, 0.9, 0.9, 0.9, 0.9];
        let leash = [0.1, 0.1, 0.1, 0.9, 0.1, 0.1];
        let mut q = query(0.5);
        q.all_of.push(Condition {
            prompt: "park".into(),
            threshold: Threshold::Cosine(0.5),
        });
        q.none_of.push(Condition {
            prompt: "leash".into(),
            threshold: Threshold::Cosine(0.5),
        });
        let found = find_moments(&q, &[&dog, &park], &[&leash], 10.0, &[]).unwrap();
        assert_eq!(spans(&found), [(0, 0), (2, 2), (4, 4)]);
        assert_eq!(found.thresholds, [0.5, 0.5, 0.5]);
        // The query score is the mean of the positive prompts.
        assert!((found.moments[0].peak_score - 0.9).abs() < 1e-6);
    }

    #[test]
    fn auto_threshold_is_mean_plus_k_std_of_the_curve() {
        // Mean 0.2, population std 0.4: k = 1 gives 0.6.
        let curve = [0.0, 0.0, 0.0, 0.0, 1.0];
        let mut q = query(0.0);
        q.all_of[0].threshold = Threshold::Auto { k: 1.0 };
        q.hysteresis = None;
        let found = find_moments(&q, &[&curve], &[], 10.0, &[]).unwrap();
        assert!(
            (found.thresholds[0] - 0.6).abs() < 1e-6,
            "{:?}",
            found.thresholds
        );
        assert!(
            (found.hysteresis[0] - 0.1).abs() < 1e-6,
            "{:?}",
            found.hysteresis
        );
        assert_eq!(spans(&found), [(4, 4)]);
    }

    #[test]
    fn edges_snap_to_cuts_within_the_tolerance() {
        // The curve holds on frames 12..=27; shots start at 10, 30 and 50.
        let mut curve = vec![0.0f32; 60];
        curve[12..=27].fill(1.0);
        let mut q = query(0.5);
        q.snap_s = Some(0.3); // 3 frames at 10 fps
        let found = find_moments(&q, &[&curve], &[], 10.0, &[10, 30, 50]).unwrap();
        assert_eq!(spans(&found), [(10, 29)]);
        // Cuts beyond the tolerance leave the edges where they were.
        q.snap_s = Some(0.1);
        assert_eq!(
            spans(&find_moments(&q, &[&curve], &[], 10.0, &[10, 30, 50]).unwrap()),
            [(12, 27)]
        );
    }

    #[test]
    fn unknown_frames_never_hold() {
        let curve = [1.0, f32::NAN, 1.0, f32::NAN, f32::NAN];
        let found = find_moments(&query(0.5), &[&curve], &[], 10.0, &[]).unwrap();
        assert_eq!(spans(&found), [(0, 0), (2, 2)]);
        let (mean, std) = mean_std(&curve);
        assert_eq!((mean, std), (1.0, 0.0));
    }

    #[test]
    fn thresholds_read_and_write_as_the_cli_takes_them() {
        for (text, threshold) in [
            ("auto", Threshold::Auto { k: 1.0 }),
            ("auto:0.5", Threshold::Auto { k: 0.5 }),
            ("-0.2", Threshold::Cosine(-0.2)),
        ] {
            assert_eq!(text.parse::<Threshold>(), Ok(threshold));
            assert_eq!(threshold.to_string(), text);
        }
        for bad in ["", "auto:", "auto:x", "NaN", "inf", "high"] {
            assert!(bad.parse::<Threshold>().is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_queries_are_refused_with_a_reason() {
        let curve = [0.0f32; 3];
        let mut q = query(0.5);
        q.all_of.clear();
        assert_eq!(
            find_moments(&q, &[], &[], 10.0, &[]),
            Err(MomentError::NoPositivePrompt)
        );
        let q = query(0.5);
        assert!(matches!(
            find_moments(&q, &[&curve, &curve], &[], 10.0, &[]),
            Err(MomentError::CurveCount { .. })
        ));
        assert_eq!(
            find_moments(&q, &[&curve], &[], 0.0, &[]),
            Err(MomentError::BadFps)
        );
        let mut q = query(f32::NAN);
        assert!(matches!(
            find_moments(&q, &[&curve], &[], 10.0, &[]),
            Err(MomentError::BadThreshold(_))
        ));
        q = query(0.5);
        q.gap_s = -1.0;
        assert_eq!(
            find_moments(&q, &[&curve], &[], 10.0, &[]),
            Err(MomentError::BadSeconds("gap"))
        );
        // An empty video has no moments and no error.
        assert!(find_moments(&query(0.5), &[&[]], &[], 10.0, &[])
            .unwrap()
            .moments
            .is_empty());
    }
}
