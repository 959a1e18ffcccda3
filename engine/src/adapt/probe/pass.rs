//! One pass over the rows: the objective and gradient of every model still running, made
//! chunk by chunk (two GEMMs per chunk while it is in cache), in float32 or float64.
//!
//! Invariants: a chunk's products are made only for the models that train on its fold; sums
//! are float32 within a chunk and float64 across chunks, whatever the products' type.

use super::{Precision, Probe, Weights, CHUNK};
use crate::adapt::maths::{logloss, logloss_f32};

/// A number type the passes multiply in.
trait Element: Copy + Default + Send + Sync + 'static {
    /// The chunk's rows in this type: the rows themselves for f32, converted into `buffer`
    /// for f64.
    fn view<'b>(rows: &'b [f32], buffer: &'b mut Vec<Self>) -> &'b [Self];
    fn of(x: f64) -> Self;
    fn to_f64(self) -> f64;
    /// `c·logloss(z, y)` and `c·(σ(z) − y)`.
    fn loss(z: f64, y: bool, c: Self) -> (Self, Self);
}

impl Element for f32 {
    fn view<'b>(rows: &'b [f32], _: &'b mut Vec<f32>) -> &'b [f32] {
        rows
    }
    fn of(x: f64) -> Self {
        x as f32
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline(always)]
    fn loss(z: f64, y: bool, c: f32) -> (f32, f32) {
        let (loss, d) = logloss_f32(z as f32, y);
        (c * loss, c * d)
    }
}

impl Element for f64 {
    fn view<'b>(rows: &'b [f32], buffer: &'b mut Vec<f64>) -> &'b [f64] {
        buffer.clear();
        buffer.extend(rows.iter().map(|&x| f64::from(x)));
        buffer
    }
    fn of(x: f64) -> Self {
        x
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn loss(z: f64, y: bool, c: f64) -> (f64, f64) {
        let (loss, d) = logloss(z, y);
        (c * loss, c * d)
    }
}

impl Probe<'_> {
    /// The normalised objective and its gradient for each model at its variables, in one pass
    /// over the rows. The rows are taken a run of one fold at a time, so that each chunk's
    /// products are made only for the models that train on that fold.
    pub(super) fn evaluate(
        &self,
        weights: &[&Weights],
        variables: &[&[f64]],
        threads: usize,
        precision: Precision,
    ) -> Vec<(f64, Vec<f64>)> {
        match precision {
            Precision::Single => self.evaluate_in::<f32>(weights, variables, threads),
            Precision::Double => self.evaluate_in::<f64>(weights, variables, threads),
        }
    }

