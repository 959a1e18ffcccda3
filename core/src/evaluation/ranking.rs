//! Frame-level metrics of scores against ground truth, exactly as scikit-learn computes them:
//! `average_precision_score`, `roc_auc_score` (ties averaged), and the best F1 over
//! `precision_recall_curve`'s thresholds.
//!
//! Invariants: thresholds are the distinct scores; a frame is predicted positive at threshold
//! `t` when its score is `>= t` (scikit-learn's rule); tied scores move together. A metric that
//! needs positives (or negatives) and has none is `None`, never a made-up number.

use serde::{Deserialize, Serialize};

/// Precision and recall at one threshold, and their F1.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct F1Point {
    pub threshold: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

/// The cumulative true and false positives at each distinct score, highest first:
/// `(score, true positives, false positives)` once every frame of that score is counted.
fn counts_by_threshold(truth: &[bool], scores: &[f64]) -> Vec<(f64, u64, u64)> {
    debug_assert_eq!(truth.len(), scores.len());
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut out: Vec<(f64, u64, u64)> = Vec::new();
    let (mut tp, mut fp) = (0u64, 0u64);
    for (k, &i) in order.iter().enumerate() {
        if truth[i] {
            tp += 1;
        } else {
            fp += 1;
        }
        let last_of_its_score = order
            .get(k + 1)
            .is_none_or(|&next| scores[next] != scores[i]);
        if last_of_its_score {
            out.push((scores[i], tp, fp));
        }
    }
    out
}

/// scikit-learn's `average_precision_score`: the sum over thresholds (highest first) of the
/// recall gained times the precision there. `None` without positives.
pub fn average_precision(truth: &[bool], scores: &[f64]) -> Option<f64> {
    let positives = truth.iter().filter(|&&t| t).count() as u64;
    if positives == 0 {
        return None;
    }
    let mut previous_recall = 0.0;
    let mut sum = 0.0;
    for (_, tp, fp) in counts_by_threshold(truth, scores) {
        let recall = tp as f64 / positives as f64;
        let precision = tp as f64 / (tp + fp) as f64;
        sum += (recall - previous_recall) * precision;
        previous_recall = recall;
    }
    Some(sum)
}

/// scikit-learn's `roc_auc_score` for binary truth: the probability that a positive frame
/// scores above a negative one, ties counting half (the Mann-Whitney U with average ranks, which
/// equals the area under the ROC curve with tied scores grouped). `None` without positives or
/// without negatives.
pub fn roc_auc(truth: &[bool], scores: &[f64]) -> Option<f64> {
    let positives = truth.iter().filter(|&&t| t).count();
    let negatives = truth.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Average ranks (1-based) over runs of equal scores.
    let mut rank_sum_of_positives = 0.0;
    let mut k = 0;
    while k < order.len() {
        let mut end = k + 1;
        while end < order.len() && scores[order[end]] == scores[order[k]] {
            end += 1;
        }
        let average_rank = (k + 1 + end) as f64 / 2.0;
        let tied_positives = order[k..end].iter().filter(|&&i| truth[i]).count();
        rank_sum_of_positives += average_rank * tied_positives as f64;
        k = end;
    }
    let (p, n) = (positives as f64, negatives as f64);
    Some((rank_sum_of_positives - p * (p + 1.0) / 2.0) / (p * n))
}

/// The threshold with the best F1 among the distinct scores, with its precision and recall;
/// among equal F1s the highest threshold (the fewest frames predicted). `None` without
/// positives.
pub fn best_f1(truth: &[bool], scores: &[f64]) -> Option<F1Point> {
    let positives = truth.iter().filter(|&&t| t).count() as u64;
    if positives == 0 {
        return None;
    }
    let mut best: Option<F1Point> = None;
    for (threshold, tp, fp) in counts_by_threshold(truth, scores) {
        let precision = tp as f64 / (tp + fp) as f64;
        let recall = tp as f64 / positives as f64;
        keep_best_f1(&mut best, threshold, precision, recall, tp);
    }
    best
}

/// Keeps in `best` the point with the highest F1 so far (the first of equals).
fn keep_best_f1(best: &mut Option<F1Point>, threshold: f64, precision: f64, recall: f64, tp: u64) {
    let f1 = if tp == 0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    };
    if best.is_none_or(|b| f1 > b.f1) {
        *best = Some(F1Point {
            threshold,
            precision,
            recall,
            f1,
        });
    }
}

/// AP, ROC AUC and the best F1 from one sort of the scores: what [`average_precision`],
/// [`roc_auc`] and [`best_f1`] give one at a time (for the many scorings of one set of frames
/// an adapted prompt is measured on).
pub fn summary(truth: &[bool], scores: &[f64]) -> (Option<f64>, Option<f64>, Option<F1Point>) {
    let positives = truth.iter().filter(|&&t| t).count() as u64;
    let negatives = truth.len() as u64 - positives;
    if positives == 0 {
        return (None, None, None);
    }
    let (mut ap, mut pairs) = (0.0, 0.0);
    let (mut previous_recall, mut fp_before) = (0.0, 0u64);
    let mut tp_before = 0u64;
    let mut best: Option<F1Point> = None;
    for (threshold, tp, fp) in counts_by_threshold(truth, scores) {
        let recall = tp as f64 / positives as f64;
        let precision = tp as f64 / (tp + fp) as f64;
        ap += (recall - previous_recall) * precision;
        previous_recall = recall;
        // This score's positives beat the negatives below it and tie with its own (half).
        let (tp_here, fp_here) = (tp - tp_before, fp - fp_before);
        pairs += tp_here as f64 * ((negatives - fp) as f64 + 0.5 * fp_here as f64);
        tp_before = tp;
        fp_before = fp;
        keep_best_f1(&mut best, threshold, precision, recall, tp);
    }
    let auc = (negatives > 0).then(|| pairs / (positives as f64 * negatives as f64));
    (Some(ap), auc, best)
}

