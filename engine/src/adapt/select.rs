//! The cross-validation around an adapter: which models are made (one per split), how its
//! settings are chosen (λ, or Tip-Adapter's β and weight, and the blend α), and the
//! out-of-fold scores every reported figure comes from.
//!
//! Nested, so that no figure has seen its own frames: for each tested fold `a`, the settings
//! are chosen on the other folds alone (each inner fold `b` scored by the model that left out
//! both `a` and `b`), then fold `a` is scored by the model that left out `a`, with those
//! settings. The adapter kept is trained on every fold, with the settings chosen the ordinary
//! way (each fold scored by the model that left it out). Settings are chosen by the balanced
//! log-loss of the blended score (each class weighing half): a proper score, and no sort per
//! candidate.
//!
//! Invariants: masks name the folds a model leaves out (bit `f`: fold `f`); a model is asked
//! only for rows of folds it left out; a row whose model could not be made (its training
//! folds lacked a class) is left out of the choice, never scored by another model.

use std::collections::HashMap;

use super::maths::blended_logloss;

pub fn single(a: usize) -> u64 {
    1 << a
}

pub fn pair(a: usize, b: usize) -> u64 {
    (1 << a) | (1 << b)
}

/// The folds of a cross-validation and the splits it needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Splits {
    /// Fold ids `0..folds`.
    pub folds: usize,
    /// The folds whose rows are tested (every fold; or the held-out video's).
    pub outer: Vec<usize>,
    /// The folds that train (every fold; or all but the held-out video's).
    pub training: Vec<usize>,
}

impl Splits {
    /// `folds` blocked folds, each tested in turn.
    pub fn blocked(folds: usize) -> Self {
        Self {
            folds,
            outer: (0..folds).collect(),
            training: (0..folds).collect(),
        }
    }

    /// `folds` blocked folds of the training videos, and one more (the last) held out.
    pub fn held_out(folds: usize) -> Self {
        Self {
            folds: folds + 1,
            outer: vec![folds],
            training: (0..folds).collect(),
        }
    }

    pub fn is_held_out(&self) -> bool {
        self.outer.len() == 1 && !self.training.contains(&self.outer[0])
    }

    /// Every split a model is needed for: each tested fold alone, and with each training fold.
    pub fn masks(&self) -> Vec<u64> {
        let mut masks: Vec<u64> = self.outer.iter().map(|&a| single(a)).collect();
        for &a in &self.outer {
            for &b in &self.training {
                if b != a && !masks.contains(&pair(a, b)) {
                    masks.push(pair(a, b));
                }
            }
        }
        masks
    }

    /// The split of the adapter kept: every training fold.
    pub fn final_mask(&self) -> u64 {
        if self.is_held_out() {
            single(self.outer[0])
        } else {
            0
        }
    }
}

/// Scores by candidate setting.
pub trait Candidates: Sync {
    fn count(&self) -> usize;
    /// The adapted logit of row `i` by candidate `c`'s model that left out the folds `mask`
    /// (row `i`'s fold among them); `None` where that model could not be made.
    fn logit(&self, c: usize, mask: u64, i: usize) -> Option<f32>;

    /// [`logit`](Self::logit) of each of `rows` (all left out by `mask`), NaN for `None`.
    fn logits(&self, c: usize, mask: u64, rows: &[usize]) -> Vec<f32> {
        rows.iter()
            .map(|&i| self.logit(c, mask, i).unwrap_or(f32::NAN))
            .collect()
    }
}

/// The zero-shot logits `s·x·t`, and each split's bias (fitted on its training rows).
pub struct ZeroShot {
    pub logits: Vec<f64>,
    pub bias: HashMap<u64, f64>,
    /// The bias of the adapter kept, which the reported scores use in every fold: one constant
    /// for all rows ranks them as the cosine does (so the zero-shot figures are the Evaluate
    /// panel's, and α = 0 is zero-shot exactly), while each split's own bias calibrates the
    /// choice of α.
    pub common: f64,
}

impl ZeroShot {
    pub fn logit(&self, mask: u64, i: usize) -> Option<f64> {
        self.bias.get(&mask).map(|b| self.logits[i] + b)
    }
}

