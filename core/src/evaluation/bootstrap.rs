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
/// sorted by score once, and each resample is one pass over them (a sort per resample takes
/// seconds on an hour of frames).
pub fn ap_difference_interval(
    truth: &[bool],
    a: &[f64],
    b: &[f64],
    seed: u64,
) -> Option<(f64, f64)> {
    let [ap, _, _] = differences(truth, &blocks(truth), a, b, seed);
    ap.map(|s| (s.low, s.high))
}

/// A difference of one metric between two scorings of the same frames: on all frames
/// (`point`), and over the resamples (their mean and the 2.5th and 97.5th percentiles).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Spread {
    pub point: f64,
    pub mean: f64,
    pub low: f64,
    pub high: f64,
}

/// AP, ROC AUC and best F1 of `a` minus those of `b` over [`ROUNDS`] resamples of `blocks`
/// (`[start, end)` positions into the frames, which must tile them: runs of equal truth,
/// cut where the video changes). Each `None` when fewer than half the resamples have both a
/// positive and a negative frame.
pub fn differences(
    truth: &[bool],
    blocks: &[(usize, usize)],
    a: &[f64],
    b: &[f64],
    seed: u64,
) -> [Option<Spread>; 3] {
    if blocks.len() < 2 {
        return [None; 3];
    }
    let mut block_of = vec![0u32; truth.len()];
    for (k, &(start, end)) in blocks.iter().enumerate() {
        block_of[start..end].fill(k as u32);
    }
    let order_a = Ranked::new(a, truth, &block_of);
    let order_b = Ranked::new(b, truth, &block_of);
    // Blocks are runs of equal truth: a resample's positives and frames come from the draws.
    let lengths: Vec<u64> = blocks.iter().map(|&(s, e)| (e - s) as u64).collect();
    let positive: Vec<bool> = blocks.iter().map(|&(s, _)| truth[s]).collect();
    // Every resample's draws first, from one sequence: the interval does not depend on how
    // the resamples are then shared between threads.
    let mut rng = Rng(seed | 1);
    let resamples: Vec<Vec<u32>> = (0..ROUNDS)
        .map(|_| {
            let mut draws = vec![0u32; blocks.len()];
            for _ in 0..blocks.len() {
                draws[rng.below(blocks.len())] += 1;
            }
            draws
        })
        .collect();
    let difference = |draws: &Vec<u32>| -> Option<[f64; 3]> {
        let (mut positives, mut total) = (0u64, 0u64);
        for k in 0..blocks.len() {
            let frames = u64::from(draws[k]) * lengths[k];
            total += frames;
            if positive[k] {
                positives += frames;
            }
        }
        // A resample of one kind of frame says nothing about ranking.
        (positives > 0 && positives < total).then(|| {
            let x = order_a.weighted(draws, positives, total - positives);
            let y = order_b.weighted(draws, positives, total - positives);
            [x[0] - y[0], x[1] - y[1], x[2] - y[2]]
        })
    };
    let found: Vec<[f64; 3]> = in_parallel(&resamples, difference);
    if found.len() < ROUNDS / 2 {
        return [None; 3];
    }
    let everything = vec![1u32; blocks.len()];
    let positives = truth.iter().filter(|&&t| t).count() as u64;
    let point = (positives > 0 && (positives as usize) < truth.len()).then(|| {
        let negatives = truth.len() as u64 - positives;
        let x = order_a.weighted(&everything, positives, negatives);
        let y = order_b.weighted(&everything, positives, negatives);
        [x[0] - y[0], x[1] - y[1], x[2] - y[2]]
    });
    let Some(point) = point else {
        return [None; 3];
    };
    std::array::from_fn(|m| {
        let mut values: Vec<f64> = found.iter().map(|d| d[m]).collect();
        values.sort_by(f64::total_cmp);
        Some(Spread {
            point: point[m],
            mean: values.iter().sum::<f64>() / values.len() as f64,
            low: percentile(&values, 2.5),
            high: percentile(&values, 97.5),
        })
    })
}

/// `f` of every item, in order, on as many threads as the machine has (one in the browser).
fn in_parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> Option<R> + Sync) -> Vec<R> {
    let threads = if cfg!(target_arch = "wasm32") {
        1
    } else {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(8)
    };
    if threads == 1 || items.len() < 2 {
        return items.iter().filter_map(&f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let parts: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(|| part.iter().filter_map(&f).collect::<Vec<R>>()))
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().unwrap_or_default())
            .collect()
    })
}

