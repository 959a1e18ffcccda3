//! Tip-Adapter (Zhang et al., ECCV 2022), the training-free baseline: a cache whose keys are
//! labelled image embeddings and whose values are their labels, added to the zero-shot score:
//!
//! ```text
//! score(x) = s·x·t + b0 + a · Σ_k v_k · exp(−β (1 − x·k))
//! v_k = +1 / (positive keys)  for a positive key,   −1 / (negative keys)  for a negative one
//! ```
//!
//! (the one-hot values of the paper for two classes, each class's weights summing to one, so
//! the cache term lies in [−1, 1] whatever the number of keys).
//!
//! Invariants: a key is never used to score a frame of its own fold (its cache term in a
//! cross-validation sums only the keys of the training folds); at most [`MAX_KEYS`] keys, spread
//! evenly over each class's rows (a video has 10^5 frames; the paper's caches have a few
//! thousand: the chosen keys are listed in the adapter).

use super::maths::{exp_f32, product};

/// The most keys a cache holds (at most half of them per class).
pub const MAX_KEYS: usize = 1024;
/// β, how sharply the affinity falls with distance, cross-validated over these.
pub const BETAS: [f64; 5] = [1.0, 3.0, 5.5, 10.0, 20.0];
/// The cache's weight `a`, as a multiple of the model's logit scale, cross-validated over these.
pub const WEIGHTS: [f64; 5] = [0.03, 0.1, 0.3, 1.0, 3.0];

/// Rows per product when scoring against the keys.
const CHUNK: usize = 256;

/// Up to [`MAX_KEYS`] / 2 rows of each class among `candidates`, evenly spread (in row
/// order): the keys of a cache. Ascending.
pub fn pick_keys(truth: &[bool], candidates: impl Fn(usize) -> bool) -> Vec<usize> {
    let mut keys = Vec::new();
    for class in [true, false] {
        let rows: Vec<usize> = (0..truth.len())
            .filter(|&i| truth[i] == class && candidates(i))
            .collect();
        let wanted = rows.len().min(MAX_KEYS / 2);
        keys.extend((0..wanted).map(|k| rows[k * rows.len() / wanted]));
    }
    keys.sort_unstable();
    keys
}

/// A cache: its keys (rows of `dim`), their values, β and `a`.
#[derive(Clone, Debug, PartialEq)]
pub struct Cache {
    pub keys: Vec<f32>,
    pub values: Vec<f32>,
    pub dim: usize,
    pub beta: f64,
    pub weight: f64,
}

impl Cache {
    /// The cache of `keys` (row indices into `vectors`) with their labels.
    pub fn of_rows(
        vectors: &[f32],
        dim: usize,
        truth: &[bool],
        keys: &[usize],
        beta: f64,
        weight: f64,
    ) -> Self {
        let positives = keys.iter().filter(|&&k| truth[k]).count().max(1) as f32;
        let negatives = keys.iter().filter(|&&k| !truth[k]).count().max(1) as f32;
        Self {
            keys: keys
                .iter()
                .flat_map(|&k| vectors[k * dim..(k + 1) * dim].iter().copied())
                .collect(),
            values: keys
                .iter()
                .map(|&k| {
                    if truth[k] {
                        1.0 / positives
                    } else {
                        -1.0 / negatives
                    }
                })
                .collect(),
            dim,
            beta,
            weight,
        }
    }

    /// `a · Σ v_k exp(−β (1 − x·k))` for every row of `vectors`.
    pub fn terms(&self, vectors: &[f32]) -> Vec<f64> {
        let m = self.values.len();
        let rows = vectors.len() / self.dim.max(1);
        let mut out = Vec::with_capacity(rows);
        let mut similarity = vec![0f32; CHUNK * m];
        let beta = self.beta as f32;
        for start in (0..rows).step_by(CHUNK) {
            let n = (rows - start).min(CHUNK);
            product(
                &vectors[start * self.dim..(start + n) * self.dim],
                &self.keys,
                self.dim,
                &mut similarity,
            );
            for r in 0..n {
                let row = &similarity[r * m..(r + 1) * m];
                let sum: f32 = row
                    .iter()
                    .zip(&self.values)
                    .map(|(&s, &v)| v * exp_f32(-beta * (1.0 - s)))
                    .sum();
                out.push(self.weight * f64::from(sum));
            }
        }
        out
    }
}

/// `Σ exp(−β (1 − s))` over similarities `s`, in eight independent sums (so the compiler
/// vectorises the loop without reassociating floats).
fn affinity_sum(similarities: &[f32], beta: f32) -> f32 {
    const LANES: usize = 8;
    let mut sums = [0f32; LANES];
    let chunks = similarities.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for lane in 0..LANES {
            sums[lane] += exp_f32(-beta * (1.0 - chunk[lane]));
        }
    }
    sums.iter().sum::<f32>()
        + rest
            .iter()
            .map(|&s| exp_f32(-beta * (1.0 - s)))
            .sum::<f32>()
}

