//! Training one adapter from labelled rows, and measuring it on rows it never saw: the
//! blocked folds, the models of every split (the probe's along a path of λ, warm-started;
//! Tip-Adapter's from one affinity pass), the nested choice of the settings, the adapter kept,
//! and the report (metrics, the difference from zero-shot with its block-bootstrap interval,
//! where to label next, which labels look wrong).
//!
//! Invariants: every metric in the report is computed from out-of-fold scores (`select`);
//! the rows are the caches' embeddings (no image tower runs); the result depends only on the
//! rows, the prompt's text embedding and the request (no randomness; the bootstrap's seed is
//! fixed).

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Instant;

use investigator_core::adapt::folds::{self, FoldPlan};
use investigator_core::adapt::{alpha_grid, AdaptReport, AdaptRequest, Anchor, Method, TrainSet};

use super::maths::{balanced_bias, product};
use super::probe::{self, Linear, Probe, Rows, Spec};
use super::select::{self, Candidates, Choice, Splits, ZeroShot};
use super::tip::{self, Cache, FoldSums};
use super::AdaptError;
use measure::measure;
pub use measure::OutOfFold;

/// The probe's penalties, as multiples of its training rows (λ = γ·rows), most regularised
/// first: the path is fitted in this order, each from the last.
pub const GAMMAS: [f64; 4] = [1e-1, 1e-2, 1e-3, 1e-4];
/// The probe's setting used where the folds cannot choose.
const DEFAULT_GAMMA: usize = 1;
/// The adapter kept is refined in float64 up to this many values (rows × dimensions: 20,000
/// frames of ViT-B/32): a few more passes over the rows, cheap below it.
const PRECISE_VALUES: usize = 10_000_000;

/// The labelled rows of one prompt: one per evaluated frame, in video then frame order.
pub struct TrainingRows<'a> {
    /// `truth.len()` rows of `dim`, each L2-normalised (the caches' embeddings).
    pub vectors: Cow<'a, [f32]>,
    pub dim: usize,
    pub truth: Vec<bool>,
    /// Each row's video (an index into `videos`) and frame.
    pub video: Vec<u32>,
    pub frame: Vec<u64>,
    /// Each row's stretch: it changes with the video and across every `ignore` span, so that
    /// two labelled segments an ignored span separates are two blocks.
    pub stretch: Vec<u32>,
    /// Each video's id and frame rate.
    pub videos: Vec<(String, f64)>,
}

/// Everything one training needs.
pub struct Training<'a> {
    pub rows: TrainingRows<'a>,
    /// The prompt's text embedding (L2-normalised).
    pub text: Vec<f32>,
    /// The model's logit scale `s` (CLIP's temperature; SigLIP's scale).
    pub logit_scale: f64,
    pub request: AdaptRequest,
    /// The video held out (an index into `rows.videos`).
    pub hold_out: Option<u32>,
    pub threads: usize,
}

/// How an adapter scores an embedding (its logit).
#[derive(Clone, Debug, PartialEq)]
pub enum Scorer {
    Linear(Linear),
    /// The zero-shot score plus Tip-Adapter's cache.
    Tip {
        base: Linear,
        cache: Cache,
    },
}

impl Scorer {
    /// The logits of every row of `vectors`.
    pub fn logits(&self, vectors: &[f32], dim: usize) -> Vec<f64> {
        match self {
            Self::Linear(linear) => linear_logits(linear, vectors, dim),
            Self::Tip { base, cache } => linear_logits(base, vectors, dim)
                .into_iter()
                .zip(cache.terms(vectors))
                .map(|(z, t)| z + t)
                .collect(),
        }
    }
}

/// `w·x + b` for every row.
pub fn linear_logits(linear: &Linear, vectors: &[f32], dim: usize) -> Vec<f64> {
    let w: Vec<f32> = linear.weight.iter().map(|&w| w as f32).collect();
    let rows = vectors.len() / dim.max(1);
    let mut out = vec![0f32; rows];
    for (start, part) in (0..rows).step_by(4096).zip(out.chunks_mut(4096)) {
        let n = part.len();
        product(&vectors[start * dim..(start + n) * dim], &w, dim, part);
    }
    out.into_iter()
        .map(|z| f64::from(z) + linear.bias)
        .collect()
}