/// The frames sorted by score, highest first, as the pass over them needs them: each frame's
/// block, whether it is positive, and whether it ends a run of equal scores, packed in one
/// word (the pass reads one array, not three).
struct Ranked {
    entries: Vec<u32>,
}

/// The bits of an entry above its block.
const POSITIVE: u32 = 1 << 31;
const LAST_OF_SCORE: u32 = 1 << 30;

impl Ranked {
    fn new(scores: &[f64], truth: &[bool], block_of: &[u32]) -> Self {
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&x, &y| scores[y].total_cmp(&scores[x]));
        let entries = (0..order.len())
            .map(|k| {
                let i = order[k];
                let last = order
                    .get(k + 1)
                    .is_none_or(|&next| scores[next] != scores[i]);
                debug_assert!(block_of[i] < LAST_OF_SCORE);
                block_of[i]
                    | if truth[i] { POSITIVE } else { 0 }
                    | if last { LAST_OF_SCORE } else { 0 }
            })
            .collect();
        Self { entries }
    }

    /// AP, ROC AUC and best F1 with each frame counted as often as its block was drawn, in
    /// one pass: what `ranking` gives on the frames repeated that often. `positives` and
    /// `negatives` are the weighted counts (each at least one).
    fn weighted(&self, draws: &[u32], positives: u64, negatives: u64) -> [f64; 3] {
        let (mut tp, mut fp) = (0u64, 0u64);
        let (mut tp_before, mut fp_before) = (0u64, 0u64);
        let (mut ap, mut pairs) = (0.0, 0.0);
        // The best F1 as a fraction 2·tp / (tp + fp + positives), compared by cross-multiplying:
        // no division per threshold.
        let (mut f1_num, mut f1_den) = (0u64, 1u64);
        for &entry in &self.entries {
            let w = u64::from(draws[(entry & !(POSITIVE | LAST_OF_SCORE)) as usize]);
            if entry & POSITIVE != 0 {
                tp += w;
            } else {
                fp += w;
            }
            if entry & LAST_OF_SCORE != 0 {
                // Recall, the pairs won and F1 change only where positives join: the work is
                // done there (F1 only falls as negatives join).
                if tp > tp_before {
                    let (tp_here, fp_here) = (tp - tp_before, fp - fp_before);
                    ap += tp_here as f64 * tp as f64 / (tp + fp) as f64;
                    // This score's positives beat the negatives below it, and tie (half) with
                    // those of the same score.
                    pairs += tp_here as f64 * ((negatives - fp) as f64 + 0.5 * fp_here as f64);
                    let (num, den) = (2 * tp, tp + fp + positives);
                    if u128::from(num) * u128::from(f1_den) > u128::from(f1_num) * u128::from(den) {
                        (f1_num, f1_den) = (num, den);
                    }
                    tp_before = tp;
                }
                fp_before = fp;
            }
        }
        [
            ap / positives as f64,
            pairs / (positives as f64 * negatives as f64),
            f1_num as f64 / f1_den as f64,
        ]
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
        let a: Vec<f64> = truth
            .iter()
            .enumerate()
            .map(|(i, &t)| if t { 0.9 } else { 0.1 + (i % 7) as f64 * 0.01 })
            .collect();
        let b: Vec<f64> = truth
            .iter()
            .enumerate()
            .map(|(i, &t)| if t { 0.5 } else { (i % 11) as f64 * 0.06 })
            .collect();
        let (low, high) = ap_difference_interval(&truth, &a, &b, SEED).unwrap();
        assert!(low > 0.0 && high >= low, "{low} {high}");
        assert_eq!(
            ap_difference_interval(&truth, &a, &b, SEED),
            Some((low, high))
        );
        // The same model twice: exactly zero.
        assert_eq!(
            ap_difference_interval(&truth, &a, &a, SEED),
            Some((0.0, 0.0))
        );
        // One block: nothing to resample.
        assert_eq!(
            ap_difference_interval(&[true; 4], &a[..4], &b[..4], SEED),
            None
        );
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
        // Each frame its own block, drawn `weights[i]` times.
        let blocks: Vec<u32> = (0..6).collect();
        let positives = (0..6)
            .filter(|&i| truth[i])
            .map(|i| u64::from(weights[i]))
            .sum();
        let negatives = t.len() as u64 - positives;
        let [weighted, _, _] =
            Ranked::new(&scores, &truth, &blocks).weighted(&weights, positives, negatives);
        assert!((repeated - weighted).abs() < 1e-12, "{repeated} {weighted}");
    }

    #[test]
    fn weighted_metrics_are_those_of_the_frames_repeated() {
        use super::super::ranking::{best_f1, roc_auc};
        let truth = [false, true, true, false, true, false, true];
        let scores = [0.3, 0.9, 0.3, 0.5, 0.1, 0.7, 0.5];
        let weights = [2u32, 0, 3, 1, 1, 2, 4];
        let (mut t, mut s) = (Vec::new(), Vec::new());
        for i in 0..truth.len() {
            for _ in 0..weights[i] {
                t.push(truth[i]);
                s.push(scores[i]);
            }
        }
        let blocks: Vec<u32> = (0..truth.len() as u32).collect();
        let positives = t.iter().filter(|&&x| x).count() as u64;
        let negatives = t.len() as u64 - positives;
        let [ap, auc, f1] =
            Ranked::new(&scores, &truth, &blocks).weighted(&weights, positives, negatives);
        assert!((ap - average_precision(&t, &s).unwrap()).abs() < 1e-12);
        assert!((auc - roc_auc(&t, &s).unwrap()).abs() < 1e-12, "{auc}");
        assert!((f1 - best_f1(&t, &s).unwrap().f1).abs() < 1e-12, "{f1}");
    }

    #[test]
    fn weighted_metrics_equal_the_frames_repeated_with_ties_and_undrawn_blocks() {
        use super::super::ranking::{best_f1, roc_auc};
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for case in 0..300 {
            let n = 1 + rng.below(40);
            // Few distinct scores: many ties, some mixing the classes.
            let truth: Vec<bool> = (0..n).map(|_| rng.below(3) == 0).collect();
            let scores: Vec<f64> = (0..n).map(|_| rng.below(6) as f64 / 5.0).collect();
            let blocks: Vec<u32> = (0..n).map(|_| rng.below(8) as u32).collect();
            let draws: Vec<u32> = (0..8).map(|_| rng.below(4) as u32).collect();
            let (mut t, mut s) = (Vec::new(), Vec::new());
            for i in 0..n {
                for _ in 0..draws[blocks[i] as usize] {
                    t.push(truth[i]);
                    s.push(scores[i]);
                }
            }
            let positives = t.iter().filter(|&&x| x).count() as u64;
            let negatives = t.len() as u64 - positives;
            if positives == 0 || negatives == 0 {
                continue;
            }
            let [ap, auc, f1] =
                Ranked::new(&scores, &truth, &blocks).weighted(&draws, positives, negatives);
            let expected = (
                average_precision(&t, &s).unwrap(),
                roc_auc(&t, &s).unwrap(),
                best_f1(&t, &s).unwrap().f1,
            );
            assert!(
                (ap - expected.0).abs() < 1e-12,
                "case {case}: {ap} {expected:?}"
            );
            assert!(
                (auc - expected.1).abs() < 1e-12,
                "case {case}: {auc} {expected:?}"
            );
            assert!(
                (f1 - expected.2).abs() < 1e-12,
                "case {case}: {f1} {expected:?}"
            );
        }
    }

    #[test]
    fn the_three_differences_share_resamples_and_match_the_ap_interval() {
        let mut truth = Vec::new();
        for _ in 0..8 {
            truth.extend([false; 12]);
            truth.extend([true; 6]);
        }
        let a: Vec<f64> = (0..truth.len())
            .map(|i| if truth[i] { 0.8 } else { (i % 9) as f64 * 0.1 })
            .collect();
        let b: Vec<f64> = (0..truth.len()).map(|i| (i % 13) as f64 * 0.07).collect();
        let [ap, auc, f1] = differences(&truth, &blocks(&truth), &a, &b, SEED);
        let (ap, auc, f1) = (ap.unwrap(), auc.unwrap(), f1.unwrap());
        assert_eq!(
            ap_difference_interval(&truth, &a, &b, SEED),
            Some((ap.low, ap.high))
        );
        for s in [ap, auc, f1] {
            assert!(s.low <= s.mean && s.mean <= s.high, "{s:?}");
        }
        let point = average_precision(&truth, &a).unwrap() - average_precision(&truth, &b).unwrap();
        assert!((ap.point - point).abs() < 1e-12);
        assert!(
            auc.low > 0.0,
            "a ranks every segment above the gaps: {auc:?}"
        );
    }

    #[test]
    fn percentiles_interpolate_as_numpy_does() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 50.0), 2.5);
        assert_eq!(percentile(&v, 2.5), 1.075);
        assert_eq!(percentile(&v, 100.0), 4.0);
    }
}