/// A setting and a blend.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Choice {
    pub candidate: usize,
    pub alpha: f64,
    /// Chosen by cross-validation (`false`: the default, the inner folds could not say).
    pub chosen: bool,
}

/// What the cross-validation chose and scored.
pub struct Selection {
    /// The choice inside each tested fold (as `Splits::outer`).
    pub per_outer: Vec<Choice>,
    /// The choice for the adapter kept.
    pub last: Choice,
    /// Each tested row's logit from the model that left its fold out, with the settings its
    /// fold chose (nested); NaN for rows not tested.
    pub nested: Vec<f64>,
    /// The zero-shot logit of each tested row, with its split's bias; NaN for rows not tested.
    pub zero_shot: Vec<f64>,
    /// The adapted logit of each tested row before the blend (its fold's setting); NaN for
    /// rows not tested.
    pub adapted: Vec<f64>,
    /// For each blend of the grid: the tested rows' logits with that blend in every fold
    /// (and each fold's own setting); NaN for rows not tested.
    pub by_alpha: Vec<Vec<f64>>,
    pub notes: Vec<String>,
}

/// The blend and candidate with the lowest balanced log-loss over the rows of `groups`, each
/// group's rows scored by its split (`mask`). `None` when the rows scored lack a class.
fn choose(
    candidates: &dyn Candidates,
    zero_shot: &ZeroShot,
    truth: &[bool],
    groups: &[(u64, Vec<usize>)],
    alphas: &[f64],
) -> Option<(usize, f64)> {
    let mut best: Option<(f64, usize, f64)> = None;
    for c in 0..candidates.count() {
        // This candidate's rows, gathered once for every blend.
        let mut zero = Vec::new();
        let mut adapted = Vec::new();
        let mut labels = Vec::new();
        for (mask, rows) in groups {
            let Some(&bias) = zero_shot.bias.get(mask) else {
                continue;
            };
            for (&i, a) in rows.iter().zip(candidates.logits(c, *mask, rows)) {
                if a.is_finite() {
                    zero.push((zero_shot.logits[i] + bias) as f32);
                    adapted.push(a);
                    labels.push(f32::from(u8::from(truth[i])));
                }
            }
        }
        for &alpha in alphas {
            let loss = blended_logloss(&zero, &adapted, &labels, alpha as f32);
            // Strictly lower only: among equals, the most regularised candidate (listed
            // first) and the blend nearest zero-shot.
            if let Some(loss) = loss {
                if best.is_none_or(|(b, _, _)| loss < b) {
                    best = Some((loss, c, alpha));
                }
            }
        }
    }
    best.map(|(_, c, alpha)| (c, alpha))
}