/// For cross-validation: every row's affinity sums to the keys of each fold and class, for
/// each β: `sums[b][(i · folds + f) · 2 + class]` = Σ over keys k of fold f and that class
/// (1: positive) of `exp(−β_b (1 − x_i·k))`. A split's cache term is then a sum over its
/// training folds, with values from its own key counts ([`split_term`]).
pub struct FoldSums {
    pub folds: usize,
    pub sums: Vec<Vec<f32>>,
    /// Keys of each fold and class: `counts[f · 2 + class]`.
    pub counts: Vec<u32>,
}

impl FoldSums {
    pub fn new(
        vectors: &[f32],
        dim: usize,
        truth: &[bool],
        fold: &[u8],
        folds: usize,
        keys: &[usize],
        threads: usize,
    ) -> Self {
        let n = truth.len();
        let width = folds * 2;
        // The keys grouped by their column (fold and class), so each column's sum is over a
        // contiguous run of a row's similarities: a loop that vectorises.
        let column = |k: usize| fold[k] as usize * 2 + usize::from(truth[k]);
        let mut ordered: Vec<usize> = keys.to_vec();
        ordered.sort_by_key(|&k| (column(k), k));
        let mut counts = vec![0u32; width];
        for &k in &ordered {
            counts[column(k)] += 1;
        }
        let mut runs = Vec::with_capacity(width);
        let mut at = 0usize;
        for &count in &counts {
            runs.push((at, at + count as usize));
            at += count as usize;
        }
        let key_vectors: Vec<f32> = ordered
            .iter()
            .flat_map(|&k| vectors[k * dim..(k + 1) * dim].iter().copied())
            .collect();
        let m = ordered.len();
        let threads = threads.clamp(1, n.div_ceil(CHUNK).max(1));
        let per_thread = n.div_ceil(threads).div_ceil(CHUNK) * CHUNK;
        let parts: Vec<Vec<Vec<f32>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let (key_vectors, runs) = (&key_vectors, &runs);
                    let range = (t * per_thread).min(n)..((t + 1) * per_thread).min(n);
                    scope.spawn(move || {
                        let mut out = vec![vec![0f32; range.len() * width]; BETAS.len()];
                        let mut similarity = vec![0f32; CHUNK * m];
                        for start in range.clone().step_by(CHUNK) {
                            let rows = (range.end - start).min(CHUNK);
                            product(
                                &vectors[start * dim..(start + rows) * dim],
                                key_vectors,
                                dim,
                                &mut similarity,
                            );
                            for (b, &beta) in BETAS.iter().enumerate() {
                                let beta = beta as f32;
                                for r in 0..rows {
                                    let at = (start - range.start + r) * width;
                                    let row = &similarity[r * m..(r + 1) * m];
                                    for (column, &(from, to)) in runs.iter().enumerate() {
                                        out[b][at + column] = affinity_sum(&row[from..to], beta);
                                    }
                                }
                            }
                        }
                        out
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a Tip-Adapter pass panicked"))
                .collect()
        });
        let mut sums = vec![Vec::with_capacity(n * width); BETAS.len()];
        for part in parts {
            for (b, values) in part.into_iter().enumerate() {
                sums[b].extend(values);
            }
        }
        Self {
            folds,
            sums,
            counts,
        }
    }

