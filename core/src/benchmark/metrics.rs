//! The moment-retrieval benchmarks' official metrics, computed exactly as their one evaluator
//! computes them (`standalone_eval/eval.py` of the Moment-DETR repository, used for
//! QVHighlights and, through the Lighthouse project's converted annotations, for Charades-STA,
//! ActivityNet Captions and TACoS): moment retrieval's mAP at temporal IoU 0.5 to 0.95 and their
//! average, by ground-truth window length (short ≤ 10 s, middle 10–30 s, long 30–150 s, full),
//! and recall at one at the same thresholds; highlight detection's mAP and HIT@1 over 2-second
//! clips, for three minimum saliencies (Fair ≥ 2, Good ≥ 3, VeryGood = 4).
//!
//! Invariants:
//! - every step is the evaluator's, quirks included, so a number printed here equals the
//!   official one to its last digit: R1's "union" is the hull of the two windows; a prediction
//!   matches the free ground-truth window of highest IoU, ties to the later one; highlight AP
//!   is scikit-learn's `precision_recall_curve` with recall in single precision and precision
//!   made non-decreasing from the lowest threshold up; sums of many floats are NumPy's pairwise
//!   sums; every figure is 100 × the value rounded to two decimals;
//! - only the first 10 predicted windows of a query count for mAP, the first for R1;
//! - a submission must answer exactly the ground truth's queries (the evaluator's default
//!   check); anything the evaluator would crash on is refused with a reason instead.
//!
//! Goldens: `scripts/make_benchmark_goldens.py` runs the official evaluator on generated
//! annotations and predictions (ties, empty and overlapping windows, clips past the end);
//! `core/tests/benchmark_goldens.rs` holds these metrics to its output.

use std::collections::{HashMap, HashSet};

use super::highlights::level_scores;
use super::numeric::{numpy_argmax, numpy_mean, numpy_sum, percent};

/// One query of a benchmark, as its annotation file gives it (seconds).
#[derive(Clone, Debug, PartialEq)]
pub struct GroundTruth {
    pub qid: String,
    pub duration: f64,
    /// `[start, end]` of each relevant window.
    pub windows: Vec<[f64; 2]>,
    /// 2-second clips with saliency scores (QVHighlights only; empty elsewhere).
    pub relevant_clip_ids: Vec<usize>,
    /// Per relevant clip, three annotators' scores from 0 (very bad) to 4 (very good).
    pub saliency_scores: Vec<[u8; 3]>,
}

/// A model's answer to one query.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    pub qid: String,
    /// `[start, end, score]`, best first.
    pub windows: Vec<[f64; 3]>,
    /// One score per 2-second clip of the video (empty: no highlight detection).
    pub saliency: Vec<f64>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BenchmarkError {
    #[error("the predictions answer {predicted} queries and the ground truth has {truth}; {example} is in one and not the other (score a subset by giving only its ground truth)")]
    QueriesDiffer {
        predicted: usize,
        truth: usize,
        example: String,
    },
    #[error("there are no queries to score")]
    Empty,
    #[error("query {0} has no predicted window: moment retrieval needs at least one")]
    NoPrediction(String),
    #[error("query {0} has no ground-truth window")]
    NoWindow(String),
    #[error(
        "query {qid}: clip {clip} is past the end of its {duration} s video ({clips} clips of 2 s)"
    )]
    ClipPastEnd {
        qid: String,
        clip: usize,
        duration: f64,
        clips: usize,
    },
    #[error("query {0}: relevant_clip_ids and saliency_scores differ in length")]
    SaliencyMismatch(String),
    #[error("query {0} has no 2-second clip (a video shorter than 2 s): highlight detection cannot score it")]
    NoClips(String),
    #[error("some queries have saliency scores and some do not: score highlights on all or none")]
    MixedSaliency,
}

/// The temporal IoU thresholds, as the evaluator writes them (`0.5`, `0.55`, … `0.95`).
pub const IOU_THRESHOLDS: [f64; 10] = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95];

/// The evaluator's ground-truth window length ranges: (name, above, at most) in seconds.
pub const LENGTH_RANGES: [(&str, f64, f64); 4] = [
    ("short", 0.0, 10.0),
    ("middle", 10.0, 30.0),
    ("long", 30.0, 150.0),
    ("full", 0.0, 150.0),
];

/// Predicted windows a query's mAP counts.
pub const MAX_PREDICTED_WINDOWS: usize = 10;