/// A trained adapter, before it is named and stored.
pub struct Trained {
    /// The zero-shot score `s·x·t + b0` (b0 fitted on the adapter's training rows).
    pub zero_shot: Linear,
    pub scorer: Scorer,
    pub alpha: f64,
    /// Everything but the id, the model's name and the labels' fingerprint (the caller's).
    pub report: AdaptReport,
    /// The tested rows' out-of-fold scores (the report's figures come from them).
    pub out_of_fold: OutOfFold,
}

/// The probe's out-of-fold logits: `[γ][mask]` over every row (NaN where the model trained).
struct ProbeCandidates {
    logits: Vec<HashMap<u64, Vec<f32>>>,
}

impl Candidates for ProbeCandidates {
    fn count(&self) -> usize {
        self.logits.len()
    }
    fn logit(&self, c: usize, mask: u64, i: usize) -> Option<f32> {
        self.logits[c]
            .get(&mask)
            .map(|scores| scores[i])
            .filter(|z| z.is_finite())
    }
    fn logits(&self, c: usize, mask: u64, rows: &[usize]) -> Vec<f32> {
        match self.logits[c].get(&mask) {
            Some(scores) => rows.iter().map(|&i| scores[i]).collect(),
            None => vec![f32::NAN; rows.len()],
        }
    }
}

/// Tip-Adapter's out-of-fold logits, from the affinity sums: candidate `c` is
/// `(BETAS[c / WEIGHTS.len()], WEIGHTS[c % WEIGHTS.len()])`.
struct TipCandidates<'a> {
    sums: FoldSums,
    zero_shot: &'a ZeroShot,
    scale: f64,
}

impl Candidates for TipCandidates<'_> {
    fn count(&self) -> usize {
        tip::BETAS.len() * tip::WEIGHTS.len()
    }
    fn logit(&self, c: usize, mask: u64, i: usize) -> Option<f32> {
        let (beta, weight) = (c / tip::WEIGHTS.len(), c % tip::WEIGHTS.len());
        let term = self.sums.split_term(beta, mask, i)?;
        let zero = self.zero_shot.logit(mask, i)?;
        Some((zero + tip::WEIGHTS[weight] * self.scale * term) as f32)
    }
}

/// Trains the adapter `training.request` asks for and measures it out of fold. `progress`
/// hears what it is doing and how far (0 to 1).
pub fn train(training: &Training, progress: &dyn Fn(&str, f64)) -> Result<Trained, AdaptError> {
    if training.text.len() != training.rows.dim {
        return Err(AdaptError::Dimension {
            text: training.text.len(),
            images: training.rows.dim,
        });
    }
    // The folds: blocked over every video, or over the training videos with the held-out one
    // a fold of its own.
    let (plan, splits, tested_on) = plan_folds(training)?;
    train_planned(training, &plan, &splits, tested_on, progress)
}

