//! The probe: class-balanced logistic regression on L2-normalised image embeddings,
//! `score = w·x + b`, held near an anchor `w0` (the prompt's text embedding times the logit
//! scale, or zero). One model minimises, over its training rows T,
//!
//! ```text
//! F(w, b) = Σ_{i∈T} c_i · logloss(w·x_i + b, y_i) + (λ/2)·‖w − w0‖²
//! c_i = |T| / (2 · |rows of T in i's class|)        (scikit-learn's "balanced")
//! ```
//!
//! with the bias unpenalised. With `w0 = 0` this is scikit-learn's
//! `LogisticRegression(C = 1/λ, class_weight="balanced")`.
//!
//! How:
//! - Many models (every fold × every λ of a cross-validation) are fitted in lockstep: one pass
//!   over the rows gives the objective and gradient of every model still running (two GEMMs
//!   per chunk of rows, while the chunk is in cache), so 10^5 × 512 rows are read from memory
//!   once per step for all of them. A model leaves the lockstep when it has converged.
//! - The optimiser is L-BFGS with a backtracking (Armijo) line search, written here rather
//!   than taken from `argmin`: argmin fits one parameter vector with one step length and asks
//!   for the cost and the gradient in separate calls (two passes over the rows per trial).
//!   Stacking the models into one argmin problem shares a step length and a stopping rule
//!   between independent problems; tried on 10^5 × 512 rows it took 20 to 50 times the passes
//!   this one does, its More–Thuente search stalling on float32 rounding.
//! - Variables `v = w − w0` and `b' = b + μ·w` (μ the rows' mean): an exact change of
//!   variables (the optimum is the same) that centres the rows, which removes the large
//!   direction every CLIP embedding shares from the problem's curvature.
//! - Products in f32 (the cache's rows), sums of losses and gradients in f64, the anchor's
//!   scores `x·w0` computed once.
//!
//! Invariants: every model's objective is normalised by `|T|` (same optimum) so that one
//! gradient tolerance fits every size; a model whose training rows hold one class only is not
//! fitted (`None`), never guessed.

use super::lbfgs::State;
use super::maths::{balanced_bias, product};

/// Rows of one problem: embeddings, their truth and the fold each row belongs to.
#[derive(Clone, Copy)]
pub struct Rows<'a> {
    /// `truth.len()` rows of `dim` values, row-major, each L2-normalised.
    pub vectors: &'a [f32],
    pub dim: usize,
    pub truth: &'a [bool],
    /// Fold of each row (below 64).
    pub fold: &'a [u8],
}

impl Rows<'_> {
    pub fn len(&self) -> usize {
        self.truth.len()
    }

    pub fn is_empty(&self) -> bool {
        self.truth.is_empty()
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.dim..(i + 1) * self.dim]
    }
}

/// A linear score `weight·x + bias`.
#[derive(Clone, Debug, PartialEq)]
pub struct Linear {
    pub weight: Vec<f64>,
    pub bias: f64,
}

impl Linear {
    pub fn score(&self, x: &[f32]) -> f64 {
        self.weight
            .iter()
            .zip(x)
            .map(|(w, &x)| w * f64::from(x))
            .sum::<f64>()
            + self.bias
    }

    /// `(1 − alpha)·self + alpha·other` (WiSE-FT's blend of weights; a score blends the same).
    pub fn blend(&self, other: &Linear, alpha: f64) -> Linear {
        Linear {
            weight: self
                .weight
                .iter()
                .zip(&other.weight)
                .map(|(a, b)| (1.0 - alpha) * a + alpha * b)
                .collect(),
            bias: (1.0 - alpha) * self.bias + alpha * other.bias,
        }
    }
}

/// One model to fit.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The folds whose rows it does not train on (bit `f`: fold `f`).
    pub excluded: u64,
    pub lambda: f64,
    /// Where to start; `None`: the anchor with its bias fitted alone.
    pub start: Option<Linear>,
}

#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Stop when every gradient entry of the normalised objective is below this (or when what
    /// a step could still gain is below the objective's rounding).
    pub tolerance: f64,
    /// Then go on in float64 to `PRECISE_TOLERANCE`: the models kept and exported are exact
    /// to the optimum, not to float32 rounding (a few passes more, over one model).
    pub precise: bool,
    pub max_iterations: usize,
    pub threads: usize,
}

impl Options {
    /// For the many models of a cross-validation: float32, to 1e-4 (their scores rank the
    /// held-out rows: 1e-5 gave the same figures to three decimals in the bench, with more
    /// passes).
    pub fn cross_validation() -> Self {
        Self {
            tolerance: 1e-4,
            precise: false,
            ..Self::default()
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            tolerance: 1e-6,
            precise: true,
            max_iterations: 1000,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get().min(8)),
        }
    }
}