/// Chooses the settings inside each tested fold and for the adapter kept, and scores the
/// tested rows out of fold. `default` is the candidate used where the folds cannot choose
/// (with the blend 0.5, and a note).
pub fn select(
    candidates: &dyn Candidates,
    zero_shot: &ZeroShot,
    truth: &[bool],
    row_fold: &[u8],
    splits: &Splits,
    alphas: &[f64],
    default: usize,
) -> Selection {
    let n = truth.len();
    let fallback = Choice {
        candidate: default,
        alpha: 0.5,
        chosen: false,
    };
    let mut notes = Vec::new();
    let mut rows_of_fold: Vec<Vec<usize>> = vec![Vec::new(); splits.folds];
    for (i, &f) in row_fold.iter().enumerate() {
        rows_of_fold[f as usize].push(i);
    }
    let per_outer: Vec<Choice> = splits
        .outer
        .iter()
        .map(|&a| {
            // Each inner fold scored by the model that left out it and `a`.
            let groups: Vec<(u64, Vec<usize>)> = splits
                .training
                .iter()
                .filter(|&&b| b != a)
                .map(|&b| (pair(a, b), rows_of_fold[b].clone()))
                .collect();
            match choose(candidates, zero_shot, truth, &groups, alphas) {
                Some((candidate, alpha)) => Choice {
                    candidate,
                    alpha,
                    chosen: true,
                },
                None => {
                    notes.push(format!(
                        "inside fold {} the other folds could not choose the settings (their models lack a labelled segment to train or test on): the defaults were used there",
                        a + 1
                    ));
                    fallback
                }
            }
        })
        .collect();
    let last = if splits.is_held_out() {
        per_outer[0]
    } else {
        let groups: Vec<(u64, Vec<usize>)> = (0..splits.folds)
            .map(|f| (single(f), rows_of_fold[f].clone()))
            .collect();
        match choose(candidates, zero_shot, truth, &groups, alphas) {
            Some((candidate, alpha)) => Choice {
                candidate,
                alpha,
                chosen: true,
            },
            None => {
                notes.push(
                    "the folds could not choose the adapter's settings: the defaults were used"
                        .into(),
                );
                fallback
            }
        }
    };
    let mut nested = vec![f64::NAN; n];
    let mut zero = vec![f64::NAN; n];
    let mut adapted = vec![f64::NAN; n];
    let mut by_alpha = vec![vec![f64::NAN; n]; alphas.len()];
    for (&a, choice) in splits.outer.iter().zip(&per_outer) {
        let mask = single(a);
        for i in (0..n).filter(|&i| row_fold[i] as usize == a) {
            let Some(s) = candidates.logit(choice.candidate, mask, i) else {
                continue;
            };
            let z = zero_shot.logits[i] + zero_shot.common;
            let s = f64::from(s);
            zero[i] = z;
            adapted[i] = s;
            nested[i] = (1.0 - choice.alpha) * z + choice.alpha * s;
            for (k, &alpha) in alphas.iter().enumerate() {
                by_alpha[k][i] = (1.0 - alpha) * z + alpha * s;
            }
        }
    }
    Selection {
        per_outer,
        last,
        nested,
        zero_shot: zero,
        adapted,
        by_alpha,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A candidate whose held-out logits are given per (candidate, mask): equal to the truth
    /// times a strength, so that the strongest candidate is the best.
    struct Fixed {
        strengths: Vec<f32>,
        truth: Vec<bool>,
    }

    impl Candidates for Fixed {
        fn count(&self) -> usize {
            self.strengths.len()
        }
        fn logit(&self, c: usize, _: u64, i: usize) -> Option<f32> {
            Some(if self.truth[i] {
                self.strengths[c]
            } else {
                -self.strengths[c]
            })
        }
    }

    #[test]
    fn the_splits_are_the_folds_alone_and_in_pairs() {
        let blocked = Splits::blocked(3);
        assert_eq!(
            blocked.masks(),
            vec![0b001, 0b010, 0b100, 0b011, 0b101, 0b110]
        );
        assert_eq!(blocked.final_mask(), 0);
        let held = Splits::held_out(3);
        assert!(held.is_held_out());
        assert_eq!(held.masks(), vec![0b1000, 0b1001, 0b1010, 0b1100]);
        assert_eq!(held.final_mask(), 0b1000);
    }

    #[test]
    fn the_best_setting_wins_and_the_scores_are_nested() {
        let truth: Vec<bool> = (0..60).map(|i| (i / 10) % 2 == 1).collect();
        let row_fold: Vec<u8> = (0..60).map(|i| ((i / 10) % 3) as u8).collect();
        let candidates = Fixed {
            strengths: vec![0.5, 4.0, 1.0],
            truth: truth.clone(),
        };
        let splits = Splits::blocked(3);
        let mut bias = HashMap::new();
        for mask in splits.masks().into_iter().chain([0]) {
            bias.insert(mask, 0.0);
        }
        // The zero-shot scores know nothing.
        let zero_shot = ZeroShot {
            logits: vec![0.0; 60],
            bias,
            common: 0.0,
        };
        let alphas = [0.0, 0.5, 1.0];
        let s = select(
            &candidates,
            &zero_shot,
            &truth,
            &row_fold,
            &splits,
            &alphas,
            0,
        );
        assert!(s.notes.is_empty(), "{:?}", s.notes);
        for choice in s.per_outer.iter().chain([&s.last]) {
            assert_eq!(
                (choice.candidate, choice.alpha, choice.chosen),
                (1, 1.0, true)
            );
        }
        assert!(s.nested.iter().all(|z| z.abs() == 4.0));
        assert!(
            s.by_alpha[0].iter().all(|&z| z == 0.0),
            "α = 0 is zero-shot"
        );
    }
}