/// The highlight levels: (name, lowest saliency that counts as relevant).
pub const SALIENCY_LEVELS: [(&str, u8); 3] = [("Fair", 2), ("Good", 3), ("VeryGood", 4)];

/// Moment retrieval's figures on one length range (each 100 × value, two decimals).
#[derive(Clone, Debug, PartialEq)]
pub struct MomentScores {
    pub range: &'static str,
    /// Queries with a ground-truth window in the range.
    pub queries: usize,
    /// mAP at each of [`IOU_THRESHOLDS`], and their average.
    pub map: [f64; 10],
    pub map_average: f64,
    /// Recall at one at each of [`IOU_THRESHOLDS`].
    pub r1: [f64; 10],
}

/// Highlight detection's figures at one saliency level (100 × value, two decimals).
#[derive(Clone, Debug, PartialEq)]
pub struct HighlightScores {
    pub level: &'static str,
    pub map: f64,
    pub hit1: f64,
}

/// Everything the evaluator reports.
#[derive(Clone, Debug, PartialEq)]
pub struct Metrics {
    /// One per [`LENGTH_RANGES`], in its order.
    pub moments: Vec<MomentScores>,
    /// One per [`SALIENCY_LEVELS`]; empty where the predictions carry no saliency.
    pub highlights: Vec<HighlightScores>,
}

impl Metrics {
    /// The evaluator's `brief` block: (key, value) in its order.
    pub fn brief(&self) -> Vec<(String, f64)> {
        let mut brief = Vec::new();
        let range = |name: &str| self.moments.iter().find(|m| m.range == name);
        if let (Some(full), Some(short), Some(middle), Some(long)) = (
            range("full"),
            range("short"),
            range("middle"),
            range("long"),
        ) {
            // The evaluator sorts these keys.
            let mut moments = vec![
                ("MR-full-mAP".to_string(), full.map_average),
                ("MR-full-mAP@0.5".to_string(), full.map[0]),
                ("MR-full-mAP@0.75".to_string(), full.map[5]),
                ("MR-short-mAP".to_string(), short.map_average),
                ("MR-middle-mAP".to_string(), middle.map_average),
                ("MR-long-mAP".to_string(), long.map_average),
                ("MR-full-R1@0.5".to_string(), full.r1[0]),
                ("MR-full-R1@0.7".to_string(), full.r1[4]),
            ];
            moments.sort_by(|a, b| a.0.cmp(&b.0));
            brief.extend(moments);
        }
        for h in &self.highlights {
            brief.push((format!("HL-min-{}-mAP", h.level), h.map));
            brief.push((format!("HL-min-{}-Hit1", h.level), h.hit1));
        }
        brief
    }
}

/// Scores `predictions` against `truth` as the official evaluator does. Highlight detection is
/// scored where the predictions carry saliency scores (and the ground truth has them).
pub fn evaluate(
    predictions: &[Prediction],
    truth: &[GroundTruth],
) -> Result<Metrics, BenchmarkError> {
    check_same_queries(predictions, truth)?;
    for t in truth {
        if t.windows.is_empty() {
            return Err(BenchmarkError::NoWindow(t.qid.clone()));
        }
    }
    for p in predictions {
        if p.windows.is_empty() {
            return Err(BenchmarkError::NoPrediction(p.qid.clone()));
        }
    }
    let mut moments = Vec::new();
    for (range, above, at_most) in LENGTH_RANGES {
        let (preds, gts) = in_range(predictions, truth, above, at_most);
        moments.push(MomentScores {
            range,
            queries: gts.len(),
            ..moment_scores(&preds, &gts)
        });
    }
    let with_saliency = predictions
        .iter()
        .filter(|p| !p.saliency.is_empty())
        .count();
    let highlights = match with_saliency {
        0 => Vec::new(),
        n if n == predictions.len() => highlight_scores(predictions, truth)?,
        _ => return Err(BenchmarkError::MixedSaliency),
    };
    Ok(Metrics {
        moments,
        highlights,
    })
}

fn check_same_queries(
    predictions: &[Prediction],
    truth: &[GroundTruth],
) -> Result<(), BenchmarkError> {
    let predicted: HashSet<&str> = predictions.iter().map(|p| p.qid.as_str()).collect();
    let truths: HashSet<&str> = truth.iter().map(|t| t.qid.as_str()).collect();
    if predicted != truths {
        let mut example: Vec<&str> = predicted.symmetric_difference(&truths).copied().collect();
        example.sort_unstable();
        return Err(BenchmarkError::QueriesDiffer {
            predicted: predicted.len(),
            truth: truths.len(),
            example: example.first().copied().unwrap_or_default().to_string(),
        });
    }
    if truth.is_empty() {
        return Err(BenchmarkError::Empty);
    }
    Ok(())
}