/// [`train`] with the folds given (the tests give frame-level folds, to show what they leak).
pub fn train_planned(
    training: &Training,
    plan: &FoldPlan,
    splits: &Splits,
    tested_on: String,
    progress: &dyn Fn(&str, f64),
) -> Result<Trained, AdaptError> {
    let splits = splits.clone();
    let started = Instant::now();
    let rows = &training.rows;
    let request = &training.request;
    let n = rows.truth.len();
    let dim = rows.dim;
    let mut notes = plan.notes.clone();
    let row_fold = &plan.row_fold;

    progress("scoring zero-shot", 0.02);
    let scale = training.logit_scale;
    let anchor: Vec<f32> = match request.from {
        Anchor::Text => training
            .text
            .iter()
            .map(|&t| (f64::from(t) * scale) as f32)
            .collect(),
        Anchor::Zero => vec![0.0; dim],
    };
    let probe_rows = Rows {
        vectors: &rows.vectors,
        dim,
        truth: &rows.truth,
        fold: row_fold,
    };
    let problem = Probe::new(probe_rows, &anchor);
    let text_model = Linear {
        weight: training
            .text
            .iter()
            .map(|&t| f64::from(t) * scale)
            .collect(),
        bias: 0.0,
    };
    let zero_logits = linear_logits(&text_model, &rows.vectors, dim);
    let masks = splits.masks();
    let final_mask = splits.final_mask();
    let mut bias = HashMap::new();
    // The adapter's own bias exact; the splits' (which calibrate the choice of α) to float32,
    // each from the adapter's (a few Newton steps away).
    let final_bias = balanced_bias(
        &zero_logits,
        &rows.truth,
        |i| final_mask & (1 << row_fold[i]) == 0,
        true,
        None,
    )
    .ok_or(AdaptError::OneClass)?;
    bias.insert(final_mask, final_bias);
    for &mask in &masks {
        if let Some(b) = balanced_bias(
            &zero_logits,
            &rows.truth,
            |i| mask & (1 << row_fold[i]) == 0,
            false,
            Some(final_bias),
        ) {
            bias.insert(mask, b);
        }
    }
    let zero_shot = ZeroShot {
        logits: zero_logits,
        bias,
        common: final_bias,
    };
    let alphas = alpha_grid();

    let (selection, scorer, setting) = match request.method {
        Method::Probe => {
            let mut logits = Vec::new();
            // Each λ's models by split: the next λ starts from them, the adapter from the
            // chosen λ's.
            let mut path: Vec<HashMap<u64, Linear>> = Vec::new();
            let options = probe::Options {
                threads: training.threads,
                ..probe::Options::cross_validation()
            };
            for (g, &gamma) in GAMMAS.iter().enumerate() {
                progress(
                    &format!(
                        "fitting λ {} of {} on {} splits",
                        g + 1,
                        GAMMAS.len(),
                        masks.len()
                    ),
                    0.05 + 0.7 * g as f64 / GAMMAS.len() as f64,
                );
                let specs: Vec<Spec> = masks
                    .iter()
                    .map(|&mask| {
                        let (p, q) = problem.training_counts(mask);
                        Spec {
                            excluded: mask,
                            lambda: gamma * (p + q) as f64,
                            start: path.last().and_then(|models| models.get(&mask)).cloned(),
                        }
                    })
                    .collect();
                let fitted = problem.fit(&specs, &options);
                let models: Vec<(u64, &Linear)> = masks
                    .iter()
                    .zip(&fitted)
                    .filter_map(|(&mask, f)| f.as_ref().map(|f| (mask, &f.model)))
                    .collect();
                let scores = problem.held_out_scores(&models, training.threads);
                logits.push(
                    models
                        .iter()
                        .map(|(mask, _)| *mask)
                        .zip(scores)
                        .collect::<HashMap<u64, Vec<f32>>>(),
                );
                path.push(
                    masks
                        .iter()
                        .zip(fitted)
                        .filter_map(|(&mask, f)| f.map(|f| (mask, f.model)))
                        .collect(),
                );
            }
            let candidates = ProbeCandidates { logits };
            progress("choosing λ and α", 0.77);
            let selection = select::select(
                &candidates,
                &zero_shot,
                &rows.truth,
                row_fold,
                &splits,
                &alphas,
                DEFAULT_GAMMA,
            );
            progress("fitting the adapter", 0.8);
            let gamma = GAMMAS[selection.last.candidate];
            // The last fit starts where the path's models stand at the chosen λ: the held-out
            // split's own model, or the mean of the folds' models.
            let at_gamma = &path[selection.last.candidate];
            let start = if splits.is_held_out() {
                at_gamma.get(&final_mask).cloned()
            } else {
                mean_model(
                    splits
                        .outer
                        .iter()
                        .filter_map(|&a| at_gamma.get(&select::single(a))),
                )
            };
            let (p, q) = problem.training_counts(final_mask);
            let lambda = gamma * (p + q) as f64;
            let fitted = problem
                .fit(
                    &[Spec {
                        excluded: final_mask,
                        lambda,
                        start,
                    }],
                    &probe::Options {
                        threads: training.threads,
                        // Refined in float64 where that costs little; above, the float32
                        // optimum (its objective within 1e-9 of the true one).
                        precise: n * dim <= PRECISE_VALUES,
                        ..probe::Options::default()
                    },
                )
                .remove(0)
                .ok_or(AdaptError::OneClass)?;
            if !fitted.converged {
                notes.push(format!(
                    "the probe stopped after {} iterations before its tolerance",
                    fitted.iterations
                ));
            }
            (
                selection,
                Scorer::Linear(fitted.model),
                Setting::Probe { lambda },
            )
        }
        Method::Tip => {
            progress("Tip-Adapter: affinities to the keys", 0.1);
            let keys = tip::pick_keys(&rows.truth, |i| {
                splits.training.contains(&(row_fold[i] as usize))
            });
            let sums = FoldSums::new(
                &rows.vectors,
                dim,
                &rows.truth,
                row_fold,
                splits.folds,
                &keys,
                training.threads,
            );
            let candidates = TipCandidates {
                sums,
                zero_shot: &zero_shot,
                scale,
            };
            progress("choosing β, the cache's weight and α", 0.6);
            let default = 2 * tip::WEIGHTS.len() + 2;
            let selection = select::select(
                &candidates,
                &zero_shot,
                &rows.truth,
                row_fold,
                &splits,
                &alphas,
                default,
            );
            let c = selection.last.candidate;
            let (beta, weight) = (
                tip::BETAS[c / tip::WEIGHTS.len()],
                tip::WEIGHTS[c % tip::WEIGHTS.len()] * scale,
            );
            let cache = Cache::of_rows(&rows.vectors, dim, &rows.truth, &keys, beta, weight);
            let training_rows = (0..n)
                .filter(|&i| splits.training.contains(&(row_fold[i] as usize)))
                .count();
            if keys.len() < training_rows {
                notes.push(format!(
                    "Tip-Adapter's cache holds {} of the labelled frames as keys (at most {} per class, spread evenly)",
                    keys.len(),
                    tip::MAX_KEYS / 2
                ));
            }
            let base = Linear {
                weight: text_model.weight.clone(),
                bias: final_bias,
            };
            (
                selection,
                Scorer::Tip { base, cache },
                Setting::Tip { beta, weight },
            )
        }
    };
    notes.extend(selection.notes.iter().cloned());

    progress("measuring", 0.9);
    let measured = measure(training, &selection, &alphas, plan);
    let train_set = {
        let included = |i: usize| final_mask & (1 << row_fold[i]) == 0;
        let positives = (0..n).filter(|&i| included(i) && rows.truth[i]).count() as u64;
        let negatives = (0..n).filter(|&i| included(i) && !rows.truth[i]).count() as u64;
        let segments = plan
            .blocks
            .iter()
            .zip(&plan.block_fold)
            .filter(|(b, &f)| b.positive && final_mask & (1 << f) == 0)
            .count() as u64;
        let mut videos: Vec<String> = Vec::new();
        for i in (0..n).filter(|&i| included(i)) {
            let id = &rows.videos[rows.video[i] as usize].0;
            if !videos.contains(id) {
                videos.push(id.clone());
            }
        }
        TrainSet {
            positives,
            negatives,
            positive_segments: segments,
            videos,
        }
    };
    let (lambda, tip_beta, tip_alpha) = match setting {
        Setting::Probe { lambda } => (Some(lambda), None, None),
        Setting::Tip { beta, weight } => (None, Some(beta), Some(weight)),
    };
    let report = AdaptReport {
        id: String::new(),
        model: String::new(),
        prompt: request.prompt.clone(),
        method: request.method,
        from: request.from,
        lambda,
        tip_beta,
        tip_alpha,
        alpha: selection.last.alpha,
        folds: if splits.is_held_out() {
            splits.folds - 1
        } else {
            splits.folds
        },
        tested_on,
        train: train_set,
        zero_shot: measured.zero_shot,
        adapted: measured.adapted,
        differences: measured.differences,
        by_alpha: measured.by_alpha,
        label_next: measured.label_next,
        suspect: measured.suspect,
        notes,
        labels_fingerprint: String::new(),
        seconds: started.elapsed().as_secs_f64(),
    };
    progress("done", 1.0);
    Ok(Trained {
        zero_shot: Linear {
            weight: text_model.weight,
            bias: final_bias,
        },
        scorer,
        alpha: selection.last.alpha,
        report,
        out_of_fold: measured.out_of_fold,
    })
}