/// The gradient tolerance of the float64 stage.
const PRECISE_TOLERANCE: f64 = 1e-10;

/// The number type of a pass's products.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Precision {
    Single,
    Double,
}

impl Precision {
    /// Twice the decrease a full L-BFGS step predicts, below which a failed line search
    /// means "converged": what the objective's own rounding leaves visible (relative).
    fn noise_floor(self) -> f64 {
        match self {
            Self::Single => 1e-9,
            Self::Double => 1e-14,
        }
    }
}

/// A fitted model and how the fit went.
#[derive(Clone, Debug)]
pub struct Fitted {
    pub model: Linear,
    /// The objective at the model, divided by the number of training rows.
    pub objective: f64,
    pub iterations: usize,
    pub converged: bool,
}

/// The rows, the anchor and what every fit over them shares.
pub struct Probe<'a> {
    rows: Rows<'a>,
    anchor: Vec<f64>,
    /// `x_i · w0` for every row.
    anchor_scores: Vec<f64>,
    mean: Vec<f64>,
    /// `μ · w0`.
    mean_anchor: f64,
    /// Positive and negative rows of each fold.
    per_fold: Vec<(u64, u64)>,
    /// The rows cut into chunks of at most [`CHUNK`] rows, each within one fold.
    chunks: Vec<(usize, usize)>,
    /// Passes over the rows so far: counts the work done (the bench prints it).
    pub passes: std::sync::atomic::AtomicUsize,
    start_bias: std::sync::OnceLock<Option<f64>>,
}

/// Rows per GEMM: a chunk (and its scores) stays in cache between the two products.
const CHUNK: usize = 512;
const MAX_TRIALS: usize = 40;

/// The weights of one model's rows and its objective's normaliser.
struct Weights {
    excluded: u64,
    lambda: f64,
    positive: f64,
    negative: f64,
    rows: f64,
}

impl<'a> Probe<'a> {
    /// `anchor`: `w0` (`dim` values; all zero for the plain probe).
    pub fn new(rows: Rows<'a>, anchor: &[f32]) -> Self {
        assert_eq!(anchor.len(), rows.dim);
        assert_eq!(rows.vectors.len(), rows.len() * rows.dim);
        assert_eq!(rows.fold.len(), rows.len());
        let dim = rows.dim;
        let mut mean = vec![0f64; dim];
        for i in 0..rows.len() {
            for (m, &x) in mean.iter_mut().zip(rows.row(i)) {
                *m += f64::from(x);
            }
        }
        let n = rows.len().max(1) as f64;
        mean.iter_mut().for_each(|m| *m /= n);
        let anchor: Vec<f64> = anchor.iter().map(|&a| f64::from(a)).collect();
        // x·w0 in float64, four sums per row so the loop vectorises; zero for the plain probe.
        let anchor_scores = if anchor.iter().all(|&a| a == 0.0) {
            vec![0.0; rows.len()]
        } else {
            (0..rows.len())
                .map(|i| {
                    let mut sums = [0f64; 4];
                    for (x, a) in rows.row(i).chunks(4).zip(anchor.chunks(4)) {
                        for (k, (&x, &a)) in x.iter().zip(a).enumerate() {
                            sums[k] += f64::from(x) * a;
                        }
                    }
                    sums.iter().sum()
                })
                .collect()
        };
        let mean_anchor = mean.iter().zip(&anchor).map(|(m, a)| m * a).sum();
        let folds = rows
            .fold
            .iter()
            .copied()
            .max()
            .map_or(0, |f| f as usize + 1);
        let mut per_fold = vec![(0u64, 0u64); folds];
        for (&fold, &truth) in rows.fold.iter().zip(rows.truth) {
            let counts = &mut per_fold[fold as usize];
            if truth {
                counts.0 += 1;
            } else {
                counts.1 += 1;
            }
        }
        let mut chunks = Vec::new();
        let mut start = 0;
        for i in 1..=rows.len() {
            if i == rows.len() || rows.fold[i] != rows.fold[start] || i - start == CHUNK {
                chunks.push((start, i));
                start = i;
            }
        }
        Self {
            rows,
            anchor,
            anchor_scores,
            mean,
            mean_anchor,
            per_fold,
            chunks,
            passes: Default::default(),
            start_bias: std::sync::OnceLock::new(),
        }
    }