/// The queries with a ground-truth window whose length is in (`above`, `at_most`], those
/// windows only, and their predictions (the evaluator's `get_data_by_range`; the full range
/// is everything).
fn in_range<'a>(
    predictions: &'a [Prediction],
    truth: &'a [GroundTruth],
    above: f64,
    at_most: f64,
) -> (Vec<&'a Prediction>, Vec<GroundTruth>) {
    if above == 0.0 && at_most == 150.0 {
        return (predictions.iter().collect(), truth.to_vec());
    }
    let mut kept = Vec::new();
    let mut qids = HashSet::new();
    for t in truth {
        let windows: Vec<[f64; 2]> = t
            .windows
            .iter()
            .copied()
            .filter(|w| above < w[1] - w[0] && w[1] - w[0] <= at_most)
            .collect();
        if !windows.is_empty() {
            qids.insert(t.qid.as_str());
            kept.push(GroundTruth {
                windows,
                ..t.clone()
            });
        }
    }
    let preds = predictions
        .iter()
        .filter(|p| qids.contains(p.qid.as_str()))
        .collect();
    (preds, kept)
}

fn moment_scores(predictions: &[&Prediction], truth: &[GroundTruth]) -> MomentScores {
    let mut map = [f64::NAN; 10];
    let mut r1 = [f64::NAN; 10];
    if truth.is_empty() {
        // The evaluator averages nothing: NaN, printed as such.
        return MomentScores {
            range: "",
            queries: 0,
            map,
            map_average: f64::NAN,
            r1,
        };
    }
    let by_qid: HashMap<&str, &GroundTruth> = truth.iter().map(|t| (t.qid.as_str(), t)).collect();
    // mAP: per query, in the order the predictions list them (a later duplicate replaces the
    // earlier one's result but keeps its place, as a Python dict does).
    let mut order: Vec<&str> = Vec::new();
    let mut aps: HashMap<&str, [f64; 10]> = HashMap::new();
    let mut windows_by_qid: HashMap<&str, Vec<[f64; 3]>> = HashMap::new();
    for p in predictions {
        let windows = windows_by_qid.entry(p.qid.as_str()).or_insert_with(|| {
            order.push(p.qid.as_str());
            Vec::new()
        });
        windows.extend(p.windows.iter().take(MAX_PREDICTED_WINDOWS));
    }
    for qid in &order {
        let gts: &[[f64; 2]] = by_qid.get(qid).map_or(&[], |t| &t.windows);
        aps.insert(qid, average_precision_detection(gts, &windows_by_qid[qid]));
    }
    // `ap_array.mean(0)`: each threshold's column summed row after row.
    for (t, slot) in map.iter_mut().enumerate() {
        let sum = order.iter().fold(0.0, |s, q| s + aps[q][t]);
        *slot = sum / order.len() as f64;
    }
    let map_average = percent(numpy_mean(&map));
    let map = map.map(percent);

    // R1: the first predicted window against the ground-truth window it overlaps most.
    let mut first: HashMap<&str, [f64; 2]> = HashMap::new();
    let mut qids: Vec<&str> = Vec::new();
    for p in predictions {
        if first
            .insert(p.qid.as_str(), [p.windows[0][0], p.windows[0][1]])
            .is_none()
        {
            qids.push(p.qid.as_str());
        }
    }
    let mut chosen: HashMap<&str, [f64; 2]> = HashMap::new();
    for t in truth {
        let Some(pred) = first.get(t.qid.as_str()) else {
            continue;
        };
        let ious: Vec<f64> = t.windows.iter().map(|g| iou_cross(*pred, *g)).collect();
        chosen.insert(t.qid.as_str(), t.windows[numpy_argmax(&ious)]);
    }
    let paired: Vec<f64> = qids
        .iter()
        .map(|q| iou_hull(first[q], chosen.get(q).copied().unwrap_or([f64::NAN; 2])))
        .collect();
    for (t, slot) in r1.iter_mut().enumerate() {
        let hits: Vec<f64> = paired
            .iter()
            .map(|&iou| f64::from(u8::from(iou >= IOU_THRESHOLDS[t])))
            .collect();
        *slot = percent(numpy_mean(&hits));
    }
    MomentScores {
        range: "",
        queries: truth.len(),
        map,
        map_average,
        r1,
    }
}