enum Setting {
    Probe { lambda: f64 },
    Tip { beta: f64, weight: f64 },
}

/// The mean of some models (`None` for none).
fn mean_model<'a>(models: impl Iterator<Item = &'a Linear>) -> Option<Linear> {
    let mut count = 0.0;
    let mut sum: Option<Linear> = None;
    for model in models {
        count += 1.0;
        sum = Some(match sum {
            None => model.clone(),
            Some(s) => Linear {
                weight: s
                    .weight
                    .iter()
                    .zip(&model.weight)
                    .map(|(a, b)| a + b)
                    .collect(),
                bias: s.bias + model.bias,
            },
        });
    }
    sum.map(|s| Linear {
        weight: s.weight.iter().map(|w| w / count).collect(),
        bias: s.bias / count,
    })
}

/// The folds of the request: blocked over every video, or over the training videos with the
/// held-out video's rows as one more fold (the last).
fn plan_folds(training: &Training) -> Result<(FoldPlan, Splits, String), AdaptError> {
    let rows = &training.rows;
    match training.hold_out {
        None => {
            let plan = folds::plan(&rows.truth, &rows.stretch, training.request.folds)?;
            let tested = format!("{} blocked folds", plan.folds);
            let splits = Splits::blocked(plan.folds);
            Ok((plan, splits, tested))
        }
        Some(held) => {
            let id = rows.videos[held as usize].0.clone();
            let train_rows: Vec<usize> = (0..rows.truth.len())
                .filter(|&i| rows.video[i] != held)
                .collect();
            let held_rows: Vec<usize> = (0..rows.truth.len())
                .filter(|&i| rows.video[i] == held)
                .collect();
            if train_rows.is_empty() {
                return Err(AdaptError::HoldOutOnly { video: id });
            }
            let positives = held_rows.iter().filter(|&&i| rows.truth[i]).count();
            if positives == 0 || positives == held_rows.len() {
                return Err(AdaptError::HoldOutOneClass { video: id });
            }
            let truth: Vec<bool> = train_rows.iter().map(|&i| rows.truth[i]).collect();
            let stretch: Vec<u32> = train_rows.iter().map(|&i| rows.stretch[i]).collect();
            let inner = folds::plan(&truth, &stretch, training.request.folds)?;
            let held_fold = inner.folds as u8;
            let mut row_fold = vec![held_fold; rows.truth.len()];
            for (k, &i) in train_rows.iter().enumerate() {
                row_fold[i] = inner.row_fold[k];
            }
            // The blocks of every row: the training videos' (re-indexed), then the held-out
            // video's own.
            let mut blocks = Vec::new();
            let mut block_fold = Vec::new();
            let all = folds::blocks(&rows.truth, &rows.stretch);
            for block in all {
                block_fold.push(row_fold[block.start]);
                blocks.push(block);
            }
            let plan = FoldPlan {
                folds: inner.folds + 1,
                blocks,
                block_fold,
                row_fold,
                notes: inner.notes,
            };
            let splits = Splits::held_out(inner.folds);
            Ok((plan, splits, format!("video {id} held out")))
        }
    }
}

/// The choice of a split, for tests and the bench.
pub fn describe(choice: &Choice, method: Method) -> String {
    match method {
        Method::Probe => format!("γ {} α {}", GAMMAS[choice.candidate], choice.alpha),
        Method::Tip => format!(
            "β {} a {}·s α {}",
            tip::BETAS[choice.candidate / tip::WEIGHTS.len()],
            tip::WEIGHTS[choice.candidate % tip::WEIGHTS.len()],
            choice.alpha
        ),
    }
}

mod measure;
#[cfg(test)]
mod tests;