    /// The cache term (before the weight `a`) of row `i` for β number `beta` under the split
    /// that leaves out the folds in `excluded`. `None` when its keys lack a class.
    pub fn split_term(&self, beta: usize, excluded: u64, i: usize) -> Option<f64> {
        let width = self.folds * 2;
        let row = &self.sums[beta][i * width..(i + 1) * width];
        let (mut positive, mut negative) = (0f64, 0f64);
        let (mut positives, mut negatives) = (0u32, 0u32);
        for f in (0..self.folds).filter(|f| excluded & (1 << f) == 0) {
            negative += f64::from(row[f * 2]);
            positive += f64::from(row[f * 2 + 1]);
            negatives += self.counts[f * 2];
            positives += self.counts[f * 2 + 1];
        }
        (positives > 0 && negatives > 0)
            .then(|| positive / f64::from(positives) - negative / f64::from(negatives))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: Vec<f32>) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }

    #[test]
    fn the_cache_term_is_the_formula() {
        let dim = 3;
        let rows: Vec<f32> = [
            unit(vec![1.0, 0.1, 0.0]),
            unit(vec![0.9, 0.2, 0.1]),
            unit(vec![0.0, 1.0, 0.2]),
            unit(vec![0.1, 0.8, 0.5]),
            unit(vec![0.5, 0.5, 0.5]),
        ]
        .concat();
        let truth = [true, true, false, false, false];
        let keys = [0, 1, 2, 3];
        let cache = Cache::of_rows(&rows, dim, &truth, &keys, 5.5, 2.0);
        assert_eq!(cache.values, vec![0.5, 0.5, -0.5, -0.5]);
        let query = &rows[4 * dim..];
        let dot = |k: usize| -> f64 {
            (0..dim)
                .map(|j| f64::from(query[j] * rows[k * dim + j]))
                .sum()
        };
        let expected: f64 = 2.0
            * keys
                .iter()
                .map(|&k| f64::from(cache.values[k]) * (-5.5 * (1.0 - dot(k))).exp())
                .sum::<f64>();
        let ours = cache.terms(query)[0];
        assert!((ours - expected).abs() < 1e-5, "{ours} vs {expected}");
    }

    #[test]
    fn a_split_sums_only_its_training_folds_keys() {
        let dim = 2;
        let rows: Vec<f32> = [
            unit(vec![1.0, 0.0]),
            unit(vec![0.9, 0.1]),
            unit(vec![0.0, 1.0]),
            unit(vec![0.1, 0.9]),
            unit(vec![0.7, 0.7]),
        ]
        .concat();
        let truth = [true, true, false, false, false];
        let fold = [0u8, 1, 0, 1, 2];
        let keys = pick_keys(&truth, |_| true);
        assert_eq!(keys, vec![0, 1, 2, 3, 4]);
        let sums = FoldSums::new(&rows, dim, &truth, &fold, 3, &keys, 2);
        // Row 4 under the split leaving out fold 1: keys 0 (positive) and 2, 4 (negative).
        let term = sums.split_term(2, 1 << 1, 4).unwrap();
        let beta = BETAS[2];
        let affinity = |k: usize| {
            let s: f64 = (0..dim)
                .map(|j| f64::from(rows[4 * dim + j] * rows[k * dim + j]))
                .sum();
            (-beta * (1.0 - s)).exp()
        };
        let expected = affinity(0) - (affinity(2) + affinity(4)) / 2.0;
        assert!((term - expected).abs() < 1e-5, "{term} vs {expected}");
        // Leaving out folds 0 and 1 leaves no positive key.
        assert_eq!(sums.split_term(2, 0b11, 4), None);
    }

    #[test]
    fn keys_are_capped_and_spread_per_class() {
        let truth: Vec<bool> = (0..5000).map(|i| i % 10 == 0).collect();
        let keys = pick_keys(&truth, |i| i < 4000);
        let positives = keys.iter().filter(|&&k| truth[k]).count();
        assert_eq!(positives, 400, "all 400 positives below 4000");
        assert_eq!(keys.len() - positives, MAX_KEYS / 2);
        assert!(keys.iter().all(|&k| k < 4000));
        assert!(*keys.last().unwrap() > 3900, "spread to the end");
    }
}

#[cfg(test)]
mod goldens {
    use super::*;

    /// Tip-Adapter's scores equal the formula as `scripts/make_adapt_goldens.py` computes it
    /// with NumPy (keys: the first 400 rows, queries: the rest).
    #[test]
    fn tip_scores_equal_the_goldens() {
        let value: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/fixtures/adapt/goldens.json")).unwrap();
        let dim = value["dim"].as_u64().unwrap() as usize;
        let rows: Vec<f32> = value["rows"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap() as f32)
            })
            .collect();
        let truth: Vec<bool> = value["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_bool().unwrap())
            .collect();
        let text: Vec<f32> = value["text"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        let tip = &value["tip"];
        let keys: Vec<usize> = (0..tip["keys"].as_u64().unwrap() as usize).collect();
        let scale = tip["scale"].as_f64().unwrap();
        let b0 = tip["b0"].as_f64().unwrap();
        let queries = &rows[keys.len() * dim..];
        for case in tip["cases"].as_array().unwrap() {
            let (beta, a) = (case["beta"].as_f64().unwrap(), case["a"].as_f64().unwrap());
            let cache = Cache::of_rows(&rows, dim, &truth, &keys, beta, a);
            let terms = cache.terms(queries);
            for (q, expected) in case["scores"].as_array().unwrap().iter().enumerate() {
                let x = &queries[q * dim..(q + 1) * dim];
                let zero: f64 = x
                    .iter()
                    .zip(&text)
                    .map(|(&x, &t)| f64::from(x) * f64::from(t))
                    .sum::<f64>()
                    * scale
                    + b0;
                let ours = zero + terms[q];
                let expected = expected.as_f64().unwrap();
                assert!(
                    (ours - expected).abs() <= 1e-4 * expected.abs().max(1.0),
                    "β {beta}, a {a}, query {q}: {ours} vs {expected}"
                );
            }
        }
    }
}