/// IoU of two windows (`compute_temporal_iou_batch_cross`): intersection over the sum of the
/// lengths less the intersection; 0/0 is NaN.
fn iou_cross(a: [f64; 2], b: [f64; 2]) -> f64 {
    let inter = (a[1].min(b[1]) - a[0].max(b[0])).max(0.0);
    let union = (a[1] - a[0]) + (b[1] - b[0]) - inter;
    inter / union
}

/// R1's IoU (`compute_temporal_iou_batch_paired`): over the hull of the two windows, 0 where
/// the hull is empty.
fn iou_hull(a: [f64; 2], b: [f64; 2]) -> f64 {
    let inter = (a[1].min(b[1]) - a[0].max(b[0])).max(0.0);
    let union = a[1].max(b[1]) - a[0].min(b[0]);
    if union != 0.0 {
        inter / union
    } else {
        0.0
    }
}

/// Indices of `values` from the largest down, as `values.argsort()[::-1]` orders them for the
/// few windows of a query (NumPy sorts fewer than 17 by insertion: ties keep their order, so
/// reversed, the later comes first; NaN sorts last, so first here).
fn descending_order(values: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (values[a], values[b]);
        match (x.is_nan(), y.is_nan()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            (false, false) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
        }
    });
    order.reverse();
    order
}

