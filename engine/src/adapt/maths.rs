//! The scalar maths every adapter shares: the logistic loss in float64, and in float32
//! without branches or library calls (so that loops over rows vectorise), and `e^x`.
//!
//! Invariant: the float32 forms agree with the float64 ones to a few float32 ulps (tested).

/// `ln(1 + e^z) − y·z` and its derivative `σ(z) − y`, without overflow or cancellation: the
/// loss is `softplus(z)` for a negative and `softplus(−z)` for a positive.
pub fn logloss(z: f64, y: bool) -> (f64, f64) {
    let e = (-z.abs()).exp();
    let signed = if y { -z } else { z };
    let loss = signed.max(0.0) + e.ln_1p();
    let sigma = if z >= 0.0 {
        1.0 / (1.0 + e)
    } else {
        e / (1.0 + e)
    };
    (loss, if y { sigma - 1.0 } else { sigma })
}

/// [`logloss`] in float32 without branches or calls, so that a loop over rows vectorises:
/// `e^x` by range reduction to `2^k · e^r` and a polynomial (Cephes's `expf`), `ln(1 + e)`
/// for `e` in [0, 1] as `2·atanh(e / (2 + e))` by its series. Within a few float32 ulps
/// (checked against float64 in the tests).
#[inline(always)]
pub fn logloss_f32(z: f32, y: bool) -> (f32, f32) {
    let e = exp_f32(-z.abs());
    let signed = if y { -z } else { z };
    let loss = signed.max(0.0) + ln_1p_unit(e);
    let inverse = 1.0 / (1.0 + e);
    let sigma = if z >= 0.0 { inverse } else { e * inverse };
    (loss, if y { sigma - 1.0 } else { sigma })
}

/// `e^x` for x ≤ 1 (float32; below −87 it is 0), as Cephes's `expf`.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    let x = x.max(-87.0);
    // Round to nearest by adding and taking away 1.5·2^23 (`f32::round` is a library call
    // that stops the loop from vectorising).
    const ROUNDER: f32 = 12_582_912.0;
    let k = (x * std::f32::consts::LOG2_E + ROUNDER) - ROUNDER;
    // r = x − k·ln 2, with ln 2 in two parts for precision.
    let r = x - k * 0.693_359_4 + k * 2.121_944_4e-4;
    let p = 1.0
        + r
        + r * r
            * (0.5
                + r * (0.166_666_65
                    + r * (0.041_665_796
                        + r * (0.008_333_452 + r * (0.001_398_199_9 + r * 1.987_569_1e-4)))));
    p * f32::from_bits(((k as i32 + 127) as u32) << 23)
}

/// `ln(1 + e)` for e in [0, 1] (float32).
#[inline(always)]
pub fn ln_1p_unit(e: f32) -> f32 {
    // 1 + e lies in [1, 2]: ln(1 + e) = 2·atanh(s), s = e / (2 + e) in [0, 1/3].
    let s = e / (2.0 + e);
    let s2 = s * s;
    2.0 * s
        * (1.0
            + s2 * (1.0 / 3.0
                + s2 * (1.0 / 5.0
                    + s2 * (1.0 / 7.0
                        + s2 * (1.0 / 9.0 + s2 * (1.0 / 11.0 + s2 * (1.0 / 13.0 + s2 / 15.0)))))))
}

/// The balanced log-loss (each class weighing half: the criterion λ and α are chosen by) of `(1 − α)·zero + α·adapted` against `labels` (1 or 0): a loop over
/// contiguous rows with no branch, which vectorises; float32 sums per 4,096 rows, float64
/// across. `None` without both classes.
pub fn blended_logloss(zero: &[f32], adapted: &[f32], labels: &[f32], alpha: f32) -> Option<f64> {
    let n = zero.len().min(adapted.len()).min(labels.len());
    let (mut loss, mut count) = ([0f64; 2], [0f64; 2]);
    for start in (0..n).step_by(4096) {
        let end = (start + 4096).min(n);
        let (mut positive, mut negative, mut positives) =
            ([0f32; LANES], [0f32; LANES], [0f32; LANES]);
        let chunks = zero[start..end]
            .chunks(LANES)
            .zip(adapted[start..end].chunks(LANES))
            .zip(labels[start..end].chunks(LANES));
        for ((z, a), y) in chunks {
            let (z, a, y) = (lanes(z, 0.0), lanes(a, 0.0), lanes(y, 0.0));
            // Rows past the end of the last chunk are padding: no weight (y = 0 counts them as
            // negatives, so they are taken off below).
            for lane in 0..LANES {
                let x = (1.0 - alpha) * z[lane] + alpha * a[lane];
                // logloss_f32 without its branch on the label: softplus(±x).
                let e = exp_f32(-x.abs());
                let signed = x - 2.0 * y[lane] * x;
                let l = signed.max(0.0) + ln_1p_unit(e);
                positive[lane] += y[lane] * l;
                negative[lane] += (1.0 - y[lane]) * l;
                positives[lane] += y[lane];
            }
        }
        // The padding's loss (x = 0, a negative: ln 2 each) comes off the negatives.
        let padding = ((end - start).div_ceil(LANES) * LANES - (end - start)) as f64;
        let total = |lanes: [f32; LANES]| lanes.iter().map(|&v| f64::from(v)).sum::<f64>();
        loss[1] += total(positive);
        loss[0] += total(negative) - padding * std::f64::consts::LN_2;
        let p = total(positives);
        count[1] += p;
        count[0] += (end - start) as f64 - p;
    }
    (count[0] > 0.0 && count[1] > 0.0).then(|| 0.5 * (loss[0] / count[0] + loss[1] / count[1]))
}

