//! Highlight detection's official metrics (the evaluator's `eval_highlight`): over a video's
//! 2-second clips, each annotated by three people from 0 to 4, the clip a model scores highest
//! (HIT@1) and the average precision of its clip scores (mAP), at three minimum saliencies.
//! Every step is the evaluator's, as in the moment metrics.

use super::numeric::{numpy_argmax, numpy_mean};

/// Highlight detection at one level, before rounding: (mAP, HIT@1) over `queries`, each its
/// clips' three annotations and its predicted clip scores, for clips annotated `least` or
/// more.
pub(super) fn level_scores(queries: &[(&[[u8; 3]], &[f64])], least: u8) -> (f64, f64) {
    let relevant = |clip: &[u8; 3], a: usize| f64::from(u8::from(clip[a] >= least));
    let mut hits = Vec::with_capacity(queries.len());
    let mut aps = Vec::with_capacity(queries.len() * 3);
    for &(gt, predicted) in queries {
        let top = numpy_argmax(predicted);
        let hit = gt
            .get(top)
            .map_or(0.0, |c| (0..3).map(|a| relevant(c, a)).fold(0.0, f64::max));
        hits.push(hit);
        for a in 0..3 {
            let truth: Vec<f64> = gt.iter().map(|c| relevant(c, a)).collect();
            // The scores cut or padded with zeros to the clips' number.
            let mut scores = predicted.to_vec();
            scores.resize(truth.len(), 0.0);
            aps.push(clip_average_precision(&truth, &scores));
        }
    }
    (numpy_mean(&aps), numpy_mean(&hits))
}

/// The evaluator's `get_ap` (interpolated, every recalled sample) over scikit-learn's
/// `precision_recall_curve`; all-negative is 0 and all-positive is 1.
fn clip_average_precision(truth: &[f64], scores: &[f64]) -> f64 {
    if truth.iter().all(|&t| t == truth[0]) {
        return if truth[0] == 0.0 { 0.0 } else { 1.0 };
    }
    // `_binary_clf_curve`: scores from the highest down (a stable sort, reversed: equal
    // scores from the last down), cut where the score changes.
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| {
        scores[a]
            .partial_cmp(&scores[b])
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    order.reverse();
    let mut tps = Vec::new();
    let mut fps = Vec::new();
    let mut cumulative = 0.0;
    for (k, &i) in order.iter().enumerate() {
        cumulative += truth[i];
        let last = k + 1 == order.len();
        if last || scores[order[k + 1]] != scores[i] {
            tps.push(cumulative);
            fps.push((k + 1) as f64 - cumulative);
        }
    }
    let total = *tps.last().unwrap_or(&0.0);
    // Lowest threshold first, as `precision_recall_curve` returns them, then (1, 0).
    let mut precision: Vec<f64> = tps
        .iter()
        .zip(&fps)
        .rev()
        .map(|(&tp, &fp)| if tp + fp != 0.0 { tp / (tp + fp) } else { 0.0 })
        .collect();
    precision.push(1.0);
    let mut recall: Vec<f32> = tps.iter().rev().map(|&tp| (tp / total) as f32).collect();
    recall.push(0.0);
    for i in 1..precision.len() {
        if precision[i - 1] > precision[i] {
            precision[i] = precision[i - 1];
        }
    }
    let picked: Vec<f64> = (0..recall.len() - 1)
        .filter(|&i| recall[i + 1] - recall[i] != 0.0)
        .map(|i| precision[i])
        .collect();
    numpy_mean(&picked)
}