/// The precision–recall curve, `(recall, precision)` from the highest threshold down, starting
/// at (0, 1) as scikit-learn's does; at most about `max_points` points (a step curve keeps its
/// corners: the points kept are spread evenly over the thresholds, the last always kept).
pub fn pr_curve(truth: &[bool], scores: &[f64], max_points: usize) -> Vec<(f64, f64)> {
    let positives = truth.iter().filter(|&&t| t).count() as u64;
    if positives == 0 {
        return Vec::new();
    }
    let counts = counts_by_threshold(truth, scores);
    let step = counts.len().div_ceil(max_points.max(1)).max(1);
    let mut out = vec![(0.0, 1.0)];
    for (k, &(_, tp, fp)) in counts.iter().enumerate() {
        if k % step == 0 || k + 1 == counts.len() {
            out.push((tp as f64 / positives as f64, tp as f64 / (tp + fp) as f64));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    /// scikit-learn's own examples (their docstrings) and values worked out by hand.
    #[test]
    fn the_metrics_match_scikit_learns_examples() {
        let truth = [false, false, true, true];
        let scores = [0.1, 0.4, 0.35, 0.8];
        // average_precision_score(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
        assert!(close(
            average_precision(&truth, &scores).unwrap(),
            0.8333333333333333
        ));
        // roc_auc_score: 3 of the 4 positive-negative pairs are ordered right.
        assert!(close(roc_auc(&truth, &scores).unwrap(), 0.75));
        let best = best_f1(&truth, &scores).unwrap();
        // At 0.35: both positives and one negative predicted: P 2/3, R 1, F1 0.8.
        assert_eq!(best.threshold, 0.35);
        assert!(close(best.f1, 0.8) && close(best.precision, 2.0 / 3.0) && best.recall == 1.0);
    }

    #[test]
    fn ties_move_together_and_count_half() {
        // All scores equal: AUC 0.5, AP = the positive rate, one threshold.
        let truth = [true, false, false, true, false];
        let scores = [0.3; 5];
        assert!(close(roc_auc(&truth, &scores).unwrap(), 0.5));
        assert!(close(average_precision(&truth, &scores).unwrap(), 0.4));
        assert_eq!(pr_curve(&truth, &scores, 100), vec![(0.0, 1.0), (1.0, 0.4)]);
        // A positive tied with a negative at the top: half a pair each way.
        let truth = [true, false, false];
        let scores = [0.9, 0.9, 0.1];
        assert!(close(roc_auc(&truth, &scores).unwrap(), 0.75));
        assert!(close(average_precision(&truth, &scores).unwrap(), 0.5));
    }

    #[test]
    fn one_positive_frame_and_the_undefined_cases() {
        let truth = [false, true, false, false];
        let scores = [0.2, 0.5, 0.6, 0.1];
        // The positive ranks second: AP = 1/2, AUC = 2/3.
        assert!(close(average_precision(&truth, &scores).unwrap(), 0.5));
        assert!(close(roc_auc(&truth, &scores).unwrap(), 2.0 / 3.0));
        // All positive: AP is 1 (every prediction is right), AUC undefined.
        let all = [true; 3];
        assert!(close(average_precision(&all, &scores[..3]).unwrap(), 1.0));
        assert_eq!(roc_auc(&all, &scores[..3]), None);
        // All negative: AP, AUC and F1 undefined.
        let none = [false; 3];
        assert_eq!(average_precision(&none, &scores[..3]), None);
        assert_eq!(roc_auc(&none, &scores[..3]), None);
        assert_eq!(best_f1(&none, &scores[..3]), None);
        assert!(pr_curve(&none, &scores[..3], 10).is_empty());
    }

    #[test]
    fn the_summary_is_the_three_metrics_from_one_sort() {
        for (truth, scores) in [
            (vec![false, false, true, true], vec![0.1, 0.4, 0.35, 0.8]),
            (vec![true, false, false, true, false], vec![0.3; 5]),
            (vec![true, false, false], vec![0.9, 0.9, 0.1]),
            (
                (0..500).map(|i| i % 7 == 0).collect::<Vec<_>>(),
                (0..500)
                    .map(|i| ((i * 7919) % 101) as f64)
                    .collect::<Vec<_>>(),
            ),
        ] {
            let (ap, auc, f1) = summary(&truth, &scores);
            assert!((ap.unwrap() - average_precision(&truth, &scores).unwrap()).abs() < 1e-12);
            assert!((auc.unwrap() - roc_auc(&truth, &scores).unwrap()).abs() < 1e-12);
            assert_eq!(f1, best_f1(&truth, &scores));
        }
        assert_eq!(summary(&[false, false], &[0.1, 0.2]), (None, None, None));
        assert_eq!(summary(&[true, true], &[0.1, 0.2]).1, None);
    }

    #[test]
    fn a_long_curve_is_thinned_but_keeps_its_ends() {
        let truth: Vec<bool> = (0..10_000).map(|i| i % 3 == 0).collect();
        let scores: Vec<f64> = (0..10_000).map(|i| ((i * 7919) % 10_007) as f64).collect();
        let curve = pr_curve(&truth, &scores, 200);
        assert!(curve.len() <= 202, "{}", curve.len());
        assert_eq!(curve[0], (0.0, 1.0));
        assert_eq!(curve.last().unwrap().0, 1.0, "ends at full recall");
    }
}
