//! A confidence interval for the difference in average precision between two models on the
//! same frames, by a block bootstrap: neighbouring frames of a video are not independent
//! samples, so what is resampled (with replacement) are the labelled segments and the gaps
//! between them, each whole.
//!
//! Invariant: deterministic for a given seed (the page and the CLI print the same interval).


/// Resamples drawn.
pub const ROUNDS: usize = 1000;
/// The seed every interval is drawn with.
pub const SEED: u64 = 0x5EED_0F_AB_CDEF;

/// A small, fixed pseudo-random sequence (xorshift64*): the interval must not change between
/// runs or machines.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n as u64) as usize
    }
}

/// The runs of equal truth in frame order: `[start, end)` positions into the evaluated frames.
pub fn blocks(truth: &[bool]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for k in 1..=truth.len() {
        if k == truth.len() || truth[k] != truth[start] {
            out.push((start, k));
            start = k;
        }
    }
    out
}

/// The 95 % interval of AP(a) − AP(b) over block resamples; `None` when fewer than half the
/// resamples have both a positive and a negative frame (too few segments to say anything).
///
/// A resample is the blocks drawn, concatenated; its AP equals the AP of every frame weighted
/// by how many times its block was drawn, which needs no sort per resample: the frames are
/// sorted by score once, and each resample is one pass (a second at a million frames and a
/// thousand resamples would otherwise be minutes).
pub fn ap_difference_interval(truth: &[bool], a: &[f64], b: &[f64], seed: u64) -> Option<(f64, f64)> {
    let blocks = blocks(truth);
    if blocks.len() < 2 {
        return None;
    }
    let mut block_of = vec![0usize; truth.len()];
    for (k, &(start, end)) in blocks.iter().enumerate() {
        block_of[start..end].fill(k);
    }
    let order_a = Ranked::new(a);
    let order_b = Ranked::new(b);
    let mut rng = Rng(seed | 1);
    let mut draws = vec![0u32; blocks.len()];
    let mut differences = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        draws.fill(0);
        for _ in 0..blocks.len() {
            draws[rng.below(blocks.len())] += 1;
        }
        let weight = |i: usize| draws[block_of[i]];
        if let (Some(x), Some(y)) = (
            order_a.weighted_ap(truth, &weight),
            order_b.weighted_ap(truth, &weight),
        ) {
            differences.push(x - y);
        }
    }
    if differences.len() < ROUNDS / 2 {
        return None;
    }
    differences.sort_by(f64::total_cmp);
    Some((percentile(&differences, 2.5), percentile(&differences, 97.5)))
}

/// Frames sorted by score, highest first, with where each run of equal scores ends.
struct Ranked {
    order: Vec<usize>,
    /// `order[k]` is the last of its score when `last_of_score[k]`.
    last_of_score: Vec<bool>,
}

impl Ranked {
    fn new(scores: &[f64]) -> Self {
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&x, &y| scores[y].total_cmp(&scores[x]));
        let last_of_score = (0..order.len())
            .map(|k| {
                order
                    .get(k + 1)
                    .is_none_or(|&next| scores[next] != scores[order[k]])
            })
            .collect();
        Self {
            order,
            last_of_score,
        }
    }

    /// Average precision with frame `i` counted `weight(i)` times (0: left out): what
    /// `ranking::average_precision` gives on the frames repeated that often. `None` without a
    /// positive, or without a negative (a resample of positives only says nothing).
    fn weighted_ap(&self, truth: &[bool], weight: &dyn Fn(usize) -> u32) -> Option<f64> {
        let positives: u64 = (0..truth.len())
            .filter(|&i| truth[i])
            .map(|i| u64::from(weight(i)))
            .sum();
        let total: u64 = (0..truth.len()).map(|i| u64::from(weight(i))).sum();
        if positives == 0 || positives == total {
            return None;
        }
        let (mut tp, mut fp) = (0u64, 0u64);
        let (mut previous_recall, mut sum) = (0.0, 0.0);
        for (k, &i) in self.order.iter().enumerate() {
            let w = u64::from(weight(i));
            if truth[i] {
                tp += w;
            } else {
                fp += w;
            }
            if self.last_of_score[k] && tp + fp > 0 {
                let recall = tp as f64 / positives as f64;
                sum += (recall - previous_recall) * (tp as f64 / (tp + fp) as f64);
                previous_recall = recall;
            }
        }
        Some(sum)
    }
}

/// NumPy's default (linear) percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let position = q / 100.0 * (sorted.len() - 1) as f64;
    let (low, high) = (position.floor() as usize, position.ceil() as usize);
    sorted[low] + (sorted[high] - sorted[low]) * (position - low as f64)
}

#[cfg(test)]
mod tests {
    use super::super::ranking::average_precision;
    use super::*;

    #[test]
    fn blocks_are_the_segments_and_the_gaps() {
        assert_eq!(
            blocks(&[false, false, true, true, true, false, true]),
            vec![(0, 2), (2, 5), (5, 6), (6, 7)]
        );
        assert!(blocks(&[]).is_empty());
    }

    #[test]
    fn a_better_model_has_an_interval_above_zero_and_the_interval_repeats() {
        // Ten segments of 5 frames between gaps of 10: model a ranks the segments on top, b
        // only barely.
        let mut truth = Vec::new();
        for _ in 0..10 {
            truth.extend([false; 10]);
            truth.extend([true; 5]);
        }
        let a: Vec<f64> = truth.iter().enumerate().map(|(i, &t)| if t { 0.9 } else { 0.1 + (i % 7) as f64 * 0.01 }).collect();
        let b: Vec<f64> = truth.iter().enumerate().map(|(i, &t)| if t { 0.5 } else { (i % 11) as f64 * 0.06 }).collect();
        let (low, high) = ap_difference_interval(&truth, &a, &b, SEED).unwrap();
        assert!(low > 0.0 && high >= low, "{low} {high}");
        assert_eq!(ap_difference_interval(&truth, &a, &b, SEED), Some((low, high)));
        // The same model twice: exactly zero.
        assert_eq!(ap_difference_interval(&truth, &a, &a, SEED), Some((0.0, 0.0)));
        // One block: nothing to resample.
        assert_eq!(ap_difference_interval(&[true; 4], &a[..4], &b[..4], SEED), None);
    }

    #[test]
    fn a_weighted_ap_is_the_ap_of_the_frames_repeated() {
        let truth = [false, true, true, false, true, false];
        let scores = [0.3, 0.9, 0.3, 0.5, 0.1, 0.7];
        let weights = [2u32, 0, 3, 1, 1, 2];
        let (mut t, mut s) = (Vec::new(), Vec::new());
        for i in 0..6 {
            for _ in 0..weights[i] {
                t.push(truth[i]);
                s.push(scores[i]);
            }
        }
        let repeated = average_precision(&t, &s).unwrap();
        let weighted = Ranked::new(&scores).weighted_ap(&truth, &|i| weights[i]).unwrap();
        assert!((repeated - weighted).abs() < 1e-12, "{repeated} {weighted}");
    }

    #[test]
    fn percentiles_interpolate_as_numpy_does() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 50.0), 2.5);
        assert_eq!(percentile(&v, 2.5), 1.075);
        assert_eq!(percentile(&v, 100.0), 4.0);
    }
}