    pub fn rows(&self) -> &Rows<'a> {
        &self.rows
    }

    /// The positive and negative rows a model excluding `excluded` trains on.
    pub fn training_counts(&self, excluded: u64) -> (u64, u64) {
        self.per_fold
            .iter()
            .enumerate()
            .filter(|(f, _)| excluded & (1 << f) == 0)
            .fold((0, 0), |(p, n), (_, c)| (p + c.0, n + c.1))
    }

    fn weights(&self, spec: &Spec) -> Option<Weights> {
        let (p, n) = self.training_counts(spec.excluded);
        if p == 0 || n == 0 {
            return None;
        }
        let rows = (p + n) as f64;
        Some(Weights {
            excluded: spec.excluded,
            lambda: spec.lambda,
            positive: rows / (2.0 * p as f64),
            negative: rows / (2.0 * n as f64),
            rows,
        })
    }

    /// The bias that minimises the weighted loss of `w0` alone on the rows a model leaving
    /// out `excluded` trains on ("b0 fitted alone first"). `None` with one class.
    pub fn anchor_bias(&self, excluded: u64) -> Option<f64> {
        self.anchor_bias_to(excluded, true)
    }

    /// [`anchor_bias`](Self::anchor_bias), exact to float64 or to float32.
    fn anchor_bias_to(&self, excluded: u64, precise: bool) -> Option<f64> {
        balanced_bias(
            &self.anchor_scores,
            self.rows.truth,
            |i| excluded & (1 << self.rows.fold[i]) == 0,
            precise,
            None,
        )
    }

    /// Where a fit with no start begins: the anchor, with the bias fitted alone on every row
    /// (to float32). Only a starting point (the bias is not penalised, so each model moves it
    /// to its own optimum), made once for all the models of a cross-validation.
    fn start_bias(&self) -> Option<f64> {
        *self
            .start_bias
            .get_or_init(|| self.anchor_bias_to(0, false))
    }

    /// The variables of `model`: `[w − w0, b + μ·w]`.
    fn variables(&self, model: &Linear) -> Vec<f64> {
        let mut x: Vec<f64> = model
            .weight
            .iter()
            .zip(&self.anchor)
            .map(|(w, a)| w - a)
            .collect();
        let mean_w: f64 = self
            .mean
            .iter()
            .zip(&model.weight)
            .map(|(m, w)| m * w)
            .sum();
        x.push(model.bias + mean_w);
        x
    }

    fn model(&self, x: &[f64]) -> Linear {
        let dim = self.rows.dim;
        let weight: Vec<f64> = x[..dim]
            .iter()
            .zip(&self.anchor)
            .map(|(v, a)| v + a)
            .collect();
        let mean_w: f64 = self.mean.iter().zip(&weight).map(|(m, w)| m * w).sum();
        Linear {
            weight,
            bias: x[dim] - mean_w,
        }
    }

    /// The objective (normalised) and gradient of one model at `model` (for tests).
    pub fn objective(&self, spec: &Spec, model: &Linear) -> Option<(f64, Vec<f64>)> {
        let weights = self.weights(spec)?;
        let x = self.variables(model);
        let (value, gradient) = self
            .evaluate(&[&weights], &[&x], 1, Precision::Double)
            .remove(0);
        // Back from (v, b') to (w, b): ∂/∂w = ∂/∂v + μ ∂/∂b', ∂/∂b = ∂/∂b'.
        let dim = self.rows.dim;
        let mut out = gradient.clone();
        for k in 0..dim {
            out[k] += self.mean[k] * gradient[dim];
        }
        Some((value, out))
    }

    /// Fits every spec, in lockstep. `None` for a spec whose training rows hold one class.
    pub fn fit(&self, specs: &[Spec], options: &Options) -> Vec<Option<Fitted>> {
        let weights: Vec<Option<Weights>> = specs.iter().map(|s| self.weights(s)).collect();
        let mut states: Vec<Option<State>> = specs
            .iter()
            .zip(&weights)
            .map(|(spec, w)| {
                w.as_ref()?;
                let start = match &spec.start {
                    Some(start) => start.clone(),
                    None => Linear {
                        weight: self.anchor.clone(),
                        bias: self.start_bias()?,
                    },
                };
                let state = State::new(self.variables(&start));
                Some(state)
            })
            .collect();
        self.run(
            &mut states,
            &weights,
            options,
            Precision::Single,
            options.tolerance,
        );
        if options.precise {
            // From where float32 stopped, with a fresh history: the remaining steps are small.
            for state in states.iter_mut().flatten() {
                *state = State::new(std::mem::take(&mut state.x)).counting(state.iterations);
            }
            self.run(
                &mut states,
                &weights,
                options,
                Precision::Double,
                PRECISE_TOLERANCE,
            );
        }
        states
            .into_iter()
            .map(|s| {
                s.map(|s| Fitted {
                    model: self.model(&s.x),
                    objective: s.f,
                    iterations: s.iterations,
                    converged: s.converged,
                })
            })
            .collect()
    }

    /// L-BFGS on every state until each is done.
    fn run(
        &self,
        states: &mut [Option<State>],
        weights: &[Option<Weights>],
        options: &Options,
        precision: Precision,
        tolerance: f64,
    ) {
        let count = states.len();
        let all: Vec<usize> = (0..count).filter(|&j| states[j].is_some()).collect();
        self.evaluate_into(
            &all,
            weights,
            states,
            options.threads,
            precision,
            |s| &s.x,
            |s, (f, g)| {
                s.f = f;
                s.g = g;
            },
        );
        for state in states.iter_mut().flatten() {
            state.check(tolerance);
        }
        loop {
            let running: Vec<usize> = (0..count)
                .filter(|&j| states[j].as_ref().is_some_and(|s| !s.done))
                .collect();
            if running.is_empty() {
                break;
            }
            for &j in &running {
                states[j]
                    .as_mut()
                    .expect("running")
                    .begin_step(options.max_iterations);
            }
            // Line search: every model tries its step; those not accepted try a shorter one.
            let mut trying: Vec<usize> = running
                .into_iter()
                .filter(|&j| states[j].as_ref().is_some_and(|s| !s.done))
                .collect();
            let mut trials = 0;
            while !trying.is_empty() {
                trials += 1;
                self.evaluate_into(
                    &trying,
                    weights,
                    states,
                    options.threads,
                    precision,
                    |s| &s.trial,
                    |s, (f, g)| {
                        s.trial_f = f;
                        s.trial_g = g;
                    },
                );
                trying.retain(|&j| {
                    let state = states[j].as_mut().expect("running");
                    !state.try_accept(trials >= MAX_TRIALS, tolerance, precision.noise_floor())
                });
            }
        }
    }

    /// Evaluates the models `which` at `at(state)` and hands each its result.
    #[allow(clippy::too_many_arguments)]
    fn evaluate_into(
        &self,
        which: &[usize],
        weights: &[Option<Weights>],
        states: &mut [Option<State>],
        threads: usize,
        precision: Precision,
        at: impl Fn(&State) -> &Vec<f64>,
        mut put: impl FnMut(&mut State, (f64, Vec<f64>)),
    ) {
        if which.is_empty() {
            return;
        }
        let w: Vec<&Weights> = which
            .iter()
            .map(|&j| weights[j].as_ref().expect("fitted models have weights"))
            .collect();
        let results = {
            let x: Vec<&[f64]> = which
                .iter()
                .map(|&j| at(states[j].as_ref().expect("running")).as_slice())
                .collect();
            self.evaluate(&w, &x, threads, precision)
        };
        for (&j, result) in which.iter().zip(results) {
            put(states[j].as_mut().expect("running"), result);
        }
    }

    /// Each model's scores `w·x + b` of the rows it left out (its `excluded` folds), NaN
    /// elsewhere: the out-of-fold scores of a cross-validation, one pass over the rows.
    pub fn held_out_scores(&self, models: &[(u64, &Linear)], threads: usize) -> Vec<Vec<f32>> {
        let dim = self.rows.dim;
        let n = self.rows.len();
        let folds: Vec<(Vec<usize>, Vec<f32>)> = (0..self.per_fold.len())
            .map(|f| {
                let which: Vec<usize> = (0..models.len())
                    .filter(|&j| models[j].0 & (1 << f) != 0)
                    .collect();
                let w = which
                    .iter()
                    .flat_map(|&j| models[j].1.weight.iter().map(|&w| w as f32))
                    .collect();
                (which, w)
            })
            .collect();
        let threads = threads.clamp(1, self.chunks.len().max(1));
        let per_thread = self.chunks.len().div_ceil(threads);
        let parts: Vec<Vec<(usize, usize, Vec<f32>)>> = std::thread::scope(|scope| {
            let handles: Vec<_> = self
                .chunks
                .chunks(per_thread.max(1))
                .map(|chunks| {
                    let folds = &folds;
                    scope.spawn(move || {
                        let mut out = Vec::new();
                        for &(start, end) in chunks {
                            let (which, w) = &folds[self.rows.fold[start] as usize];
                            if which.is_empty() {
                                continue;
                            }
                            let rows = end - start;
                            let mut scores = vec![0f32; rows * which.len()];
                            product(
                                &self.rows.vectors[start * dim..end * dim],
                                w,
                                dim,
                                &mut scores,
                            );
                            out.push((start, end, scores));
                        }
                        out
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a scoring pass panicked"))
                .collect()
        });
        let mut out = vec![vec![f32::NAN; n]; models.len()];
        for (start, end, scores) in parts.into_iter().flatten() {
            let (which, _) = &folds[self.rows.fold[start] as usize];
            let k = which.len();
            for (column, &j) in which.iter().enumerate() {
                let bias = models[j].1.bias;
                for r in 0..end - start {
                    out[j][start + r] = (f64::from(scores[r * k + column]) + bias) as f32;
                }
            }
        }
        out
    }
}

mod pass;
#[cfg(test)]
mod tests;
