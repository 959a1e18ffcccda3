//! Where to label next and which labels look wrong, from out-of-fold scores.
//!
//! - *Label next*: frames not labelled as the prompt where the adapted probability is least
//!   certain (near 0.5), or where zero-shot and adapted disagree most; at most one per moment
//!   (no two within [`MOMENT_GAP_S`] of each other in one video).
//! - *Suspect labels*: a temporal version of FiftyOne's mistakenness. A labelled segment whose
//!   mean adapted probability is low, or a run of unlabelled frames whose probability stays
//!   above 0.5: the spans the scores contradict most, first.
//!
//! Invariants: only out-of-fold scores are read (a frame's score comes from a model that did
//! not train on it); frames are the video's own numbers.

use super::{LabelNext, Suspect};

/// Suggestions closer than this (seconds) are one moment.
pub const MOMENT_GAP_S: f64 = 2.0;
pub const MAX_LABEL_NEXT: usize = 20;
pub const MAX_SUSPECTS: usize = 10;

/// The rows the suggestions are made from: one per evaluated frame, in video then frame order.
pub struct ScoredRows<'a> {
    pub video: &'a [u32],
    pub frame: &'a [u64],
    pub truth: &'a [bool],
    /// Out-of-fold adapted probabilities.
    pub adapted: &'a [f64],
    pub zero_shot: &'a [f64],
    /// Each video's id and frame rate, by its index in `video`.
    pub videos: &'a [(String, f64)],
}

/// Up to [`MAX_LABEL_NEXT`] frames worth a label, the most useful first.
pub fn label_next(rows: &ScoredRows) -> Vec<LabelNext> {
    let mut candidates: Vec<(f64, usize, bool)> = (0..rows.truth.len())
        .filter(|&i| !rows.truth[i])
        .map(|i| {
            let uncertain = 1.0 - 2.0 * (rows.adapted[i] - 0.5).abs();
            let disagree = (rows.adapted[i] - rows.zero_shot[i]).abs();
            (uncertain.max(disagree), i, uncertain >= disagree)
        })
        .collect();
    candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let mut picked: Vec<(u32, u64)> = Vec::new();
    let mut out = Vec::new();
    for (_, i, uncertain) in candidates {
        if out.len() == MAX_LABEL_NEXT {
            break;
        }
        let (video, frame) = (rows.video[i], rows.frame[i]);
        let fps = rows.videos[video as usize].1;
        let gap = (MOMENT_GAP_S * fps).round().max(1.0) as u64;
        if picked
            .iter()
            .any(|&(v, f)| v == video && f.abs_diff(frame) < gap)
        {
            continue;
        }
        picked.push((video, frame));
        out.push(LabelNext {
            video_id: rows.videos[video as usize].0.clone(),
            frame,
            score: rows.adapted[i],
            zero_shot: rows.zero_shot[i],
            reason: if uncertain { "uncertain" } else { "disagree" }.into(),
        });
    }
    out
}

/// Up to [`MAX_SUSPECTS`] spans whose scores contradict their labels, most contradicted first.
pub fn suspects(rows: &ScoredRows) -> Vec<Suspect> {
    // (contradiction, rows in the span, span)
    let mut spans: Vec<(f64, usize, Suspect)> = Vec::new();
    let n = rows.truth.len();
    let mut start = 0;
    while start < n {
        let video = rows.video[start];
        let positive = rows.truth[start];
        let mut end = start + 1;
        while end < n && rows.video[end] == video && rows.truth[end] == positive {
            end += 1;
        }
        if positive {
            // A labelled segment scored low.
            let mean = mean(&rows.adapted[start..end]);
            if mean < 0.5 {
                spans.push((
                    1.0 - mean,
                    end - start,
                    suspect(rows, start, end, true, mean),
                ));
            }
        } else {
            // Runs of unlabelled frames scored above 0.5.
            let mut i = start;
            while i < end {
                if rows.adapted[i] > 0.5 {
                    let mut j = i + 1;
                    while j < end && rows.adapted[j] > 0.5 {
                        j += 1;
                    }
                    let mean = mean(&rows.adapted[i..j]);
                    spans.push((mean, j - i, suspect(rows, i, j, false, mean)));
                    i = j;
                } else {
                    i += 1;
                }
            }
        }
        start = end;
    }
    spans.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then(b.1.cmp(&a.1))
            .then(a.2.start_frame.cmp(&b.2.start_frame))
    });
    spans
        .into_iter()
        .take(MAX_SUSPECTS)
        .map(|(_, _, s)| s)
        .collect()
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