/// `compute_average_precision_detection` for one query: AP at each IoU threshold of its
/// predicted windows (best score first; equal scores in the order given) against its
/// ground-truth windows, each matched once.
fn average_precision_detection(truth: &[[f64; 2]], predicted: &[[f64; 3]]) -> [f64; 10] {
    let mut ap = [0.0; 10];
    if predicted.is_empty() {
        return ap;
    }
    let mut predicted = predicted.to_vec();
    // A stable sort on -score, as Python's.
    predicted.sort_by(|a, b| {
        (-a[2])
            .partial_cmp(&-b[2])
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let n = predicted.len();
    let mut tp = vec![[0.0f64; 10]; n];
    let mut fp = vec![[0.0f64; 10]; n];
    let mut locked = vec![[false; 10]; truth.len()];
    for (i, p) in predicted.iter().enumerate() {
        if truth.is_empty() {
            fp[i] = [1.0; 10];
            continue;
        }
        let ious: Vec<f64> = truth.iter().map(|g| iou_cross([p[0], p[1]], *g)).collect();
        let order = descending_order(&ious);
        for (t, &threshold) in IOU_THRESHOLDS.iter().enumerate() {
            for &j in &order {
                if ious[j] < threshold {
                    fp[i][t] = 1.0;
                    break;
                }
                if locked[j][t] {
                    continue;
                }
                tp[i][t] = 1.0;
                locked[j][t] = true;
                break;
            }
            if fp[i][t] == 0.0 && tp[i][t] == 0.0 {
                fp[i][t] = 1.0;
            }
        }
    }
    let positives = truth.len() as f64;
    for (t, slot) in ap.iter_mut().enumerate() {
        let (mut tps, mut fps) = (0.0, 0.0);
        let mut precision = Vec::with_capacity(n);
        let mut recall = Vec::with_capacity(n);
        for i in 0..n {
            tps += tp[i][t];
            fps += fp[i][t];
            recall.push(tps / positives);
            precision.push(tps / (tps + fps));
        }
        *slot = interpolated_precision_recall(&precision, &recall);
    }
    ap
}

/// VOC 2011's interpolated AP (`interpolated_precision_recall`).
fn interpolated_precision_recall(precision: &[f64], recall: &[f64]) -> f64 {
    let mut p = Vec::with_capacity(precision.len() + 2);
    p.push(0.0);
    p.extend_from_slice(precision);
    p.push(0.0);
    let mut r = Vec::with_capacity(recall.len() + 2);
    r.push(0.0);
    r.extend_from_slice(recall);
    r.push(1.0);
    for i in (0..p.len() - 1).rev() {
        // Python's max(a, b) keeps a unless b > a.
        if p[i + 1] > p[i] {
            p[i] = p[i + 1];
        }
    }
    let terms: Vec<f64> = (1..r.len())
        .filter(|&i| r[i] != r[i - 1])
        .map(|i| (r[i] - r[i - 1]) * p[i])
        .collect();
    numpy_sum(&terms)
}

/// Highlight detection at the three saliency levels (`eval_highlight`).
fn highlight_scores(
    predictions: &[Prediction],
    truth: &[GroundTruth],
) -> Result<Vec<HighlightScores>, BenchmarkError> {
    // The ground truth's clips, 3 annotators each (`mk_gt_scores`).
    let mut clips: HashMap<&str, Vec<[u8; 3]>> = HashMap::new();
    for t in truth {
        if t.relevant_clip_ids.len() != t.saliency_scores.len() {
            return Err(BenchmarkError::SaliencyMismatch(t.qid.clone()));
        }
        let count = (t.duration / 2.0) as usize;
        if count == 0 {
            return Err(BenchmarkError::NoClips(t.qid.clone()));
        }
        let mut scores = vec![[0u8; 3]; count];
        for (&clip, &s) in t.relevant_clip_ids.iter().zip(&t.saliency_scores) {
            let slot = scores
                .get_mut(clip)
                .ok_or_else(|| BenchmarkError::ClipPastEnd {
                    qid: t.qid.clone(),
                    clip,
                    duration: t.duration,
                    clips: count,
                })?;
            *slot = s;
        }
        clips.insert(t.qid.as_str(), scores);
    }
    // `{d["qid"]: d for d in submission}`: the last of duplicates, in the first one's place.
    let mut order: Vec<&str> = Vec::new();
    let mut latest: HashMap<&str, &Prediction> = HashMap::new();
    for p in predictions {
        if latest.insert(p.qid.as_str(), p).is_none() {
            order.push(p.qid.as_str());
        }
    }
    let queries: Vec<(&[[u8; 3]], &[f64])> = order
        .iter()
        .map(|qid| (clips[qid].as_slice(), latest[qid].saliency.as_slice()))
        .collect();
    let mut levels = Vec::new();
    for (level, least) in SALIENCY_LEVELS {
        let (map, hit1) = level_scores(&queries, least);
        levels.push(HighlightScores {
            level,
            map: percent(map),
            hit1: percent(hit1),
        });
    }
    Ok(levels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numpy_sums_pairwise_beyond_eight_values() {
        // Eight partial sums: 1e16 + 1 + 1 … loses the ones in order, keeps some pairwise.
        let mut values = vec![1.0; 16];
        values[0] = 1e16;
        let sequential = values.iter().fold(0.0, |s, v| s + v);
        assert_eq!(sequential, 1e16);
        assert_eq!(numpy_sum(&values), 1e16 + 14.0);
        assert_eq!(numpy_sum(&[0.1, 0.2, 0.3]), 0.1 + 0.2 + 0.3);
    }

    #[test]
    fn percent_rounds_the_binary_value_half_to_even_as_python_does() {
        assert_eq!(percent(0.03125), 3.12);
        assert_eq!(percent(0.03375), 3.38);
        assert_eq!(percent(2.0 / 3.0), 66.67);
    }

    fn gt(qid: &str, windows: &[[f64; 2]]) -> GroundTruth {
        GroundTruth {
            qid: qid.into(),
            duration: 150.0,
            windows: windows.to_vec(),
            relevant_clip_ids: vec![],
            saliency_scores: vec![],
        }
    }

    fn pred(qid: &str, windows: &[[f64; 3]]) -> Prediction {
        Prediction {
            qid: qid.into(),
            windows: windows.to_vec(),
            saliency: vec![],
        }
    }

    #[test]
    fn a_perfect_answer_scores_100_and_a_missing_query_is_refused() {
        let truth = [
            gt("1", &[[10.0, 21.0]]),
            gt("2", &[[40.0, 80.0], [90.0, 94.0]]),
        ];
        let preds = [
            pred("1", &[[10.0, 21.0, 0.9]]),
            pred("2", &[[40.0, 80.0, 0.8], [90.0, 94.0, 0.7]]),
        ];
        let metrics = evaluate(&preds, &truth).unwrap();
        let full = &metrics.moments[3];
        assert_eq!(full.range, "full");
        assert_eq!((full.map_average, full.r1[9]), (100.0, 100.0));
        assert_eq!(metrics.moments[0].queries, 1, "short: query 2's 4-s window");
        assert!(metrics.highlights.is_empty());
        let error = evaluate(&preds[..1], &truth).unwrap_err();
        assert!(error.to_string().contains("2 is in one"), "{error}");
    }
}