/// Eight independent sums let the compiler vectorise a reduction without reassociating floats.
const LANES: usize = 8;

/// A chunk of at most [`LANES`] values as a full array (`pad` after its end).
#[inline(always)]
fn lanes(chunk: &[f32], pad: f32) -> [f32; LANES] {
    let mut out = [pad; LANES];
    out[..chunk.len()].copy_from_slice(chunk);
    out
}

/// The bias `b` that minimises the class-balanced log-loss of `logits + b` over the rows
/// `include` keeps (each class weighing half). `None` without both classes. The loss's slope
/// in `b` rises from −1/2 to +1/2: Newton's steps where they stay inside the bracket that holds
/// its zero, halving the bracket where they do not; in float32 over the rows (a loop that
/// vectorises), then two float64 steps where `precise` (the bias an adapter keeps).
pub fn balanced_bias(
    logits: &[f64],
    truth: &[bool],
    include: impl Fn(usize) -> bool,
    precise: bool,
    start: Option<f64>,
) -> Option<f64> {
    let n = logits.len();
    let kept: Vec<bool> = (0..n).map(&include).collect();
    let positives = (0..n).filter(|&i| kept[i] && truth[i]).count();
    let negatives = (0..n).filter(|&i| kept[i] && !truth[i]).count();
    if positives == 0 || negatives == 0 {
        return None;
    }
    // Each kept row's weight (0 for the others), and its label as a number.
    let (wp, wn) = (0.5 / positives as f32, 0.5 / negatives as f32);
    let weight: Vec<f32> = (0..n)
        .map(|i| match (kept[i], truth[i]) {
            (false, _) => 0.0,
            (true, true) => wp,
            (true, false) => wn,
        })
        .collect();
    let label: Vec<f32> = truth.iter().map(|&t| f32::from(u8::from(t))).collect();
    let z: Vec<f32> = logits.iter().map(|&z| z as f32).collect();
    let slope32 = |b: f64| {
        let b = b as f32;
        let (mut gradient, mut curvature) = (0f64, 0f64);
        for start in (0..n).step_by(4096) {
            let end = (start + 4096).min(n);
            let (mut g, mut h) = ([0f32; LANES], [0f32; LANES]);
            let chunks = z[start..end]
                .chunks(LANES)
                .zip(weight[start..end].chunks(LANES))
                .zip(label[start..end].chunks(LANES));
            for ((zs, ws), ys) in chunks {
                // Padding rows weigh nothing.
                let (zs, ws, ys) = (lanes(zs, 0.0), lanes(ws, 0.0), lanes(ys, 0.0));
                for lane in 0..LANES {
                    let x = zs[lane] + b;
                    let e = exp_f32(-x.abs());
                    let inverse = 1.0 / (1.0 + e);
                    let sigma = if x >= 0.0 { inverse } else { e * inverse };
                    g[lane] += ws[lane] * (sigma - ys[lane]);
                    h[lane] += ws[lane] * sigma * (1.0 - sigma);
                }
            }
            gradient += g.iter().map(|&v| f64::from(v)).sum::<f64>();
            curvature += h.iter().map(|&v| f64::from(v)).sum::<f64>();
        }
        (gradient, curvature)
    };
    let slope64 = |b: f64| {
        let (mut gradient, mut curvature) = (0.0, 0.0);
        for i in (0..n).filter(|&i| kept[i]) {
            let (_, d) = logloss(logits[i] + b, truth[i]);
            let sigma = if truth[i] { d + 1.0 } else { d };
            let c = f64::from(weight[i]);
            gradient += c * d;
            curvature += c * sigma * (1.0 - sigma);
        }
        (gradient, curvature)
    };
    let (lowest, highest) = (0..n)
        .filter(|&i| kept[i])
        .map(|i| logits[i])
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), z| {
            (lo.min(z), hi.max(z))
        });
    // Below −highest − 40 every row's score is far under 0 (slope about −1/2); above
    // −lowest + 40, far over it (about +1/2): the zero lies between.
    let (mut lo, mut hi) = (-highest - 40.0, -lowest + 40.0);
    // From `start` (a nearby split's bias: a few Newton steps), else the bracket's middle.
    let mut b = start
        .filter(|s| s.is_finite() && *s > lo && *s < hi)
        .unwrap_or(-(lowest + highest) / 2.0);
    for _ in 0..200 {
        let (gradient, curvature) = slope32(b);
        if gradient > 0.0 {
            hi = b;
        } else {
            lo = b;
        }
        let newton = b - gradient / curvature;
        let next = if curvature > 0.0 && newton > lo && newton < hi {
            newton
        } else {
            (lo + hi) / 2.0
        };
        let done =
            (next - b).abs() <= 1e-6 * b.abs().max(1.0) || hi - lo <= 1e-9 * b.abs().max(1.0);
        b = next;
        if done {
            break;
        }
    }
    if precise {
        for _ in 0..3 {
            let (gradient, curvature) = slope64(b);
            if curvature <= 0.0 {
                break;
            }
            let step = gradient / curvature;
            b -= step;
            if step.abs() <= 1e-14 * b.abs().max(1.0) {
                break;
            }
        }
    }
    Some(b)
}