fn suspect(rows: &ScoredRows, start: usize, end: usize, positive: bool, score: f64) -> Suspect {
    Suspect {
        video_id: rows.videos[rows.video[start] as usize].0.clone(),
        start_frame: rows.frame[start],
        end_frame: rows.frame[end - 1],
        positive,
        score,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_next_takes_unlabelled_uncertain_frames_one_per_moment() {
        // 10 fps: frames 0..100; frames 40..=59 labelled.
        let frame: Vec<u64> = (0..100).collect();
        let truth: Vec<bool> = frame.iter().map(|&f| (40..60).contains(&f)).collect();
        // Certain everywhere but two places: around frame 10 and frame 80 (near 0.5), and
        // inside the labelled span (which is not a candidate).
        let adapted: Vec<f64> = frame
            .iter()
            .map(|&f| match f {
                8..=12 => 0.45 + 0.01 * (f as f64 - 8.0),
                80 => 0.52,
                45 => 0.5,
                _ => 0.02,
            })
            .collect();
        let zero_shot = vec![0.02; 100];
        let videos = vec![("v".to_string(), 10.0)];
        let rows = ScoredRows {
            video: &vec![0; 100],
            frame: &frame,
            truth: &truth,
            adapted: &adapted,
            zero_shot: &zero_shot,
            videos: &videos,
        };
        let next = label_next(&rows);
        let frames: Vec<u64> = next.iter().take(2).map(|n| n.frame).collect();
        // Frame 12 (0.49, the nearest 0.5), then 80 (0.52); 11 (0.48) is frame 12's moment.
        assert_eq!(frames, vec![12, 80]);
        assert_eq!(next[0].reason, "uncertain");
        assert!(
            next.iter().all(|n| !(40..60).contains(&n.frame)),
            "labelled frames are not suggested"
        );
        // One per moment: no two within 2 s (20 frames).
        for (i, a) in next.iter().enumerate() {
            for b in &next[i + 1..] {
                assert!(a.frame.abs_diff(b.frame) >= 20, "{} {}", a.frame, b.frame);
            }
        }
        assert!(next.len() <= MAX_LABEL_NEXT);
    }

    #[test]
    fn suspects_are_low_segments_and_high_unlabelled_runs() {
        let frame: Vec<u64> = (0..60).collect();
        // Segments 10..20 (scored high: fine) and 30..40 (scored low: suspect); frames 50..55
        // unlabelled but scored high (a missed label?).
        let truth: Vec<bool> = frame
            .iter()
            .map(|&f| (10..20).contains(&f) || (30..40).contains(&f))
            .collect();
        let adapted: Vec<f64> = frame
            .iter()
            .map(|&f| match f {
                10..=19 => 0.9,
                30..=39 => 0.1,
                50..=54 => 0.8,
                _ => 0.05,
            })
            .collect();
        let videos = vec![("v".to_string(), 10.0)];
        let rows = ScoredRows {
            video: &vec![0; 60],
            frame: &frame,
            truth: &truth,
            adapted: &adapted,
            zero_shot: &adapted,
            videos: &videos,
        };
        let found = suspects(&rows);
        assert_eq!(found.len(), 2);
        assert_eq!(
            (found[0].start_frame, found[0].end_frame, found[0].positive),
            (30, 39, true)
        );
        assert!((found[0].score - 0.1).abs() < 1e-12);
        assert_eq!(
            (found[1].start_frame, found[1].end_frame, found[1].positive),
            (50, 54, false)
        );
    }
}