    fn evaluate_in<T: Element>(
        &self,
        weights: &[&Weights],
        variables: &[&[f64]],
        threads: usize,
    ) -> Vec<(f64, Vec<f64>)> {
        let dim = self.rows.dim;
        let m = variables.len();
        self.passes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Per fold: the models training on it, their deviations `v` as a dim × k matrix and
        // their constants (x·w + b = x·v + x·w0 + (b' − μ·v − μ·w0)).
        let folds: Vec<FoldModels<T>> = (0..self.per_fold.len())
            .map(|f| {
                let models: Vec<usize> = (0..m)
                    .filter(|&j| weights[j].excluded & (1 << f) == 0)
                    .collect();
                let mut v = vec![T::default(); dim * models.len()];
                let mut offset = Vec::with_capacity(models.len());
                for (column, &j) in models.iter().enumerate() {
                    let x = variables[j];
                    let mut mean_v = 0.0;
                    for k in 0..dim {
                        v[k + column * dim] = T::of(x[k]);
                        mean_v += self.mean[k] * x[k];
                    }
                    offset.push(x[dim] - mean_v - self.mean_anchor);
                }
                let scale: Vec<(T, T)> = models
                    .iter()
                    .map(|&j| (T::of(weights[j].positive), T::of(weights[j].negative)))
                    .collect();
                FoldModels {
                    models,
                    v,
                    offset,
                    scale,
                }
            })
            .collect();
        // The chunks, shared out between the threads by rows.
        let n = self.rows.len();
        let threads = threads.clamp(1, self.chunks.len().max(1));
        let per_thread = n.div_ceil(threads);
        let mut shares: Vec<Vec<(usize, usize)>> = vec![Vec::new(); threads];
        let mut done = 0;
        for &(start, end) in &self.chunks {
            let t = (done / per_thread.max(1)).min(threads - 1);
            shares[t].push((start, end));
            done += end - start;
        }
        let parts: Vec<Part> = std::thread::scope(|scope| {
            let handles: Vec<_> = shares
                .iter()
                .map(|chunks| {
                    let folds = &folds;
                    scope.spawn(move || self.pass::<T>(chunks, folds, m))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a probe pass panicked"))
                .collect()
        });
        (0..m)
            .map(|j| {
                let w = weights[j];
                let x = variables[j];
                let (mut loss, mut residuals) = (0.0, 0.0);
                for part in &parts {
                    loss += part.loss[j];
                    residuals += part.residuals[j];
                }
                let penalty: f64 = x[..dim].iter().map(|v| v * v).sum();
                let value = (loss + 0.5 * w.lambda * penalty) / w.rows;
                let mut gradient = vec![0f64; dim + 1];
                for k in 0..dim {
                    let sum: f64 = parts.iter().map(|p| p.gradient[k + j * dim]).sum();
                    gradient[k] = (sum - self.mean[k] * residuals + w.lambda * x[k]) / w.rows;
                }
                gradient[dim] = residuals / w.rows;
                (value, gradient)
            })
            .collect()
    }

    /// One thread's share of a pass: its chunks of rows (each within one fold).
    fn pass<T: Element>(
        &self,
        chunks: &[(usize, usize)],
        folds: &[FoldModels<T>],
        m: usize,
    ) -> Part {
        let dim = self.rows.dim;
        let mut part = Part {
            loss: vec![0.0; m],
            residuals: vec![0.0; m],
            gradient: vec![0.0; dim * m],
        };
        let widest = folds.iter().map(|f| f.models.len()).max().unwrap_or(0);
        let mut scores = vec![T::default(); CHUNK * widest];
        let mut by_model = vec![T::default(); CHUNK * widest];
        let mut chunk_gradient = vec![T::default(); dim * widest];
        let mut losses = vec![T::default(); CHUNK];
        let mut converted = Vec::new();
        for &(start, end) in chunks {
            let rows = end - start;
            let fold = &folds[self.rows.fold[start] as usize];
            let k = fold.models.len();
            if k == 0 {
                continue;
            }
            let x = T::view(&self.rows.vectors[start * dim..end * dim], &mut converted);
            // The scores, rows × k (row stride k): x (rows × dim) · v (dim × k). (This layout is
            // the one gemm runs fastest for a tall x and few models: measured.)
            // SAFETY: `scores` holds at least rows × k values (row stride k, column stride 1);
            // `x` is rows × dim (row stride dim); `fold.v` is dim × k (column stride dim). The
            // buffers live across the call and `scores` aliases neither input.
            unsafe {
                gemm::gemm(
                    rows,
                    k,
                    dim,
                    scores.as_mut_ptr(),
                    1,
                    k as isize,
                    false,
                    x.as_ptr(),
                    1,
                    dim as isize,
                    fold.v.as_ptr(),
                    dim as isize,
                    1,
                    T::of(0.0),
                    T::of(1.0),
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
            // Each model's scores contiguous, for the loop below to vectorise.
            for r in 0..rows {
                for column in 0..k {
                    by_model[column * rows + r] = scores[r * k + column];
                }
            }
            let truth = &self.rows.truth[start..end];
            let anchor = &self.anchor_scores[start..end];
            for (column, &j) in fold.models.iter().enumerate() {
                let offset = fold.offset[column];
                let (positive, negative) = fold.scale[column];
                // Branch-free float32 maths over the chunk's rows, which the compiler
                // vectorises; its rounding (1e-7 of a row's loss) stays under NOISE_FLOOR once
                // summed.
                let column_scores = &mut by_model[column * rows..(column + 1) * rows];
                for r in 0..rows {
                    let z = column_scores[r].to_f64() + anchor[r] + offset;
                    let y = truth[r];
                    let (loss, d) = T::loss(z, y, if y { positive } else { negative });
                    losses[r] = loss;
                    column_scores[r] = d;
                }
                let (mut loss, mut residuals) = (0f64, 0f64);
                for r in 0..rows {
                    loss += losses[r].to_f64();
                    residuals += column_scores[r].to_f64();
                }
                part.loss[j] += loss;
                part.residuals[j] += residuals;
            }
            for r in 0..rows {
                for column in 0..k {
                    scores[r * k + column] = by_model[column * rows + r];
                }
            }
            // The gradients, dim × k (column stride dim): xᵀ (dim × rows) · r (rows × k).
            // SAFETY: `chunk_gradient` holds dim × k values (column stride dim); `x` read as xᵀ
            // is dim × rows (column stride dim, row stride 1); `scores` is rows × k (row stride
            // k). No aliasing; all live across the call.
            unsafe {
                gemm::gemm(
                    dim,
                    k,
                    rows,
                    chunk_gradient.as_mut_ptr(),
                    dim as isize,
                    1,
                    false,
                    x.as_ptr(),
                    dim as isize,
                    1,
                    scores.as_ptr(),
                    1,
                    k as isize,
                    T::of(0.0),
                    T::of(1.0),
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
            // Summed per chunk in f32, across chunks in f64: the gradient near the optimum is a
            // small difference of large sums.
            for (column, &j) in fold.models.iter().enumerate() {
                let total = &mut part.gradient[j * dim..(j + 1) * dim];
                let chunk = &chunk_gradient[column * dim..(column + 1) * dim];
                for (t, &g) in total.iter_mut().zip(chunk) {
                    *t += g.to_f64();
                }
            }
        }
        part
    }
}

/// The models that train on one fold, as one pass multiplies them.
struct FoldModels<T> {
    models: Vec<usize>,
    v: Vec<T>,
    offset: Vec<f64>,
    /// Each model's weights of a positive and a negative row.
    scale: Vec<(T, T)>,
}

struct Part {
    loss: Vec<f64>,
    residuals: Vec<f64>,
    gradient: Vec<f64>,
}