/// `x · w` for rows `x` (n × dim, row-major) and columns `w` (k columns of dim, one after
/// another, as a model's weights or Tip-Adapter's keys are stored) into `out` (n × k, row-major).
pub fn product(x: &[f32], w: &[f32], dim: usize, out: &mut [f32]) {
    let n = x.len() / dim.max(1);
    let k = w.len() / dim.max(1);
    if n == 0 || k == 0 {
        return;
    }
    assert!(out.len() >= n * k);
    // SAFETY: `out` holds at least n × k values (row stride k, column stride 1); `x` is n × dim
    // (row stride dim); `w` is dim × k (column stride dim). The buffers live across the call
    // and `out` aliases neither input.
    unsafe {
        gemm::gemm(
            n,
            k,
            dim,
            out.as_mut_ptr(),
            1,
            k as isize,
            false,
            x.as_ptr(),
            1,
            dim as isize,
            w.as_ptr(),
            dim as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float32_maths_agree_with_float64() {
        let mut worst_exp = 0f64;
        let mut x = -87.0f32;
        while x <= 1.0 {
            let exact = f64::from(x).exp();
            let ours = f64::from(exp_f32(x));
            worst_exp = worst_exp.max((ours - exact).abs() / exact);
            x += 0.0137;
        }
        assert!(worst_exp < 4e-7, "e^x off by {worst_exp:e} (relative)");
        for z in [-60.0f32, -8.5, -1.0, -1e-3, 0.0, 1e-3, 0.7, 3.0, 17.0, 60.0] {
            for y in [false, true] {
                let (l32, d32) = logloss_f32(z, y);
                let (l64, d64) = logloss(f64::from(z), y);
                assert!(
                    (f64::from(l32) - l64).abs() <= 1e-6 * l64.max(1e-30) + 1e-12,
                    "loss at {z}, {y}: {l32} vs {l64}"
                );
                assert!(
                    (f64::from(d32) - d64).abs() <= 1e-6,
                    "slope at {z}: {d32} vs {d64}"
                );
            }
        }
        // Far out the loss is linear, never inf or NaN.
        assert_eq!(logloss_f32(-200.0, true).0, 200.0);
        assert_eq!(logloss(1000.0, false).0, 1000.0);
    }

    #[test]
    fn the_balanced_logloss_weighs_the_classes_equally_and_blends() {
        // One positive scored 0 (ln 2) against many negatives scored very low (about 0).
        let mut zero = vec![-30.0f32; 100];
        zero[0] = 0.0;
        let mut labels = vec![0f32; 100];
        labels[0] = 1.0;
        let adapted = vec![5.0f32; 100];
        let loss = blended_logloss(&zero, &adapted, &labels, 0.0).unwrap();
        assert!((loss - 0.5 * std::f64::consts::LN_2).abs() < 1e-6, "{loss}");
        // α = 1: every row at 5, so the positive's loss is ln(1 + e^−5), the negatives' 5 + that.
        let loss = blended_logloss(&zero, &adapted, &labels, 1.0).unwrap();
        let small = (-5.0f64).exp().ln_1p();
        assert!((loss - 0.5 * (small + 5.0 + small)).abs() < 1e-5, "{loss}");
        assert_eq!(blended_logloss(&[1.0], &[1.0], &[1.0], 0.5), None);
    }
}
